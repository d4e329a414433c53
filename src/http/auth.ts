import type { JWTVerifyGetKey, JWTVerifyOptions, ProtectedHeaderParameters } from "jose";
import { decodeProtectedHeader, errors, jwtVerify } from "jose";
import { AuthUnavailableError, ForbiddenError, UnauthorizedError } from "../domain/errors.ts";
import type { KeySetStatus } from "./key_set.ts";
import { createKeySet } from "./key_set.ts";

/** The scopes of a token that names none; shared, and never added to. */
const NO_SCOPES: ReadonlySet<string> = new Set<string>();

export type { KeySetStatus } from "./key_set.ts";

/** Who is calling, from a verified token. */
export interface Principal {
  readonly userId: string;
  readonly scopes: ReadonlySet<string>;
  /** `exp` in ms since the epoch: streams end then. */
  readonly expiresAt: number;
}

export type Authenticate = (token: string) => Promise<Principal>;

export interface JwtOptions {
  /** HS256: verifies, and is the one `alarmd token` signs with. */
  readonly secret?: string;
  /**
   * HS256, during a rotation: tokens signed with the secret before it still verify until they
   * expire. It never signs, and needs `secret`.
   */
  readonly previousSecret?: string;
  readonly jwksUrl?: string;
  readonly issuer?: string;
  readonly audience?: string;
  /** A failed key set fetch, for the log; `url` has its credentials masked. */
  readonly onKeySetError?: (failure: { url: string; error: string }) => void;
  /** Milliseconds since the epoch, for the key set's ages; tests move it. */
  readonly now?: () => number;
}

export type JwtAuthenticator = Authenticate & {
  /** Fetches the key set first when it was never fetched, is old, or failed to refresh. */
  keySetStatus(): Promise<KeySetStatus>;
};

const ASYMMETRIC = ["RS256", "ES256"];

/**
 * Verifies JWTs with jose. The accepted algorithms follow from the configured keys alone: HS256
 * only with the secret, RS256/ES256 only with the JWKS. A token cannot choose its own key type,
 * which rules out `alg: none` and HS/RS confusion (an RSA public key used as an HMAC secret).
 * During a rotation an HS256 token verifies with the current secret or the previous one; with a
 * key set, rotation goes by `kid` (the provider publishes both keys for a while).
 */
