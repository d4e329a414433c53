import { Hono } from "hono";
import { cors } from "hono/cors";
import { secureHeaders } from "hono/secure-headers";
import type { Guards } from "./guards.ts";
import { allowedOrigin, CORS_ALLOW_HEADERS, CORS_EXPOSE_HEADERS } from "./guards.ts";
import type { AlarmService } from "../domain/alarm_service.ts";
import type { LiveHub } from "../domain/live_hub.ts";
import { alarmRoutes, userAlarmRoutes } from "./alarm_routes.ts";
import type { Authenticate } from "./auth.ts";
import { errorResponse, isClientGone, toErrorShape } from "./errors.ts";
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
  /** Which isolate answers (with `--workers`), shown by /healthz. */
  readonly worker?: number;
  /** The inbox page and browser client by path ("/index.html" is served at "/"). */
  readonly webAssets?: ReadonlyMap<string, WebAsset>;
  /** Unexpected errors (the 500s) go here; the client only sees "internal error". */
  readonly onUnexpectedError?: (error: unknown, requestId?: string) => void;
  /** Request log lines (debug, or error for 5xx), each with its request id. */
  readonly logger?: Logger;
  /** Rate limits and CORS; absent means none (tests of unrelated behaviour). */
  readonly guards?: Guards;
}

/** The whole HTTP surface, built from injected dependencies; tests build it the same way. */
export function createApp(deps: AppDeps): AlarmdApp {
  const app: AlarmdApp = new Hono<RequestEnv>();
  if (deps.logger) app.use(requestLog(deps.logger));
  const guards = deps.guards;
  app.use(secureHeaders({
    // HTML pages set their own policy; API responses are JSON and need none.
    contentSecurityPolicy: undefined,
    crossOriginEmbedderPolicy: false,
    crossOriginResourcePolicy: guards?.corsOrigins ? "cross-origin" : "same-origin",
    strictTransportSecurity: false,
    xFrameOptions: "DENY",
  }));
  if (guards?.corsOrigins) {
    app.use(cors({
      origin: (origin) => allowedOrigin(guards, origin),
      allowMethods: ["GET", "POST", "DELETE", "OPTIONS"],
      allowHeaders: CORS_ALLOW_HEADERS,
      exposeHeaders: CORS_EXPOSE_HEADERS,
      credentials: guards.corsOrigins !== "*",
      maxAge: 600,
    }));
  }
  app.route(
    "/",
    opsRoutes({
      ready: deps.ready,
      version: deps.version,
      metrics: deps.metrics,
      worker: deps.worker ?? 0,
    }),
  );
  app.route("/api/v1/alarms", alarmRoutes(deps.service, deps.authenticate, guards));
  app.route("/api/v1/users/alarms", userAlarmRoutes(deps.service, deps.authenticate, guards));
  app.route("/api/v1/users/alarm", subscribeRoutes(deps.hub, deps.authenticate, guards));
  if (deps.webAssets) app.route("/", webRoutes(deps.webAssets));
  app.notFound((c) =>
    errorResponse(c, { status: 404, code: "not_found", message: "no such endpoint" })
  );
  app.onError((error, c) => {
    const shape = toErrorShape(error);
    if (shape.status === 500 && isClientGone(error, c.req.raw.signal)) {
      // Nobody reads this answer; 499 (nginx's "client closed request") keeps the access log
      // from counting a client's hang-up as a server error.
      return new Response(null, { status: 499 });
    }
    if (shape.status === 500) deps.onUnexpectedError?.(error, c.get("requestId"));
    return errorResponse(c, shape);
  });
  return app;
}
