/**
 * The `Authorization: vapid t=<JWT>, k=<public key>` header of RFC 8292, signed with jose and
 * reused: one token per (push service origin, key, subject) serves every push to that service
 * for a while, because an ES256 signature per push would cost CPU on the scale of the encryption
 * itself. A reused token always keeps most of its lifetime, so it never expires in flight.
 */
import { SignJWT } from "jose";
import type { VapidKeys } from "../domain/push.ts";
import { importVapidKeys } from "./vapid.ts";

export interface VapidAuthorizer {
  /**
   * The header value for a push to `audience` (the endpoint's origin). Rejects with a
   * VapidKeyError when `keys` cannot sign.
   */
  authorization(audience: string, keys: VapidKeys, subject: string): Promise<string>;
}

export interface VapidAuthorizerOptions {
  readonly now?: () => number;
  /** How long one token is reused; must stay well below `lifetimeMs`. */
  readonly reuseMs?: number;
  /** From signing to the token's `exp`; RFC 8292 allows at most a day. */
  readonly lifetimeMs?: number;
  /** Tokens (and imported keys) kept at most; the oldest goes first. */
  readonly maxEntries?: number;
}

const HOUR_MS = 3_600_000;

export function createVapidAuthorizer(options: VapidAuthorizerOptions = {}): VapidAuthorizer {
  const now = options.now ?? Date.now;
  const reuseMs = options.reuseMs ?? HOUR_MS;
  const lifetimeMs = options.lifetimeMs ?? 12 * HOUR_MS;
  const maxEntries = options.maxEntries ?? 1024;
  if (lifetimeMs > 24 * HOUR_MS || reuseMs * 2 > lifetimeMs) {
    throw new RangeError("VAPID tokens live at most a day and are reused for under half of it");
  }
  const signingKeys = new Map<string, Promise<CryptoKey>>();
  const tokens = new Map<string, { readonly header: Promise<string>; readonly signedAt: number }>();

  const signingKey = (keys: VapidKeys) => {
    const id = `${keys.publicKey} ${keys.privateKey}`;
    return signingKeys.get(id) ?? remember(signingKeys, id, importVapidKeys(keys), maxEntries);
  };

  const sign = async (audience: string, keys: VapidKeys, subject: string, signedAt: number) => {
    const jwt = await new SignJWT({ sub: subject })
      .setProtectedHeader({ typ: "JWT", alg: "ES256" })
      .setAudience(audience)
      .setExpirationTime(Math.floor((signedAt + lifetimeMs) / 1000))
      .sign(await signingKey(keys));
    return `vapid t=${jwt}, k=${keys.publicKey}`;
  };

  return {
    authorization(audience, keys, subject) {
      const id = `${audience} ${keys.publicKey} ${subject}`;
      const at = now();
      const cached = tokens.get(id);
      if (cached && at - cached.signedAt >= 0 && at - cached.signedAt < reuseMs) {
        return cached.header;
      }
      const entry = { header: sign(audience, keys, subject, at), signedAt: at };
      remember(tokens, id, entry, maxEntries);
      entry.header.catch(() => {
        if (tokens.get(id) === entry) tokens.delete(id);
      });
      return entry.header;
    },
  };
}

/**
 * Stores `value` under `key` (last in order), dropping the oldest entries past `max`; a promise
 * that rejects is forgotten, so a failure is retried rather than remembered.
 */
function remember<V>(map: Map<string, V>, key: string, value: V, max: number): V {
  map.delete(key);
  map.set(key, value);
  while (map.size > max) map.delete(map.keys().next().value!);
  if (value instanceof Promise) {
    value.catch(() => {
      if (map.get(key) === value) map.delete(key);
    });
  }
  return value;
}
