import { Hono } from "hono";
import { openApiDocument } from "./openapi.ts";

/** Operational endpoints: no token, cheap, safe to poll. */
export function opsRoutes(
  deps: { ready: () => Promise<void>; version: string; metrics?: () => string; worker?: number },
) {
  const document = openApiDocument(deps.version);
  return new Hono()
    .get(
      "/healthz",
      (c) => c.json({ status: "ok", version: deps.version, worker: deps.worker ?? 0 }),
    )
    .get("/metrics", (c) => {
      if (!deps.metrics) return c.notFound();
      c.header("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
      c.header("Cache-Control", "no-store");
      return c.body(deps.metrics());
    })
    .get("/openapi.json", (c) => c.json(document))
    .get("/readyz", async (c) => {
      try {
        await deps.ready();
        return c.json({ status: "ready" });
      } catch (error) {
        c.header("Retry-After", "5");
        const message = error instanceof Error ? error.message : "not ready";
        return c.json({ error: { code: "unavailable", message } }, 503);
      }
    });
}
