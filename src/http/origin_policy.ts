/**
 * Which browser origins may use the API. Two rules share the origin comparison: CORS (which
 * cross-origin pages may read answers) and the cookie rule (a request authenticated by the
 * `alarmd_token` cookie is served only to a page of an allowed origin, since the browser attaches
 * the cookie to forged cross-site requests too).
 */
export interface OriginPolicy {
  /** Origins allowed by CORS: "*", a set, or none. */
  readonly corsOrigins: "*" | ReadonlySet<string> | null;
  /** ALARMD_PUBLIC_URL's origin: what browsers use to reach alarmd, when it is configured. */
  readonly publicOrigin: string | null;
}

export function createOriginPolicy(corsOrigins: string, publicUrl?: string): OriginPolicy {
  return {
    corsOrigins: parseCorsOrigins(corsOrigins),
    publicOrigin: publicUrl ? new URL(publicUrl).origin : null,
  };
}

function parseCorsOrigins(value: string): OriginPolicy["corsOrigins"] {
  if (value === "") return null;
  if (value === "*") return "*";
  return new Set(value.split(",").map((o) => o.trim()).filter(Boolean));
}

/** The origin to echo for a request from `origin`, or null when CORS does not allow it. */
export function allowedOrigin(policy: OriginPolicy, origin: string | undefined): string | null {
  if (!origin || !policy.corsOrigins) return null;
  if (policy.corsOrigins === "*") return "*";
  return policy.corsOrigins.has(origin) ? origin : null;
}

const ALLOW_HEADERS = "Authorization, Content-Type, Idempotency-Key, Last-Event-ID, X-Request-Id";
const EXPOSE_HEADERS = "Retry-After, X-Request-Id";
const ALLOW_METHODS = "GET, HEAD, POST, DELETE, OPTIONS";

/** CORS headers for an actual (non-preflight) answer. */
export function corsHeaders(policy: OriginPolicy, origin: string | undefined) {
  const allowed = allowedOrigin(policy, origin);
  if (!allowed) return null;
  const headers: Record<string, string> = {
    "Access-Control-Allow-Origin": allowed,
    "Access-Control-Expose-Headers": EXPOSE_HEADERS,
  };
  if (allowed !== "*") {
    headers["Access-Control-Allow-Credentials"] = "true";
    headers["Vary"] = "Origin";
  }
  return headers;
}

/** The answer to a CORS preflight: 204, with the grants when the origin is allowed. */
export function preflightHeaders(
  policy: OriginPolicy,
  origin: string | undefined,
): Record<string, string> {
  const headers = corsHeaders(policy, origin);
  if (!headers) return { Vary: "Origin" };
  return {
    ...headers,
    "Access-Control-Allow-Methods": ALLOW_METHODS,
    "Access-Control-Allow-Headers": ALLOW_HEADERS,
    "Access-Control-Max-Age": "600",
  };
}

/**
 * Whether a cookie-authenticated request comes from a page allowed to use the cookie: the
 * browser says it is same-origin, or its `Origin` is alarmd's own or a listed CORS origin.
 * `same-site` (a sibling subdomain), `null` origins and requests with neither header are refused;
 * `*` never admits a cookie.
 */
export function cookieRequestAllowed(
  policy: OriginPolicy,
  request: { origin?: string; fetchSite?: string; ownOrigin: string | null },
): boolean {
  if (request.fetchSite === "same-origin") return true;
  const origin = request.origin;
  if (!origin || origin === "null") return false;
  if (origin === (policy.publicOrigin ?? request.ownOrigin)) return true;
  return policy.corsOrigins instanceof Set && policy.corsOrigins.has(origin);
}

/** Headers every answer carries, whatever the route and transport. */
export function securityHeaders(policy: OriginPolicy): Readonly<Record<string, string>> {
  return {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Resource-Policy": policy.corsOrigins ? "cross-origin" : "same-origin",
  };
}
