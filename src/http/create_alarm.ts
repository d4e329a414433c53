import type { Alarm } from "../domain/alarm.ts";
import type { AlarmService } from "../domain/alarm_service.ts";
import type { Principal } from "./auth.ts";
import { ValidationError } from "./errors.ts";
import { idempotencyHeaderSchema, newAlarmSchema } from "./schemas.ts";
import { parseOr400 } from "./validation.ts";

const JSON_CONTENT_TYPE = /^application\/(?:[\w.+-]*\+)?json\s*(?:;|$)/i;

export interface CreateRequest {
  readonly contentType: string | undefined;
  readonly idempotencyKey: string | undefined;
  /** The body as received, already held to the size limit. */
  readonly body: string;
}

/**
 * POST /api/v1/alarms after authentication and the body limit: the one implementation, called
 * by the Hono route and by the node:http fast path (the hottest endpoint skips the adapter from
 * node requests to web Requests, which costs more than the rest of the request).
 */
export async function createAlarmFromBody(
  service: AlarmService,
  principal: Principal,
  request: CreateRequest,
): Promise<{ status: 200 | 201; alarm: Alarm }> {
  if (!request.contentType || !JSON_CONTENT_TYPE.test(request.contentType)) {
    throw new ValidationError([{ path: "content-type", message: "must be application/json" }]);
  }
  const { "idempotency-key": key } = parseOr400(
    idempotencyHeaderSchema,
    { "idempotency-key": request.idempotencyKey },
    "header",
  );
  let json: unknown;
  try {
    json = JSON.parse(request.body);
  } catch {
    throw new ValidationError([{ path: "body", message: "Malformed JSON in request body" }]);
  }
  const input = parseOr400(newAlarmSchema, json, "body");
  const { alarm, replayed } = await service.create(
    principal.userId,
    { userId: input.userId, type: input.type, data: input.data ?? {} },
    key,
  );
  return { status: replayed ? 200 : 201, alarm };
}
