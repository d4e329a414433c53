import type { AlarmService } from "../domain/alarm_service.ts";
import { emptyReply, jsonReply } from "./reply.ts";
import type { Route } from "./route.ts";
import { alarmIdParamSchema, listQuerySchema } from "./schemas.ts";
import { parseOr400 } from "./validation.ts";

const BASE = "/api/v1/users/alarms";

/** A user's own alarms: the user is always the token's `sub`, never a parameter. */
export function userAlarmRoutes(service: AlarmService): Route[] {
  const user = { access: "user", rateLimit: "user" } as const;
  const alarmId = (params: Readonly<Record<string, string>>) =>
    parseOr400(alarmIdParamSchema, params, "path").id;
  return [
    {
      ...user,
      method: "GET",
      path: BASE,
      async handle({ principal, query }) {
        const { limit, cursor, unread } = parseOr400(listQuerySchema, query(), "query");
        const page = await service.list(principal.userId, {
          limit,
          cursor,
          unreadOnly: unread === "true",
        });
        return jsonReply(200, page);
      },
    },
    {
      ...user,
      method: "GET",
      path: `${BASE}/unread-count`,
      async handle({ principal }) {
        return jsonReply(200, { unread: await service.unreadCount(principal.userId) });
      },
    },
    {
      ...user,
      method: "POST",
      path: `${BASE}/read-all`,
      async handle({ principal }) {
        await service.markAllRead(principal.userId);
        return emptyReply();
      },
    },
    {
      ...user,
      method: "POST",
      path: `${BASE}/:id/read`,
      async handle({ principal, params }) {
        await service.markRead(principal.userId, alarmId(params));
        return emptyReply();
      },
    },
    {
      ...user,
      method: "DELETE",
      path: `${BASE}/:id`,
      async handle({ principal, params }) {
        await service.delete(principal.userId, alarmId(params));
        return emptyReply();
      },
    },
  ];
}
