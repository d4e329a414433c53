import type { RateLimiter } from "../domain/rate_limiter.ts";

/**
 * The abuse limits and browser policy, shared by the Hono routes and the native node:http paths
 * so both transports enforce the same things.
 */
export interface Guards {
  /** Per publisher `sub`: `cost` alarms (a batch costs its size). */
  readonly publish: RateLimiter;
  /** Per user, on the user endpoints. */
  readonly user: RateLimiter;
  /** Per client IP, on stream attempts (before authentication, so floods cost little). */
  readonly connect: RateLimiter;
  /** Origins allowed by CORS: "*", a set, or none. */
  readonly corsOrigins: "*" | ReadonlySet<string> | null;
}

export function parseCorsOrigins(value: string): Guards["corsOrigins"] {
  if (value === "") return null;
  if (value === "*") return "*";
  return new Set(value.split(",").map((o) => o.trim()).filter(Boolean));
}

/** The origin to echo for a request from `origin`, or null when CORS does not allow it. */
export function allowedOrigin(guards: Guards, origin: string | undefined): string | null {
  if (!origin || !guards.corsOrigins) return null;
  if (guards.corsOrigins === "*") return "*";
  return guards.corsOrigins.has(origin) ? origin : null;
}

export const CORS_ALLOW_HEADERS = [
  "Authorization",
  "Content-Type",
  "Idempotency-Key",
  "Last-Event-ID",
  "X-Request-Id",
];
export const CORS_EXPOSE_HEADERS = ["Retry-After", "X-Request-Id"];

/** CORS headers for an actual (non-preflight) response on the native paths. */
export function corsHeaders(guards: Guards, origin: string | undefined): Record<string, string> {
  const allowed = allowedOrigin(guards, origin);
  if (!allowed) return {};
  return {
    "Access-Control-Allow-Origin": allowed,
    "Access-Control-Expose-Headers": CORS_EXPOSE_HEADERS.join(", "),
    ...(allowed === "*" ? {} : { "Access-Control-Allow-Credentials": "true", Vary: "Origin" }),
  };
}

/** Headers every API response carries, whatever the transport. */
export const BASE_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "X-Frame-Options": "DENY",
};