export function createJwtAuthenticator(options: JwtOptions): JwtAuthenticator {
  // Imported once: given bytes, jose imports them as a key again for every token it verifies.
  const hmacKey = (text: string | undefined) =>
    text
      ? crypto.subtle.importKey(
        "raw",
        new TextEncoder().encode(text),
        { name: "HMAC", hash: "SHA-256" },
        false,
        ["verify"],
      )
      : null;
  const secret = hmacKey(options.secret);
  const previousSecret = hmacKey(options.previousSecret);
  if (previousSecret && !secret) throw new Error("a previous JWT secret needs a current one");
  const jwks = options.jwksUrl
    ? createKeySet(new URL(options.jwksUrl), options.now ?? Date.now, options.onKeySetError)
    : null;
  if (!secret && !jwks) throw new Error("no JWT key configured");
  const algorithms = [...(secret ? ["HS256"] : []), ...(jwks ? ASYMMETRIC : [])];
  const getKey: JWTVerifyGetKey = (header, token) => {
    if (header.alg === "HS256" && secret) return secret;
    if (jwks && ASYMMETRIC.includes(header.alg)) return jwks.getKey(header, token);
    throw new errors.JOSEAlgNotAllowed(`algorithm ${header.alg} is not accepted`);
  };

  // Verified tokens by their exact bytes: a backend reuses one token for many requests, and a
  // lookup is far cheaper than checking its signature again. An entry lives until the token's
  // exp, and at most CACHE_TTL_MS. One verified by the key set lives only while the set holds the
  // keys it was verified with (its generation): a key the provider removed stops working when the
  // set is refreshed. The secrets are fixed for the process's life, so a token of a previous
  // secret that a restart removed is never in this cache. Failures are never cached.
  const verified = new Map<string, CacheEntry>();
  const CACHE_MAX = 10_000;
  const CACHE_TTL_MS = 5 * 60_000;

  const authenticate: Authenticate = async (token) => {
    const now = Date.now();
    const hit = verified.get(token);
    if (hit) {
      const current = hit.generation === null || hit.generation === jwks?.generation;
      if (current && now < hit.until && now >= hit.notBefore) return hit.principal;
      verified.delete(token);
    }
    // Read before verifying: keys replaced meanwhile make the entry stale, never the reverse.
    const generation = jwks?.generation ?? null;
    const principal = await verify(token);
    if (verified.size >= CACHE_MAX) verified.delete(verified.keys().next().value!);
    verified.set(token, {
      principal,
      notBefore: principal.notBefore,
      until: Math.min(principal.expiresAt, now + CACHE_TTL_MS),
      generation: principal.byKeySet ? generation : null,
    });
    return principal;
  };
  return Object.assign(authenticate, {
    async keySetStatus(): Promise<KeySetStatus> {
      const status = jwks ? await jwks.status() : { state: "ready" as const };
      if (status.state !== "missing") return status;
      // A secret still verifies HS256 tokens: the instance serves, degraded.
      return secret
        ? { state: "stale", reason: `${status.reason}; only tokens signed with the secret verify` }
        : { state: "missing", reason: `${status.reason}; no token can be verified` };
    },
  });

  async function verify(token: string): Promise<VerifiedPrincipal> {
    let header: ProtectedHeaderParameters;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw new UnauthorizedError("token is not a JWT");
    }
    let payload;
    try {
      ({ payload } = await verifySignatureAndClaims(token, header));
    } catch (error) {
      if (error instanceof AuthUnavailableError) throw error;
      throw new UnauthorizedError(describeJoseError(error));
    }
    const sub = payload.sub;
    // A lone surrogate would be stored as U+FFFD, merging look-alike users into one inbox.
    if (typeof sub !== "string" || sub.length < 1 || sub.length > 128 || !sub.isWellFormed()) {
      throw new UnauthorizedError("token sub must be well-formed text of 1..128 characters");
    }
    const scopes = typeof payload.scope === "string"
      ? payload.scope.split(" ").filter(Boolean)
      : [];
    return {
      userId: sub,
      // A user's token has none: every cached principal would otherwise hold an empty set.
      scopes: scopes.length === 0 ? NO_SCOPES : new Set(scopes),
      expiresAt: (payload.exp as number) * 1000,
      notBefore: typeof payload.nbf === "number" ? payload.nbf * 1000 : 0,
      byKeySet: header.alg !== "HS256",
    };
  }

  /** jose's jwtVerify; an HS256 token that fails the current secret is tried on the previous. */
  async function verifySignatureAndClaims(token: string, header: ProtectedHeaderParameters) {
    const checks: JWTVerifyOptions = {
      algorithms,
      issuer: options.issuer,
      audience: options.audience,
      requiredClaims: ["exp", "sub"],
    };
    try {
      return await jwtVerify(token, getKey, checks);
    } catch (error) {
      const mayBeOlder = previousSecret !== null && header.alg === "HS256" &&
        error instanceof errors.JWSSignatureVerificationFailed;
      if (!mayBeOlder) throw error;
      return await jwtVerify(token, await previousSecret, { ...checks, algorithms: ["HS256"] });
    }
  }
}

interface VerifiedPrincipal extends Principal {
  readonly notBefore: number;
  /** Verified with a key of the JWKS (not a secret). */
  readonly byKeySet: boolean;
}

interface CacheEntry {
  readonly principal: Principal;
  readonly notBefore: number;
  readonly until: number;
  /** The key set's generation it was verified under; null when a secret verified it. */
  readonly generation: number | null;
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

/** Where a request's token came from: the cookie is ambient, the others are explicit. */
export interface FoundToken {
  readonly token: string;
  readonly fromCookie: boolean;
}

/**
 * Finds the token: `Authorization: Bearer`, then the `access_token` query parameter (browser
 * EventSource cannot set headers), then the `alarmd_token` cookie. A token the caller names
 * explicitly wins over the cookie the browser attaches on its own.
 */
export function findToken(
  authorization: string | undefined,
  query: () => string | undefined,
  cookie: () => string | undefined,
): FoundToken | null {
  if (authorization) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!match) throw new UnauthorizedError("Authorization header must be: Bearer <jwt>");
    return { token: match[1], fromCookie: false };
  }
  const fromQuery = query();
  if (fromQuery) return { token: fromQuery, fromCookie: false };
  const fromCookie = cookie();
  return fromCookie ? { token: fromCookie, fromCookie: true } : null;
}

export function assertScope(principal: Principal, scope: string): void {
  if (!principal.scopes.has(scope)) throw new ForbiddenError(`token lacks the scope ${scope}`);
}
