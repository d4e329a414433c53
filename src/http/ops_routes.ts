import { UnavailableError } from "../domain/errors.ts";
import { openApiDocument } from "./openapi.ts";
import { jsonReply } from "./reply.ts";
import type { Route } from "./route.ts";

export interface OpsDeps {
  /**
   * Rejects (UnavailableError) when this instance cannot serve. Otherwise resolves with what is
   * degraded but not fatal (Redis down, a stale key set): nothing, or no reasons, when ready.
   */
  readonly ready: () => Promise<readonly string[] | void>;
  readonly version: string;
  /** The public origin (ALARMD_PUBLIC_URL), listed first among the document's servers. */
  readonly publicUrl?: string;
  /** Prometheus exposition text for GET /metrics. */
  readonly metrics?: () => string;
  /** Which isolate answers (with `--workers`), shown by /healthz. */
  readonly worker?: number;
}

/** Operational endpoints: no token, cheap, safe to poll. */
export function opsRoutes(deps: OpsDeps): Route[] {
  const document = JSON.stringify(openApiDocument(deps.version, { publicUrl: deps.publicUrl }));
  const routes: Route[] = [
    {
      method: "GET",
      path: "/healthz",
      access: "public",
      handle: () =>
        jsonReply(200, { status: "ok", version: deps.version, worker: deps.worker ?? 0 }),
    },
    {
      method: "GET",
      path: "/openapi.json",
      access: "public",
      handle: () => ({
        status: 200,
        headers: { "Content-Type": "application/json" },
        body: document,
      }),
    },
    {
      method: "GET",
      path: "/readyz",
      access: "public",
      async handle() {
        let reasons: readonly string[] | void;
        try {
          reasons = await deps.ready();
        } catch (error) {
          const message = error instanceof Error ? error.message : "not ready";
          const reply = jsonReply(503, { error: { code: "unavailable", message } });
          const retryAfter = error instanceof UnavailableError ? error.retryAfterSeconds : 5;
          reply.headers["Retry-After"] = String(retryAfter);
          return reply;
        }
        // Degraded is still 200: a shared outage (Redis) must not drain every instance at once.
        if (reasons && reasons.length > 0) {
          return jsonReply(200, { status: "degraded", reasons });
        }
        return jsonReply(200, { status: "ready" });
      },
    },
  ];
  routes.push({
    method: "GET",
    path: "/metrics",
    access: "public",
    handle: () => {
      if (!deps.metrics) {
        return jsonReply(404, { error: { code: "not_found", message: "no metrics" } });
      }
      return {
        status: 200,
        headers: {
          "Content-Type": "text/plain; version=0.0.4; charset=utf-8",
          "Cache-Control": "no-store",
        },
        body: deps.metrics(),
      };
    },
  });
  return routes;
}
