import { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import type { LiveHub } from "../domain/live_hub.ts";
import type { Authenticate, AuthEnv } from "./auth.ts";
import { authenticated } from "./auth.ts";
import { createStreamSseSink } from "./stream_sse_sink.ts";
import { prepareSubscription, SSE_HEADERS } from "./subscription.ts";
import type { Guards } from "./guards.ts";
import { createMiddleware } from "hono/factory";

/** The client's address, as the Deno.serve and node:http adapters each report it. */
function clientIp(env: unknown): string {
  const e = env as {
    remoteAddr?: { hostname?: string };
    incoming?: { socket?: { remoteAddress?: string } };
  } | undefined;
  return e?.remoteAddr?.hostname ?? e?.incoming?.socket?.remoteAddress ?? "unknown";
}

/**
 * The live stream on Hono's `streamSSE`. The caps are checked before the 200 starts, so a
 * refused tab gets a JSON 429/503 (which also stops EventSource from retrying).
 */
export function subscribeRoutes(hub: LiveHub, authenticate: Authenticate, guards?: Guards) {
  return new Hono<AuthEnv>()
    .use(createMiddleware(async (c, next) => {
      guards?.connect.take(clientIp(c.env));
      await next();
    }))
    .use(authenticated(authenticate))
    .get("/subscribe", (c) => {
      const { principal, reservation, lastEventId } = prepareSubscription(hub, c.var.principal, {
        lastEventIdHeader: c.req.header("last-event-id") ?? null,
        query: c.req.query(),
      });
      for (const [name, value] of Object.entries(SSE_HEADERS)) c.header(name, value);
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
