import type { FlattenedJWSInput, JWTHeaderParameters, LocalJWKSet } from "jose";
import { createLocalJWKSet, errors } from "jose";
import { AuthUnavailableError } from "../domain/errors.ts";

/** How the identity provider's key set stands, for readiness. */
export type KeySetStatus =
  | { readonly state: "ready" }
  /** The key set cannot be fetched, but some tokens still verify (cached keys, or the secret). */
  | { readonly state: "stale"; readonly reason: string }
  /** No key set was ever fetched and no secret is configured: no token can be verified. */
  | { readonly state: "missing"; readonly reason: string };

/** A key set older than this is refreshed, while its keys go on verifying meanwhile. */
const KEYS_MAX_AGE_MS = 10 * 60_000;
/** A token naming a key the set lacks fetches the set again, at most this often. */
const UNKNOWN_KEY_COOLDOWN_MS = 30_000;
/** After a failed fetch, the next waits this long: a down provider is not hammered per request. */
const FETCH_RETRY_MS = 1_000;
const FETCH_TIMEOUT_MS = 5_000;

/**
 * The identity provider's key set (JWKS), fetched on first use and refreshed when old or when a
 * token names a key it lacks. When a fetch fails, the keys at hand go on verifying the tokens
 * they can, and a token that needs a key they lack is AuthUnavailableError (a 503: the token may
 * be fine) rather than a 401 that would make a client throw a good token away.
 *
 * `generation` counts the fetches that replaced the keys: a token verified under an older
 * generation must be verified again, so that a key the provider removed stops working as soon as
 * the set is refreshed, whatever a cache remembers.
 */
export function createKeySet(
  url: URL,
  now: () => number,
  onError?: (failure: { url: string; error: string }) => void,
) {
  const shown = maskUserinfo(url.href);
  let keys: LocalJWKSet | null = null;
  let fetchedAt = 0;
  let generation = 0;
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
        generation++;
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
    /** Changes whenever a fetch replaces the keys. */
    get generation(): number {
      return generation;
    },
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
