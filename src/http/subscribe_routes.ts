import { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import type { LiveHub } from "../domain/live_hub.ts";
import type { Authenticate, AuthEnv } from "./auth.ts";
import { authenticated } from "./auth.ts";
import { subscribeQuerySchema } from "./schemas.ts";
import { createStreamSseSink } from "./stream_sse_sink.ts";
import { validate } from "./validation.ts";

/**
 * The live stream. The caps are checked before the 200 starts, so a refused tab gets a JSON
 * 429/503 (which also stops EventSource from retrying) instead of an empty stream.
 */
export function subscribeRoutes(hub: LiveHub, authenticate: Authenticate) {
  return new Hono<AuthEnv>()
    .use(authenticated(authenticate))
    .get("/subscribe", validate("query", subscribeQuerySchema), (c) => {
      const principal = c.var.principal;
      const lastEventId = c.req.header("last-event-id") ?? c.req.valid("query").lastEventId ??
        null;
      const reservation = hub.reserve(principal.userId);
      c.header("X-Accel-Buffering", "no");
      return streamSSE(c, async (stream) => {
        try {
          const connection = hub.open(reservation, {
            sink: createStreamSseSink(stream),
            lastEventId,
            tokenExpiresAt: principal.expiresAt,
          });
          await connection.closed;
        } finally {
          reservation.release();
        }
      });
    });
}
