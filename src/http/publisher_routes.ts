import type { z } from "zod";
import { ALARM_LIMITS, type NewAlarm } from "../domain/alarm.ts";
import type { AlarmService } from "../domain/alarm_service.ts";
import type { RateLimiter } from "../domain/rate_limiter.ts";
import { emptyReply, jsonReply } from "./reply.ts";
import type { Route } from "./route.ts";
import {
  batchSchema,
  idempotencyHeaderSchema,
  newAlarmSchema,
  userDataParamSchema,
} from "./schemas.ts";
import { parseJsonBody, parseOr400 } from "./validation.ts";

/**
 * Bodies are capped before parsing, a little above the largest valid alarm (or batch of them),
 * so that an oversized body is refused without being parsed.
 */
export const BODY_LIMITS = {
  single: 64 * 1024,
  batch: ALARM_LIMITS.batchMax *
      (ALARM_LIMITS.dataMaxBytes + ALARM_LIMITS.pushPayloadMaxBytes + 1024) + 4096,
} as const;

function toNewAlarm(input: z.infer<typeof newAlarmSchema>): NewAlarm {
  const alarm = { userId: input.userId, type: input.type, data: input.data ?? {} };
  return input.notification ? { ...alarm, notification: input.notification } : alarm;
}

/**
 * A backend creates alarms for any user, with the publish scope (a batch costs its size), and
 * erases a user on a privacy request.
 */
export function publisherRoutes(service: AlarmService, publishLimit?: RateLimiter): Route[] {
  const idempotencyKey = (header: string | undefined) =>
    parseOr400(idempotencyHeaderSchema, { "idempotency-key": header }, "header")[
      "idempotency-key"
    ];
  return [
    {
      method: "POST",
      path: "/api/v1/alarms",
      access: "publisher",
      bodyLimit: BODY_LIMITS.single,
      async handle({ request, principal, body }) {
        publishLimit?.take(principal.userId);
        const key = idempotencyKey(request.header("idempotency-key"));
        const input = parseJsonBody(request.header("content-type"), body, newAlarmSchema);
        const { alarm, replayed } = await service.create(
          principal.userId,
          toNewAlarm(input),
          key,
        );
        return jsonReply(replayed ? 200 : 201, alarm);
      },
    },
    {
      method: "POST",
      path: "/api/v1/alarms/batch",
      access: "publisher",
      bodyLimit: BODY_LIMITS.batch,
      async handle({ request, principal, body }) {
        const key = idempotencyKey(request.header("idempotency-key"));
        const { alarms } = parseJsonBody(request.header("content-type"), body, batchSchema);
        publishLimit?.take(principal.userId, alarms.length);
        const { items, replayed } = await service.createBatch(
          principal.userId,
          alarms.map(toNewAlarm),
          key,
        );
        return jsonReply(replayed ? 200 : 201, { items });
      },
    },
    {
      method: "DELETE",
      path: "/api/v1/user-data/:userId",
      access: "publisher",
      async handle({ params }) {
        const { userId } = parseOr400(userDataParamSchema, params, "path");
        await service.eraseUser(userId);
        return emptyReply();
      },
    },
  ];
}
