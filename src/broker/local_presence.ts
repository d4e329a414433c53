import type { LiveCountSource, Presence } from "../domain/presence.ts";

/**
 * Presence of a lone isolate (no Redis, no workers): its own live streams are all there are, so
 * it is always known and needs no channel.
 */
export function createLocalPresence(local: LiveCountSource): Presence {
  return {
    connections: (userIds) => userIds.map((userId) => local.countOf(userId)),
    online: (userId) => local.countOf(userId) > 0,
    known: () => true,
    close: () => Promise.resolve(),
  };
}
