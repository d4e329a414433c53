import { z } from "zod";
import type { Presence } from "../domain/presence.ts";
import type { RateLimiter } from "../domain/rate_limiter.ts";
import { splitTarget } from "./pipeline.ts";
import { ValidationError } from "./errors.ts";
import { jsonReply } from "./reply.ts";
import type { Route } from "./route.ts";
import { userIdSchema } from "./schemas.ts";
import { parseOr400 } from "./validation.ts";

/** Users one presence request may ask about. */
export const PRESENCE_MAX_USERS = 100;

/** `?userId=a&userId=b`: every value of the repeated parameter, in order. */
export const presenceQuerySchema = z.object({
  userId: z.array(userIdSchema)
    .min(1, "at least one userId is required")
    .max(PRESENCE_MAX_USERS, `at most ${PRESENCE_MAX_USERS} userId values`),
});

/**
 * Whether users have a live stream, for publishers (to pick a channel, say). Answered from the
 * presence mirror in memory: it never waits on another instance, and is 503 when the counts
 * cannot be known. A request costs one token of the publisher's rate.
 */
export function presenceRoutes(presence: Presence, publishLimit?: RateLimiter): Route[] {
  return [
    {
      method: "GET",
      path: "/api/v1/presence",
      access: "publisher",
      handle({ request, principal }) {
        publishLimit?.take(principal.userId);
        const values = queryValues(splitTarget(request.target).search, "userId");
        const { userId } = parseOr400(presenceQuerySchema, { userId: values }, "query");
        const counts = presence.connections(userId);
        return jsonReply(200, {
          users: userId.map((id, i) => ({
            userId: id,
            online: counts[i] > 0,
            connections: counts[i],
          })),
        });
      },
    },
  ];
}

/**
 * Every value of the query parameter `name`, in order. Strict where URLSearchParams is lenient:
 * percent-encoding that is not UTF-8 (a lone surrogate, say) is a 400, not a U+FFFD that would
 * name another user.
 */
function queryValues(search: string, name: string): string[] {
  const values: string[] = [];
  for (const pair of search.split("&")) {
    const eq = pair.indexOf("=");
    const key = decodeOrNull(eq === -1 ? pair : pair.slice(0, eq));
    if (key !== name) continue;
    const value = decodeOrNull(eq === -1 ? "" : pair.slice(eq + 1));
    if (value === null) {
      throw new ValidationError([
        { path: `${name}.${values.length}`, message: "is not valid percent-encoded UTF-8" },
      ]);
    }
    values.push(value);
  }
  return values;
}

function decodeOrNull(text: string): string | null {
  try {
    return decodeURIComponent(text.replace(/\+/g, " "));
  } catch {
    return null;
  }
}
