import { Hono } from "hono";

/** Operational endpoints: no token, cheap, safe to poll. */
export function opsRoutes(deps: { ready: () => Promise<void>; version: string }) {
  return new Hono()
    .get("/healthz", (c) => c.json({ status: "ok", version: deps.version }))
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
