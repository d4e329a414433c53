import type { LiveHub, Reservation } from "../domain/live_hub.ts";
import type { Principal } from "./auth.ts";
import { subscribeQuerySchema } from "./schemas.ts";
import { parseOr400 } from "./validation.ts";

/** What a stream needs once its request passed auth, validation and the caps. */
export interface Subscription {
  readonly principal: Principal;
  readonly reservation: Reservation;
  readonly lastEventId: string | null;
}

/** Response headers of every stream, whatever the transport. */
export const SSE_HEADERS: Readonly<Record<string, string>> = {
  "Content-Type": "text/event-stream",
  "Cache-Control": "no-cache",
  "Connection": "keep-alive",
  "X-Accel-Buffering": "no",
};

export const SUBSCRIBE_PATH = "/api/v1/users/alarm/subscribe";

/**
 * The checks before a stream's 200, shared by both transports so they cannot drift: the query
 * is validated, `Last-Event-ID` comes from the header or the `lastEventId` parameter, and the
 * caps are checked (LimitExceededError) before anything is written.
 */
export function prepareSubscription(
  hub: LiveHub,
  principal: Principal,
  request: { lastEventIdHeader: string | null; query: Record<string, string> },
): Subscription {
  const query = parseOr400(subscribeQuerySchema, request.query, "query");
  const lastEventId = request.lastEventIdHeader ?? query.lastEventId ?? null;
  return { principal, lastEventId, reservation: hub.reserve(principal.userId) };
}
