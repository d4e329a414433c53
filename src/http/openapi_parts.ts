/**
 * The building blocks of the OpenAPI document (openapi.ts): schemas from the zod schemas the
 * routes validate with, the error answers of errors.ts, security requirements and parameters.
 */
import { z } from "zod";
import { alarmDataSchema, listQuerySchema, newAlarmSchema } from "./schemas.ts";

/** JSON Schema of a zod schema as clients send it (`io: input`: defaults are optional). */
export function jsonSchema(schema: z.ZodType, io: "input" | "output" = "input") {
  const out = z.toJSONSchema(schema, {
    io,
    unrepresentable: "any",
    override: (ctx) => {
      if (ctx.zodSchema === alarmDataSchema) {
        ctx.jsonSchema.type = "object";
        // Any keys: without this, generators type `data` as an object with no properties.
        ctx.jsonSchema.additionalProperties = true;
        ctx.jsonSchema.description = "any JSON object, at most 8 KiB serialized, 32 levels deep";
      } else if (ctx.zodSchema === newAlarmSchema && schema !== newAlarmSchema) {
        // A batch item is a NewAlarm: one type for clients, not a copy.
        for (const key of Object.keys(ctx.jsonSchema)) delete ctx.jsonSchema[key];
        Object.assign(ctx.jsonSchema, ref("NewAlarm"));
      }
    },
  }) as Record<string, unknown>;
  delete out.$schema;
  return out;
}

export const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
export const json = (schema: unknown, example?: unknown) => ({
  "application/json": { schema, ...(example === undefined ? {} : { example }) },
});

/** Every error answer of errors.ts carries these, by status. */
export const RETRY_AFTER = {
  "Retry-After": {
    description: "seconds to wait before trying again",
    schema: { type: "integer" },
  },
};
export const WWW_AUTHENTICATE = {
  "WWW-Authenticate": { description: '`Bearer realm="alarmd"`', schema: { type: "string" } },
};

/** An error answer in the contract's shape; 401, 429 and 503 name their headers. */
export const error = (status: number, description: string) => ({
  description,
  ...(status === 401 ? { headers: WWW_AUTHENTICATE } : {}),
  ...(status === 429 || status === 503 ? { headers: RETRY_AFTER } : {}),
  content: json(ref("Error")),
});

/** What every operation of a kind can answer, whatever its handler does. */
export const USER_ERRORS = {
  401: error(401, "no token, or one that does not verify (unauthorized)"),
  403: error(
    403,
    "a cookie token sent from an origin that is neither alarmd's own nor configured (forbidden)",
  ),
  429: error(429, "over the per-user request rate (rate_limited)"),
  503: error(
    503,
    "storage unavailable or shutting down (unavailable), or the identity provider's keys " +
      "cannot be fetched (auth_unavailable)",
  ),
};
export const PUBLISHER_ERRORS = {
  401: error(401, "no token, or one that does not verify (unauthorized)"),
  403: error(403, "the token lacks the alarms:publish scope (forbidden)"),
  429: error(429, "over the per-publisher rate (rate_limited)"),
  503: USER_ERRORS[503],
};
/**
 * The one 4xx of the public endpoints: a request head the HTTP parser refuses never reaches a
 * route, on any endpoint.
 */
export const UNPARSEABLE = {
  400: error(
    400,
    "a request head that cannot be parsed (invalid_request), answered before routing; " +
      "the node transport (the default) also answers 431 for headers too large and 408 for a " +
      "head that does not arrive in time, in this shape; the deno transport answers 400 " +
      "without a body",
  ),
};

export const EXAMPLE_ALARM = {
  id: "01KAZ3T5QF6V2J8M0X3G7N4R2B",
  userId: "kim",
  type: "comment",
  data: { text: "Lee commented on your post", postId: 981 },
  createdAt: "2026-11-25T15:11:11.051Z",
  readAt: null,
  notification: { title: "Lee commented on your post", url: "/posts/981" },
};

