/** The token scope that lets a backend publish alarms to any user (the `scope` claim). */
export const PUBLISH_SCOPE = "alarms:publish";
