import { getCookie } from "hono/cookie";
import { createMiddleware } from "hono/factory";
import type { JWTVerifyGetKey } from "jose";
import { createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify } from "jose";
import { ForbiddenError, UnauthorizedError } from "../domain/errors.ts";

/** Who is calling, from a verified token. */
export interface Principal {
  readonly userId: string;
  readonly scopes: ReadonlySet<string>;
  /** `exp` in ms since the epoch: streams end then. */
  readonly expiresAt: number;
}

export type Authenticate = (token: string) => Promise<Principal>;

export type AuthEnv = { Variables: { principal: Principal } };

export const PUBLISH_SCOPE = "alarms:publish";

export interface JwtOptions {
  readonly secret?: string;
  readonly jwksUrl?: string;
  readonly issuer?: string;
  readonly audience?: string;
}

const ASYMMETRIC = ["RS256", "ES256"];

/**
 * Verifies JWTs with jose. The accepted algorithms follow from the configured keys alone: HS256
 * only with the secret, RS256/ES256 only with the JWKS. A token cannot choose its own key type,
 * which rules out `alg: none` and HS/RS confusion (an RSA public key used as an HMAC secret).
 */
export function createJwtAuthenticator(options: JwtOptions): Authenticate {
  const secret = options.secret ? new TextEncoder().encode(options.secret) : null;
  const jwks = options.jwksUrl
    ? createRemoteJWKSet(new URL(options.jwksUrl), {
      cacheMaxAge: 10 * 60_000,
      cooldownDuration: 30_000,
      timeoutDuration: 5_000,
    })
    : null;
  if (!secret && !jwks) throw new Error("no JWT key configured");
  const algorithms = [...(secret ? ["HS256"] : []), ...(jwks ? ASYMMETRIC : [])];
  const getKey: JWTVerifyGetKey = (header, token) => {
    if (header.alg === "HS256" && secret) return secret;
    if (jwks && ASYMMETRIC.includes(header.alg)) return jwks(header, token);
    throw new errors.JOSEAlgNotAllowed(`algorithm ${header.alg} is not accepted`);
  };

  // Verified tokens by their exact bytes: a backend reuses one token for thousands of requests,
  // and an HMAC check costs ~50 µs. An entry lives until the token's exp, and at most 5 minutes
  // so that a key removed from the JWKS stops working soon. Failures are never cached.
  const verified = new Map<string, { principal: Principal; notBefore: number; until: number }>();
  const CACHE_MAX = 10_000;
  const CACHE_TTL_MS = 5 * 60_000;

  return async (token) => {
    const now = Date.now();
    const hit = verified.get(token);
    if (hit) {
      if (now < hit.until && now >= hit.notBefore) return hit.principal;
      verified.delete(token);
    }
    const principal = await verify(token);
    if (verified.size >= CACHE_MAX) verified.delete(verified.keys().next().value!);
    verified.set(token, {
      principal,
      notBefore: principal.notBefore,
      until: Math.min(principal.expiresAt, now + CACHE_TTL_MS),
    });
    return principal;
  };

  async function verify(token: string): Promise<Principal & { notBefore: number }> {
    try {
      decodeProtectedHeader(token);
    } catch {
      throw new UnauthorizedError("token is not a JWT");
    }
    let payload;
    try {
      ({ payload } = await jwtVerify(token, getKey, {
        algorithms,
        issuer: options.issuer,
        audience: options.audience,
        requiredClaims: ["exp", "sub"],
      }));
    } catch (error) {
      throw new UnauthorizedError(describeJoseError(error));
    }
    const sub = payload.sub;
    if (typeof sub !== "string" || sub.length < 1 || sub.length > 128) {
      throw new UnauthorizedError("token sub must be a string of 1..128 characters");
    }
    const scope = typeof payload.scope === "string" ? payload.scope : "";
    return {
      userId: sub,
      scopes: new Set(scope.split(" ").filter(Boolean)),
      expiresAt: (payload.exp as number) * 1000,
      notBefore: typeof payload.nbf === "number" ? payload.nbf * 1000 : 0,
    };
  }
}

function describeJoseError(error: unknown): string {
  if (error instanceof errors.JWTExpired) return "token has expired";
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === "nbf") return "token is not valid yet";
    if (error.claim === "iss") return "token issuer is not accepted";
    if (error.claim === "aud") return "token audience is not accepted";
    return `token claim ${error.claim} is missing or invalid`;
  }
  if (error instanceof errors.JOSEAlgNotAllowed) return "token algorithm is not accepted";
  if (error instanceof errors.JWSSignatureVerificationFailed) return "token signature is invalid";
  if (error instanceof errors.JWKSNoMatchingKey) return "token key is unknown";
  if (error instanceof errors.JWKSTimeout || error instanceof errors.JOSEError) {
    return error instanceof errors.JWKSTimeout ? "token keys are unavailable" : "token is invalid";
  }
  return "token is invalid";
}

/**
 * Finds the token: `Authorization: Bearer`, then the `alarmd_token` cookie, then the
 * `access_token` query parameter (browser EventSource cannot set headers).
 */
export function tokenFrom(
  authorization: string | undefined,
  cookie: string | undefined,
  query: string | undefined,
): string | null {
  if (authorization) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!match) throw new UnauthorizedError("Authorization header must be: Bearer <jwt>");
    return match[1];
  }
  return cookie || query || null;
}

export function authenticated(authenticate: Authenticate) {
  return createMiddleware<AuthEnv>(async (c, next) => {
    const token = tokenFrom(
      c.req.header("authorization"),
      getCookie(c, "alarmd_token"),
      c.req.query("access_token"),
    );
    if (!token) throw new UnauthorizedError("a bearer token is required");
    c.set("principal", await authenticate(token));
    await next();
  });
}

export function assertScope(principal: Principal, scope: string): void {
  if (!principal.scopes.has(scope)) throw new ForbiddenError(`token lacks the scope ${scope}`);
}

export function requireScope(scope: string) {
  return createMiddleware<AuthEnv>(async (c, next) => {
    assertScope(c.var.principal, scope);
    await next();
  });
}
