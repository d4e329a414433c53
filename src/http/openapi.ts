import { z } from "zod";
import {
  alarmDataSchema,
  alarmSchema,
  batchSchema,
  errorSchema,
  listQuerySchema,
  newAlarmSchema,
} from "./schemas.ts";

/** JSON Schema of a zod schema as clients send it (`io: input`: defaults are optional). */
function jsonSchema(schema: z.ZodType, io: "input" | "output" = "input") {
  const out = z.toJSONSchema(schema, {
    io,
    unrepresentable: "any",
    override: (ctx) => {
      if (ctx.zodSchema === alarmDataSchema) {
        ctx.jsonSchema.type = "object";
        ctx.jsonSchema.description = "any JSON object, at most 8 KiB serialized, 32 levels deep";
      }
    },
  }) as Record<string, unknown>;
  delete out.$schema;
  return out;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: unknown, example?: unknown) => ({
  "application/json": { schema, ...(example === undefined ? {} : { example }) },
});
const error = (description: string) => ({ description, content: json(ref("Error")) });

const EXAMPLE_ALARM = {
  id: "01KAZ3T5QF6V2J8M0X3G7N4R2B",
  userId: "kim",
  type: "comment",
  data: { text: "Lee commented on your post", postId: 981 },
  createdAt: "2026-11-25T15:11:11.051Z",
  readAt: null,
};

/** Request examples, also checked against the schemas by the test suite. */
export const EXAMPLES = {
  newAlarm: { userId: "kim", type: "comment", data: { text: "Lee commented on your post" } },
  batch: {
    alarms: [{ userId: "kim", type: "follow" }, { userId: "lee", type: "like", data: { post: 7 } }],
  },
  alarm: EXAMPLE_ALARM,
};

const USER = [{ bearer: [] }, { cookie: [] }, { query: [] }];
const PUBLISHER = [{ bearer: ["alarms:publish"] }];

const listParams = Object.entries(
  (jsonSchema(listQuerySchema) as { properties: Record<string, unknown> }).properties,
).map(([name, schema]) => ({ name, in: "query", required: false, schema }));

const idParam = {
  name: "id",
  in: "path",
  required: true,
  schema: { type: "string" },
  description: "an alarm id; another user's or an unknown id is 404",
};

const idempotencyParam = {
  name: "Idempotency-Key",
  in: "header",
  required: false,
  schema: { type: "string", minLength: 1, maxLength: 128, pattern: "^[\\x21-\\x7e]+$" },
  description: "scoped to the publisher's sub, kept 24 h: a retry returns the stored result",
};

/** The OpenAPI 3.1 document, built from the zod schemas the routes validate with. */
export function openApiDocument(version: string) {
  return {
    openapi: "3.1.0",
    info: {
      title: "alarmd",
      version,
      description: "Real-time notifications over Server-Sent Events, stored in Deno KV. " +
        'Errors are always `{"error":{"code","message","issues"?}}`.',
    },
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
        Error: jsonSchema(errorSchema, "output"),
      },
    },
    paths: {
      "/api/v1/alarms": {
        post: {
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
            400: error("invalid body"),
            401: error("no valid token"),
            403: error("token lacks alarms:publish"),
            409: error("Idempotency-Key reused with another body"),
            413: error("data over 8 KiB or body too large"),
            415: error("Content-Encoding other than identity"),
            503: error("storage or the identity provider unavailable"),
          },
        },
      },
      "/api/v1/alarms/batch": {
        post: {
          summary: "Create up to 500 alarms; all are validated before any is stored",
          security: PUBLISHER,
          parameters: [idempotencyParam],
          requestBody: { required: true, content: json(ref("Batch"), EXAMPLES.batch) },
          responses: {
            201: {
              description: "all stored",
              content: json({
                type: "object",
                properties: { items: { type: "array", items: ref("Alarm") } },
              }),
            },
            400: error("an invalid item"),
            401: error("no valid token"),
            403: error("token lacks alarms:publish"),
            409: error("Idempotency-Key reused with another body"),
            413: error("an item's data over 8 KiB"),
            415: error("Content-Encoding other than identity"),
          },
        },
      },
      "/api/v1/users/alarms": {
        get: {
          summary: "The caller's alarms, newest first",
          security: USER,
          parameters: listParams,
          responses: {
            200: {
              description: "one page",
              content: json({
                type: "object",
                properties: {
                  items: { type: "array", items: ref("Alarm") },
                  nextCursor: { type: ["string", "null"] },
                },
              }),
            },
            400: error("invalid limit or cursor"),
            401: error("no valid token"),
          },
        },
      },
      "/api/v1/users/alarms/unread-count": {
        get: {
          summary: "The caller's unread count",
          security: USER,
          responses: {
            200: {
              description: "count",
              content: json({ type: "object", properties: { unread: { type: "integer" } } }),
            },
            401: error("no valid token"),
          },
        },
      },
      "/api/v1/users/alarms/read-all": {
        post: {
          summary: "Mark every alarm of the caller read",
          security: USER,
          responses: { 204: { description: "done" }, 401: error("no valid token") },
        },
      },
      "/api/v1/users/alarms/{id}/read": {
        post: {
          summary: "Mark one alarm read (idempotent)",
          security: USER,
          parameters: [idParam],
          responses: {
            204: { description: "done" },
            401: error("no valid token"),
            404: error("unknown id"),
          },
        },
      },
      "/api/v1/users/alarms/{id}": {
        delete: {
          summary: "Delete one alarm",
          security: USER,
          parameters: [idParam],
          responses: {
            204: { description: "deleted" },
            401: error("no valid token"),
            404: error("unknown id"),
          },
        },
      },
      "/api/v1/users/alarm/subscribe": {
        get: {
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
            401: error("no valid token"),
            429: error("too many streams for this user (too_many_connections), see Retry-After"),
            503: error("too many streams on this server (too_many_connections), see Retry-After"),
          },
        },
      },
      "/healthz": {
        get: { summary: "Liveness", responses: { 200: { description: "alive" } } },
      },
      "/readyz": {
        get: {
          summary: "Readiness: 503 only when this instance cannot serve",
          responses: {
            200: {
              description: '`{"status":"ready"}`, or `{"status":"degraded","reasons":[…]}` when ' +
                "Redis or the identity provider's key set is down (the instance still serves)",
            },
            503: error("KV cannot commit, or no JWT key was ever loaded"),
          },
        },
      },
      "/metrics": {
        get: {
          summary: "Prometheus metrics",
          responses: { 200: { description: "text exposition format 0.0.4" } },
        },
      },
      "/openapi.json": {
        get: { summary: "This document", responses: { 200: { description: "OpenAPI 3.1" } } },
      },
      "/docs": {
        get: { summary: "Interactive API reference", responses: { 200: { description: "HTML" } } },
      },
      "/": {
        get: { summary: "The web inbox", responses: { 200: { description: "HTML" } } },
      },
    },
  };
}
