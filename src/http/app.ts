import type { AlarmService } from "../domain/alarm_service.ts";
import type { LiveHub } from "../domain/live_hub.ts";
import type { Presence } from "../domain/presence.ts";
import type { PushService } from "../domain/push_service.ts";
import { disabledPushService } from "../domain/push_service.ts";
import type { RateLimiter } from "../domain/rate_limiter.ts";
import type { Logger } from "../log.ts";
import type { Authenticate } from "./auth.ts";
import type { ProxyTrust } from "./client_address.ts";
import { parseTrustedProxies } from "./client_address.ts";
import type { OpsDeps } from "./ops_routes.ts";
import { opsRoutes } from "./ops_routes.ts";
import type { OriginPolicy } from "./origin_policy.ts";
import { createOriginPolicy } from "./origin_policy.ts";
import type { Pipeline, RateLimits } from "./pipeline.ts";
import { createPipeline } from "./pipeline.ts";
import { presenceRoutes } from "./presence_routes.ts";
import { publisherRoutes } from "./publisher_routes.ts";
import { pushRoutes } from "./push_routes.ts";
import { subscribeRoute } from "./subscribe_route.ts";
import { userAlarmRoutes } from "./user_alarm_routes.ts";
import type { WebAsset } from "./web_routes.ts";
import { webRoutes } from "./web_routes.ts";

export interface AppDeps extends OpsDeps {
  readonly service: AlarmService;
  readonly hub: LiveHub;
  /** Who has a live stream, for `GET /api/v1/presence`; absent: the endpoint is not served. */
  readonly presence?: Presence;
  readonly authenticate: Authenticate;
  /** Web Push subscriptions and the VAPID key; absent: push is off (`404 push_disabled`). */
  readonly push?: PushService;
  /** The inbox page and browser client by path ("/index.html" is served at "/"). */
  readonly webAssets?: ReadonlyMap<string, WebAsset>;
  /** Unexpected errors (the 500s) go here; the client only sees "internal error". */
  readonly onUnexpectedError?: (error: unknown, requestId: string) => void;
  /** Request log lines (debug, or error for 5xx), each with its request id. */
  readonly logger?: Logger;
  /** Rate limits; absent means none (tests of unrelated behaviour). */
  readonly limits?: RateLimits & { readonly publish: RateLimiter };
  /** CORS and the cookie rule; default: no cross-origin access, own origin from `Host`. */
  readonly origins?: OriginPolicy;
  /** Peers whose X-Forwarded-* headers are believed; default: none. */
  readonly proxies?: ProxyTrust;
}

/** The whole HTTP surface, built from injected dependencies; tests build it the same way. */
export function createApp(deps: AppDeps): Pipeline {
  return createPipeline({
    routes: [
      ...opsRoutes(deps),
      ...publisherRoutes(deps.service, deps.limits?.publish),
      ...(deps.presence ? presenceRoutes(deps.presence, deps.limits?.publish) : []),
      ...userAlarmRoutes(deps.service),
      subscribeRoute(deps.hub),
      ...pushRoutes(deps.push ?? disabledPushService()),
      ...(deps.webAssets ? webRoutes(deps.webAssets) : []),
    ],
    authenticate: deps.authenticate,
    origins: deps.origins ?? createOriginPolicy(""),
    proxies: deps.proxies ?? parseTrustedProxies(""),
    limits: deps.limits,
    logger: deps.logger,
    onUnexpectedError: deps.onUnexpectedError,
  });
}
