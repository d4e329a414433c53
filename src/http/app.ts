import { Hono } from "hono";
import type { AlarmService } from "../domain/alarm_service.ts";
import type { LiveHub } from "../domain/live_hub.ts";
import { alarmRoutes, userAlarmRoutes } from "./alarm_routes.ts";
import type { Authenticate } from "./auth.ts";
import { errorResponse, toErrorShape } from "./errors.ts";
import type { Logger } from "../log.ts";
import type { RequestEnv } from "./request_log.ts";
import { requestLog } from "./request_log.ts";

/** The app's type: every handler can read the request id. */
export type AlarmdApp = Hono<RequestEnv>;
import { opsRoutes } from "./ops_routes.ts";
import { subscribeRoutes } from "./subscribe_routes.ts";
import type { WebAsset } from "./web_routes.ts";
import { webRoutes } from "./web_routes.ts";

export interface AppDeps {
  readonly service: AlarmService;
  readonly hub: LiveHub;
  readonly authenticate: Authenticate;
  /** Prometheus exposition text for GET /metrics. */
  readonly metrics?: () => string;
  /** Resolves when storage (and the bus, when remote) can serve; readiness probe. */
  readonly ready: () => Promise<void>;
  readonly version: string;
  /** The inbox page and browser client by path ("/index.html" is served at "/"). */
  readonly webAssets?: ReadonlyMap<string, WebAsset>;
  /** Unexpected errors (the 500s) go here; the client only sees "internal error". */
  readonly onUnexpectedError?: (error: unknown, requestId?: string) => void;
  /** Request log lines (debug, or error for 5xx), each with its request id. */
  readonly logger?: Logger;
}

/** The whole HTTP surface, built from injected dependencies; tests build it the same way. */
export function createApp(deps: AppDeps): AlarmdApp {
  const app: AlarmdApp = new Hono<RequestEnv>();
  if (deps.logger) app.use(requestLog(deps.logger));
  app.route("/", opsRoutes({ ready: deps.ready, version: deps.version, metrics: deps.metrics }));
  app.route("/api/v1/alarms", alarmRoutes(deps.service, deps.authenticate));
  app.route("/api/v1/users/alarms", userAlarmRoutes(deps.service, deps.authenticate));
  app.route("/api/v1/users/alarm", subscribeRoutes(deps.hub, deps.authenticate));
  if (deps.webAssets) app.route("/", webRoutes(deps.webAssets));
  app.notFound((c) =>
    errorResponse(c, { status: 404, code: "not_found", message: "no such endpoint" })
  );
  app.onError((error, c) => {
    const shape = toErrorShape(error);
    if (shape.status === 500) deps.onUnexpectedError?.(error, c.get("requestId"));
    return errorResponse(c, shape);
  });
  return app;
}
