import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { ALARM_LIMITS } from "../domain/alarm.ts";
import type { AlarmService } from "../domain/alarm_service.ts";
import { PayloadTooLargeError } from "../domain/errors.ts";
import type { Authenticate, AuthEnv } from "./auth.ts";
import { authenticated, PUBLISH_SCOPE, requireScope } from "./auth.ts";
import { createAlarmFromBody } from "./create_alarm.ts";
import {
  alarmIdParamSchema,
  batchSchema,
  idempotencyHeaderSchema,
  listQuerySchema,
} from "./schemas.ts";
import { validate } from "./validation.ts";
import type { Guards } from "./guards.ts";
import { createMiddleware } from "hono/factory";

/** Bodies are capped before parsing: the largest valid alarm is ~8.5 KiB, a batch 500 of them. */
export const BODY_LIMITS = {
  single: 64 * 1024,
  batch: ALARM_LIMITS.batchMax * (ALARM_LIMITS.dataMaxBytes + 1024) + 4096,
} as const;

const limitBody = (maxSize: number) =>
  bodyLimit({
    maxSize,
    onError: () => {
      throw new PayloadTooLargeError(`request body is over ${maxSize} bytes`);
    },
  });

/** Publisher routes: a backend creates alarms for any user, with the publish scope. */
export function alarmRoutes(service: AlarmService, authenticate: Authenticate, guards?: Guards) {
  return new Hono<AuthEnv>()
    .use(authenticated(authenticate), requireScope(PUBLISH_SCOPE))
    .post("/", limitBody(BODY_LIMITS.single), async (c) => {
      guards?.publish.take(c.var.principal.userId);
      const { status, alarm } = await createAlarmFromBody(service, c.var.principal, {
        contentType: c.req.header("content-type"),
        idempotencyKey: c.req.header("idempotency-key"),
        body: await c.req.text(),
      });
      return c.json(alarm, status);
    })
    .post(
      "/batch",
      limitBody(BODY_LIMITS.batch),
      validate("header", idempotencyHeaderSchema),
      validate("json", batchSchema),
      async (c) => {
        const { alarms } = c.req.valid("json");
        guards?.publish.take(c.var.principal.userId, alarms.length);
        const key = c.req.valid("header")["idempotency-key"];
        const { items, replayed } = await service.createBatch(
          c.var.principal.userId,
          alarms.map((a) => ({ userId: a.userId, type: a.type, data: a.data ?? {} })),
          key,
        );
        return c.json({ items }, replayed ? 200 : 201);
      },
    );
}

/** A user's own alarms: the user is always the token's `sub`, never a parameter. */
export function userAlarmRoutes(
  service: AlarmService,
  authenticate: Authenticate,
  guards?: Guards,
) {
  return new Hono<AuthEnv>()
    .use(authenticated(authenticate))
    .use(createMiddleware<AuthEnv>(async (c, next) => {
      guards?.user.take(c.var.principal.userId);
      await next();
    }))
    .get("/", validate("query", listQuerySchema), async (c) => {
      const { limit, cursor, unread } = c.req.valid("query");
      const page = await service.list(c.var.principal.userId, {
        limit,
        cursor,
        unreadOnly: unread === "true",
      });
      return c.json(page);
    })
    .get("/unread-count", async (c) => {
      return c.json({ unread: await service.unreadCount(c.var.principal.userId) });
    })
    .post("/read-all", async (c) => {
      await service.markAllRead(c.var.principal.userId);
      return c.body(null, 204);
    })
    .post("/:id/read", validate("param", alarmIdParamSchema), async (c) => {
      await service.markRead(c.var.principal.userId, c.req.valid("param").id);
      return c.body(null, 204);
    })
    .delete("/:id", validate("param", alarmIdParamSchema), async (c) => {
      await service.delete(c.var.principal.userId, c.req.valid("param").id);
      return c.body(null, 204);
    });
}
