/**
 * Request schemas: the routes validate with them and the OpenAPI document is generated from
 * them, so what is documented is what is enforced.
 */
import { z } from "zod";
import { ALARM_LIMITS, ALARM_TYPE_PATTERN } from "../domain/alarm.ts";

/** Deeper JSON than this is refused: nothing legitimate needs it, and deep values are costly. */
export const MAX_DATA_DEPTH = 32;

function depthWithin(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== "object") continue;
    if (depth > max) return false;
    for (const child of Object.values(v as object)) stack.push([child, depth + 1]);
  }
  return true;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * `data` is checked, not rebuilt: a record schema would copy it and drop keys such as
 * `__proto__` that JSON allows, so the stored alarm would differ from what was sent.
 */
export const alarmDataSchema = z.custom<Record<string, unknown>>(
  isPlainObject,
  "must be a JSON object",
).refine((d) => depthWithin(d, MAX_DATA_DEPTH), `must nest at most ${MAX_DATA_DEPTH} levels`);

/** Ids with lone surrogates are refused: storage would map them to U+FFFD, merging users. */
export const userIdSchema = z.string().min(1).max(ALARM_LIMITS.userIdMax).refine(
  (id) => id.isWellFormed(),
  "must be well-formed Unicode (no lone surrogates)",
);

/** A path on the app's own origin (not `//host`, not `/\\host`), or an https: URL. */
const notificationUrlSchema = z.string().max(ALARM_LIMITS.notificationUrlMax).refine(
  (u) => /^\/(?![/\\])/.test(u) || (URL.canParse(u) && new URL(u).protocol === "https:"),
  "must be a path starting with one / or an https: URL",
);

export const notificationSchema = z.strictObject({
  title: z.string().min(1).max(ALARM_LIMITS.notificationTitleMax),
  body: z.string().max(ALARM_LIMITS.notificationBodyMax).optional(),
  url: notificationUrlSchema.optional(),
  tag: z.string().max(ALARM_LIMITS.notificationTagMax).optional(),
});

export const newAlarmSchema = z.strictObject({
  userId: userIdSchema,
  type: z.string().regex(
    ALARM_TYPE_PATTERN,
    "must be 1..64 characters of A-Z a-z 0-9 . _ : -",
  ),
  data: alarmDataSchema.optional(),
  notification: notificationSchema.optional(),
});

export const batchSchema = z.strictObject({
  alarms: z.array(newAlarmSchema).min(1).max(ALARM_LIMITS.batchMax),
});

export const idempotencyHeaderSchema = z.object({
  "idempotency-key": z.string().min(1).max(ALARM_LIMITS.idempotencyKeyMax).regex(
    /^[\x21-\x7e]+$/,
    "must be printable ASCII without spaces",
  ).optional(),
});

export const listQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().min(1).max(256).optional(),
  unread: z.enum(["true", "false"]).optional(),
});

/** Any id is accepted here: one that is not a ULID is simply not found (404). */
export const alarmIdParamSchema = z.object({ id: z.string() });

/** An alarm as every endpoint returns it (documentation and tests; never parsed from clients). */
export const alarmSchema = z.object({
  id: z.string().describe("ULID: sorts in creation order"),
  userId: userIdSchema,
  type: z.string(),
  data: alarmDataSchema,
  createdAt: z.iso.datetime(),
  readAt: z.iso.datetime().nullable(),
  notification: notificationSchema.nullable(),
});

/** The browser's `PushSubscription.toJSON()`; the keys are checked by the push service. */
export const pushSubscriptionSchema = z.object({
  endpoint: z.string().min(1).max(1024),
  keys: z.object({
    p256dh: z.string().min(1).max(256),
    auth: z.string().min(1).max(64),
  }),
  expirationTime: z.number().nullable().optional(),
});

export const pushSubscriptionIdParamSchema = z.object({ id: z.string() });

export const userDataParamSchema = z.object({ userId: userIdSchema });

export const errorSchema = z.object({
  error: z.object({
    code: z.enum([
      "invalid_request",
      "unauthorized",
      "forbidden",
      "not_found",
      "idempotency_conflict",
      "payload_too_large",
      "unsupported_media_type",
      "rate_limited",
      "too_many_connections",
      "unavailable",
      "auth_unavailable",
      "push_disabled",
      "endpoint_not_allowed",
      "internal",
    ]),
    message: z.string(),
    issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  }),
});

export const subscribeQuerySchema = z.object({
  lastEventId: z.string().optional(),
  access_token: z.string().optional(),
});
