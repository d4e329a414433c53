import type { FlattenedJWSInput, JWTHeaderParameters, JWTVerifyGetKey, LocalJWKSet } from "jose";
import { createLocalJWKSet, decodeProtectedHeader, errors, jwtVerify } from "jose";
import { AuthUnavailableError, ForbiddenError, UnauthorizedError } from "../domain/errors.ts";

/** Who is calling, from a verified token. */
export interface Principal {
  readonly userId: string;
  readonly scopes: ReadonlySet<string>;
  /** `exp` in ms since the epoch: streams end then. */
  readonly expiresAt: number;
}

export type Authenticate = (token: string) => Promise<Principal>;

export interface JwtOptions {
  readonly secret?: string;
  readonly jwksUrl?: string;
  readonly issuer?: string;
  readonly audience?: string;
  /** A failed key set fetch, for the log; `url` has its credentials masked. */
  readonly onKeySetError?: (failure: { url: string; error: string }) => void;
  /** Milliseconds since the epoch, for the key set's ages; tests move it. */
  readonly now?: () => number;
}

/** How the identity provider's key set stands, for readiness. */
export type KeySetStatus =
  | { readonly state: "ready" }
  /** The key set cannot be fetched, but some tokens still verify (cached keys, or the secret). */
  | { readonly state: "stale"; readonly reason: string }
  /** No key set was ever fetched and no secret is configured: no token can be verified. */
  | { readonly state: "missing"; readonly reason: string };

export type JwtAuthenticator = Authenticate & {
  /** Fetches the key set first when it was never fetched, is old, or failed to refresh. */
  keySetStatus(): Promise<KeySetStatus>;
};

const ASYMMETRIC = ["RS256", "ES256"];
/** A key set older than this is refreshed, while its keys go on verifying meanwhile. */
const KEYS_MAX_AGE_MS = 10 * 60_000;
/** A token naming a key the set lacks fetches the set again, at most this often. */
const UNKNOWN_KEY_COOLDOWN_MS = 30_000;
/** After a failed fetch, the next waits this long: a down provider is not hammered per request. */
const FETCH_RETRY_MS = 1_000;
const FETCH_TIMEOUT_MS = 5_000;

/**
 * Verifies JWTs with jose. The accepted algorithms follow from the configured keys alone: HS256
 * only with the secret, RS256/ES256 only with the JWKS. A token cannot choose its own key type,
 * which rules out `alg: none` and HS/RS confusion (an RSA public key used as an HMAC secret).
 */
export function createJwtAuthenticator(options: JwtOptions): JwtAuthenticator {
  const secret = options.secret ? new TextEncoder().encode(options.secret) : null;
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
  // exp, and at most CACHE_TTL_MS so that a key removed from the JWKS stops working soon.
  // Failures are never cached.
  const verified = new Map<string, { principal: Principal; notBefore: number; until: number }>();
  const CACHE_MAX = 10_000;
  const CACHE_TTL_MS = 5 * 60_000;

  const authenticate: Authenticate = async (token) => {
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
      if (error instanceof AuthUnavailableError) throw error;
      throw new UnauthorizedError(describeJoseError(error));
    }
    const sub = payload.sub;
    // A lone surrogate would be stored as U+FFFD, merging look-alike users into one inbox.
    if (typeof sub !== "string" || sub.length < 1 || sub.length > 128 || !sub.isWellFormed()) {
      throw new UnauthorizedError("token sub must be well-formed text of 1..128 characters");
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

/**
 * The identity provider's key set (JWKS), fetched on first use and refreshed when old or when a
 * token names a key it lacks. When a fetch fails, the keys at hand go on verifying the tokens
 * they can, and a token that needs a key they lack is AuthUnavailableError (a 503: the token may
 * be fine) rather than a 401 that would make a client throw a good token away.
 */
function createKeySet(
  url: URL,
  now: () => number,
  onError?: (failure: { url: string; error: string }) => void,
) {
  const shown = maskUserinfo(url.href);
  let keys: LocalJWKSet | null = null;
  let fetchedAt = 0;
  let failure: { at: number; error: string } | null = null;
  let pending: Promise<void> | null = null;

  /** Fetches the set, or joins the fetch under way; never rejects (failures are recorded). */
  function refresh(): Promise<void> {
    if (pending) return pending;
    if (failure && now() - failure.at < FETCH_RETRY_MS) return Promise.resolve();
    pending = fetchKeySet(url).then(
      (set) => {
        keys = set;
        fetchedAt = now();
        failure = null;
      },
      (error) => {
        failure = { at: now(), error: maskUserinfo(describeFetchError(error)) };
        onError?.({ url: shown, error: failure.error });
      },
    ).finally(() => (pending = null));
    return pending;
  }

  const unavailable = () =>
    new AuthUnavailableError("the keys that verify this token cannot be fetched; try again later");

  return {
    async getKey(header: JWTHeaderParameters, token: FlattenedJWSInput) {
      if (keys === null) await refresh();
      // Read again after the await: the fetch may have just set it.
      const current = keys as LocalJWKSet | null;
      if (current === null) throw unavailable();
      if (now() - fetchedAt >= KEYS_MAX_AGE_MS) void refresh();
      try {
        return await current(header, token);
      } catch (error) {
        if (!(error instanceof errors.JWKSNoMatchingKey)) throw error;
        if (now() - fetchedAt < UNKNOWN_KEY_COOLDOWN_MS) throw error;
        // The provider may have added the key since: fetch again.
        await refresh();
        if (failure !== null) throw unavailable();
        return await keys!(header, token);
      }
    },
    async status(): Promise<KeySetStatus> {
      if (keys === null || failure !== null || now() - fetchedAt >= KEYS_MAX_AGE_MS) {
        await refresh();
      }
      if (keys === null) {
        const why = failure?.error ?? "not fetched yet";
        return {
          state: "missing",
          reason: `the JWT key set at ${shown} was never fetched (${why})`,
        };
      }
      if (failure !== null) {
        return {
          state: "stale",
          reason: `the JWT key set at ${shown} cannot be refreshed (${failure.error}); ` +
            "its cached keys still verify tokens",
        };
      }
      return { state: "ready" };
    },
  };
}

async function fetchKeySet(url: URL): Promise<LocalJWKSet> {
  // Redirects are not followed: the key set is trusted for where it was configured only.
  const res = await fetch(url, {
    redirect: "manual",
    signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
    headers: { accept: "application/json, application/jwk-set+json" },
  });
  if (res.status !== 200) {
    await res.body?.cancel();
    throw new Error(`HTTP ${res.status}`);
  }
  return createLocalJWKSet(await res.json());
}

function describeFetchError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : "";
  return `${error.message}${cause}`;
}

/** A URL as it may be logged: credentials in it (`https://user:pass@host/`) become `***`. */
function maskUserinfo(url: string): string {
  return url.replace(/\/\/[^@/\s]*@/g, "//***@");
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
