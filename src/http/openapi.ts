import { alarmSchema, batchSchema, errorSchema, newAlarmSchema } from "./schemas.ts";
import {
  error,
  EXAMPLE_ALARM,
  EXAMPLES,
  idempotencyParam,
  idParam,
  json,
  jsonSchema,
  listParams,
  OPS_PATHS,
  PUBLISHER,
  PUBLISHER_ERRORS,
  ref,
  USER,
  USER_ERRORS,
} from "./openapi_parts.ts";
import { PRESENCE_PATHS, PRESENCE_SCHEMAS } from "./openapi_presence.ts";
import { PUSH_PATHS, PUSH_SCHEMAS } from "./openapi_push.ts";

export { EXAMPLES } from "./openapi_parts.ts";

export interface OpenApiOptions {
  /**
   * `ALARMD_PUBLIC_URL`: the origin clients reach alarmd at, listed first in `servers`. The
   * relative `/` always follows: it resolves against wherever the document was fetched from,
   * which is this server.
   */
  readonly publicUrl?: string;
}

/** The OpenAPI 3.1 document, built from the zod schemas the routes validate with. */
export function openApiDocument(version: string, options: OpenApiOptions = {}) {
  const servers = [
    ...(options.publicUrl
      ? [{ url: new URL(options.publicUrl).origin, description: "ALARMD_PUBLIC_URL" }]
      : []),
    { url: "/", description: "the alarmd that served this document" },
  ];
  return {
    openapi: "3.1.0",
    info: {
      title: "alarmd",
      version,
      description: "Real-time notifications over Server-Sent Events, stored in Deno KV. " +
        'Errors are always `{"error":{"code","message","issues"?}}`.',
      license: {
        // No LICENSE file, no license in deno.json, none named in the README: no license is
        // granted, and the document says so. Replace with the SPDX id once one is chosen.
        name: "Proprietary, all rights reserved",
        identifier: "LicenseRef-Proprietary",
      },
    },
    servers,
    components: {
      securitySchemes: {
        bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" },
        cookie: { type: "apiKey", in: "cookie", name: "alarmd_token" },
        query: { type: "apiKey", in: "query", name: "access_token" },
      },
      schemas: {
        Alarm: jsonSchema(alarmSchema, "output"),
        NewAlarm: jsonSchema(newAlarmSchema),
        Batch: jsonSchema(batchSchema),
        AlarmPage: {
          type: "object",
          properties: {
            items: { type: "array", items: ref("Alarm"), description: "newest first" },
            nextCursor: {
              type: ["string", "null"],
              description: "pass back as `cursor` for the next page; null on the last",
            },
          },
          required: ["items", "nextCursor"],
          additionalProperties: false,
        },
        AlarmBatch: {
          type: "object",
          properties: {
            items: {
              type: "array",
              items: ref("Alarm"),
              description: "the stored alarms, in the order sent",
            },
          },
          required: ["items"],
          additionalProperties: false,
        },
        UnreadCount: {
          type: "object",
          properties: { unread: { type: "integer", minimum: 0 } },
          required: ["unread"],
          additionalProperties: false,
        },
        Error: jsonSchema(errorSchema, "output"),
        ...PUSH_SCHEMAS,
        ...PRESENCE_SCHEMAS,
      },
    },
    paths: {
      "/api/v1/alarms": {
        post: {
          operationId: "createAlarm",
          summary: "Create an alarm for a user",
          security: PUBLISHER,
          parameters: [idempotencyParam],
          requestBody: { required: true, content: json(ref("NewAlarm"), EXAMPLES.newAlarm) },
          responses: {
            201: { description: "stored durably", content: json(ref("Alarm"), EXAMPLE_ALARM) },
            200: {
              description: "a retry with the same Idempotency-Key",
              content: json(ref("Alarm")),
            },
            400: error(400, "invalid body, Content-Type or Idempotency-Key (invalid_request)"),
            ...PUBLISHER_ERRORS,
            409: error(409, "Idempotency-Key reused with another body (idempotency_conflict)"),
            413: error(413, "data over 8 KiB or body too large (payload_too_large)"),
            415: error(415, "Content-Encoding other than identity (unsupported_media_type)"),
          },
        },
      },
      "/api/v1/alarms/batch": {
        post: {
          operationId: "createAlarmBatch",
          summary: "Create up to 500 alarms; all are validated before any is stored",
          security: PUBLISHER,
          parameters: [idempotencyParam],
          requestBody: { required: true, content: json(ref("Batch"), EXAMPLES.batch) },
          responses: {
            201: { description: "all stored", content: json(ref("AlarmBatch")) },
            200: {
              description: "a retry with the same Idempotency-Key: every item was already stored",
              content: json(ref("AlarmBatch")),
            },
            400: error(400, "an invalid item, Content-Type or Idempotency-Key (invalid_request)"),
            ...PUBLISHER_ERRORS,
            409: error(409, "Idempotency-Key reused with another body (idempotency_conflict)"),
            413: error(413, "an item's data over 8 KiB or body too large (payload_too_large)"),
            415: error(415, "Content-Encoding other than identity (unsupported_media_type)"),
          },
        },
      },
      "/api/v1/user-data/{userId}": {
        delete: {
          operationId: "eraseUserData",
          summary: "Erase everything of a user (a privacy request)",
          description: "Every alarm, counter, index entry and push subscription of the user is " +
            "deleted and their open streams end on every instance; the id starts afresh. " +
            "Idempotent: erasing an unknown user answers 204 too.",
          security: PUBLISHER,
          parameters: [{
            name: "userId",
            in: "path",
            required: true,
            schema: { type: "string", minLength: 1, maxLength: 128 },
          }],
          responses: {
            204: { description: "erased" },
            400: error(400, "an invalid user id (invalid_request)"),
            ...PUBLISHER_ERRORS,
          },
        },
      },
      "/api/v1/users/alarms": {
        get: {
          operationId: "listMyAlarms",
          summary: "The caller's alarms, newest first",
          security: USER,
          parameters: listParams,
          responses: {
            200: { description: "one page", content: json(ref("AlarmPage")) },
            400: error(400, "invalid limit, cursor or unread (invalid_request)"),
            ...USER_ERRORS,
          },
        },
      },
      "/api/v1/users/alarms/unread-count": {
        get: {
          operationId: "getMyUnreadCount",
          summary: "The caller's unread count",
          security: USER,
          responses: {
            200: { description: "count", content: json(ref("UnreadCount")) },
            ...USER_ERRORS,
          },
        },
      },
      "/api/v1/users/alarms/read-all": {
        post: {
          operationId: "markAllMyAlarmsRead",
          summary: "Mark every alarm of the caller read",
          security: USER,
          responses: { 204: { description: "done" }, ...USER_ERRORS },
        },
      },
      "/api/v1/users/alarms/{id}/read": {
        post: {
          operationId: "markMyAlarmRead",
          summary: "Mark one alarm read (idempotent)",
          security: USER,
          parameters: [idParam],
          responses: {
            204: { description: "done" },
            400: error(400, "the id is not valid percent-encoding (invalid_request)"),
            ...USER_ERRORS,
            404: error(404, "unknown id, or another user's (not_found)"),
          },
        },
      },
      "/api/v1/users/alarms/{id}": {
        delete: {
          operationId: "deleteMyAlarm",
          summary: "Delete one alarm",
          security: USER,
          parameters: [idParam],
          responses: {
            204: { description: "deleted" },
            400: error(400, "the id is not valid percent-encoding (invalid_request)"),
            ...USER_ERRORS,
            404: error(404, "unknown id, or another user's (not_found)"),
          },
        },
      },
      "/api/v1/users/alarm/subscribe": {
        get: {
          operationId: "subscribeToAlarms",
          summary: "The caller's live stream (Server-Sent Events)",
          description: "First `retry:`, then `event: connect` (no id) with " +
            "`{message, userId, connectionId, unread, lastId, replay?}`; with Last-Event-ID every " +
            "newer stored alarm, oldest first; then live `alarm` (id = alarm id), `read` and " +
            "`deleted` (`{ids, unread}`) events and `: ping` comments.",
          security: USER,
          parameters: [
            { name: "Last-Event-ID", in: "header", required: false, schema: { type: "string" } },
            { name: "lastEventId", in: "query", required: false, schema: { type: "string" } },
          ],
          responses: {
            200: {
              description: "the stream",
              content: { "text/event-stream": { schema: { type: "string" } } },
            },
            401: USER_ERRORS[401],
            403: USER_ERRORS[403],
            429: error(
              429,
              "too many streams for this user (too_many_connections), or too many stream " +
                "attempts from this client address (rate_limited)",
            ),
            503: error(
              503,
              "too many streams on this server, memory at its limit or shutting down " +
                "(too_many_connections), or the identity provider's keys cannot be fetched " +
                "(auth_unavailable)",
            ),
          },
        },
      },
      ...PUSH_PATHS,
      ...PRESENCE_PATHS,
      ...OPS_PATHS,
    },
  };
}