/** Request examples, also checked against the schemas by the test suite. */
export const EXAMPLES = {
  newAlarm: {
    userId: "kim",
    type: "comment",
    data: { text: "Lee commented on your post" },
    notification: { title: "Lee commented on your post", url: "/posts/981" },
  },
  batch: {
    alarms: [{ userId: "kim", type: "follow" }, { userId: "lee", type: "like", data: { post: 7 } }],
  },
  alarm: EXAMPLE_ALARM,
};

export const USER = [{ bearer: [] }, { cookie: [] }, { query: [] }];
export const PUBLISHER = [{ bearer: ["alarms:publish"] }];
/** No token: the operation is open to anyone. */
export const PUBLIC: never[] = [];

export const listParams = Object.entries(
  (jsonSchema(listQuerySchema) as { properties: Record<string, unknown> }).properties,
).map(([name, schema]) => ({ name, in: "query", required: false, schema }));

export const idParam = {
  name: "id",
  in: "path",
  required: true,
  schema: { type: "string" },
  description: "an alarm id; another user's or an unknown id is 404",
};

export const idempotencyParam = {
  name: "Idempotency-Key",
  in: "header",
  required: false,
  schema: { type: "string", minLength: 1, maxLength: 128, pattern: "^[\\x21-\\x7e]+$" },
  description: "scoped to the publisher's sub, kept 24 h: a retry returns the stored result",
};

export const html = (description: string) => ({
  description,
  content: { "text/html": { schema: { type: "string" } } },
});

/** The operational endpoints: no token, for probes, scrapers and people. */
export const OPS_PATHS = {
  "/healthz": {
    get: {
      operationId: "getLiveness",
      summary: "Liveness",
      security: PUBLIC,
      responses: {
        200: {
          description: "alive",
          content: json({
            type: "object",
            properties: {
              status: { type: "string", const: "ok" },
              version: { type: "string" },
              worker: { type: "integer", description: "the isolate that answered" },
            },
            required: ["status", "version", "worker"],
          }),
        },
        ...UNPARSEABLE,
      },
    },
  },
  "/readyz": {
    get: {
      operationId: "getReadiness",
      summary: "Readiness: 503 only when this instance cannot serve",
      security: PUBLIC,
      responses: {
        200: {
          description: '`{"status":"ready"}`, or `{"status":"degraded","reasons":[…]}` when ' +
            "Redis or the identity provider's key set is down (the instance still serves)",
          content: json({
            type: "object",
            properties: {
              status: { type: "string", enum: ["ready", "degraded"] },
              reasons: { type: "array", items: { type: "string" } },
            },
            required: ["status"],
          }),
        },
        ...UNPARSEABLE,
        503: error(503, "KV cannot commit, no JWT key was ever loaded, or shutting down"),
      },
    },
  },
  "/metrics": {
    get: {
      operationId: "getMetrics",
      summary: "Prometheus metrics",
      security: PUBLIC,
      responses: {
        200: {
          description: "text exposition format 0.0.4",
          content: { "text/plain": { schema: { type: "string" } } },
        },
        ...UNPARSEABLE,
      },
    },
  },
  "/openapi.json": {
    get: {
      operationId: "getOpenApiDocument",
      summary: "This document",
      security: PUBLIC,
      responses: {
        200: {
          description: "OpenAPI 3.1",
          content: json({ type: "object", additionalProperties: true }),
        },
        ...UNPARSEABLE,
      },
    },
  },
  "/docs": {
    get: {
      operationId: "getApiReference",
      summary: "Interactive API reference",
      security: PUBLIC,
      responses: { 200: html("HTML"), ...UNPARSEABLE },
    },
  },
  "/": {
    get: {
      operationId: "getInbox",
      summary: "The web inbox",
      security: PUBLIC,
      responses: { 200: html("HTML"), ...UNPARSEABLE },
    },
  },
};
