import type { LiveHub } from "../domain/live_hub.ts";
import type { BodyReply } from "./reply.ts";
import type { Route } from "./route.ts";
import { subscribeQuerySchema } from "./schemas.ts";
import { parseOr400 } from "./validation.ts";

export const SUBSCRIBE_PATH = "/api/v1/users/alarm/subscribe";

/** Response headers of every stream, whatever the transport. */
export const SSE_HEADERS: Readonly<Record<string, string>> = {
  "Content-Type": "text/event-stream",
  "Cache-Control": "no-cache",
  "Connection": "keep-alive",
  "X-Accel-Buffering": "no",
};

/** Longer ids are not ids alarmd issued: the stream starts with `"replay":"reset"`. */
const LAST_EVENT_ID_MAX = 256;

/**
 * The live stream. Everything that can refuse it (authentication, the cookie rule, the caps)
 * runs before the 200, so a refused tab gets a JSON 4xx/503, which also stops EventSource from
 * retrying. `Last-Event-ID` comes from the header or the `lastEventId` parameter. HEAD answers
 * the stream's headers without holding a place.
 */
export function subscribeRoute(hub: LiveHub): Route {
  return {
    method: "GET",
    path: SUBSCRIBE_PATH,
    access: "user",
    rateLimit: "connection_attempt",
    head: (): BodyReply => ({ status: 200, headers: { ...SSE_HEADERS }, body: null }),
    handle({ request, principal, query }) {
      const params = parseOr400(subscribeQuerySchema, query(), "query");
      const given = request.header("last-event-id") ?? params.lastEventId ?? null;
      // An over-long id is kept out of memory; "" is malformed, which the stream treats as a reset.
      const lastEventId = given !== null && given.length > LAST_EVENT_ID_MAX ? "" : given;
      const reservation = hub.reserve(principal.userId);
      return {
        status: 200,
        headers: { ...SSE_HEADERS },
        open(sink) {
          hub.open(reservation, { sink, lastEventId, tokenExpiresAt: principal.expiresAt });
        },
        cancel: () => reservation.release(),
      };
    },
  };
}
