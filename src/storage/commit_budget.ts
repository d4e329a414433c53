import { keyByteLength } from "./kv_keys.ts";

/** Deno KV's limits per atomic commit, with headroom for what the estimate does not see. */
export const KV_COMMIT_LIMITS = {
  checks: 100,
  mutations: 1000,
  keyBytes: 76 * 1024,
  totalBytes: 760 * 1024,
} as const;

/**
 * One staged write: a sum when `sum` is given, a set when `value` is, else a delete; `bytes`
 * estimates the value.
 */
export interface Mutation {
  readonly key: Deno.KvKey;
  readonly value?: unknown;
  readonly sum?: bigint;
  readonly expireIn?: number;
  readonly bytes: number;
}

export interface Check {
  readonly key: Deno.KvKey;
  readonly versionstamp: string | null;
}

/** Bytes are counted as they are; any other value as V8 serializes a small record. */
export function setMutation(key: Deno.KvKey, value: unknown, expireIn?: number): Mutation {
  return { key, value, expireIn, bytes: value instanceof Uint8Array ? value.byteLength + 8 : 64 };
}

export function deleteMutation(key: Deno.KvKey): Mutation {
  return { key, bytes: 0 };
}

/** Adds to a KvU64 counter: commutative, so it needs no check and never conflicts. */
export function sumMutation(key: Deno.KvKey, n: number): Mutation {
  return { key, sum: BigInt(n), bytes: 16 };
}

/** Stages `mutations` on `atomic`. */
export function applyMutations(atomic: Deno.AtomicOperation, mutations: readonly Mutation[]) {
  for (const m of mutations) {
    if (m.sum !== undefined) atomic.sum(m.key, m.sum);
    else if (m.value === undefined) atomic.delete(m.key);
    else atomic.set(m.key, m.value, m.expireIn ? { expireIn: m.expireIn } : undefined);
  }
}

/**
 * What one atomic commit has left. `admit` takes a write's mutations and checks only if all of
 * them fit, so a batch ends at a write boundary; the first write is always admitted (a single
 * write is validated to fit on its own).
 */
export interface CommitBudget {
  admit(mutations: readonly Mutation[], checks: readonly Check[]): boolean;
}

/** `reserved` is spent up front, for what the batch adds at the end (the writer claim key). */
export function createCommitBudget(
  reserved = { checks: 0, mutations: 0, keyBytes: 0, totalBytes: 0 },
): CommitBudget {
  const used = { ...reserved };
  let admitted = 0;
  return {
    admit(mutations, checks) {
      let keyBytes = 0;
      let totalBytes = 0;
      for (const m of mutations) {
        const k = keyByteLength(m.key);
        keyBytes += k;
        totalBytes += k + m.bytes;
      }
      for (const c of checks) keyBytes += keyByteLength(c.key);
      if (
        admitted > 0 && (
          used.checks + checks.length > KV_COMMIT_LIMITS.checks ||
          used.mutations + mutations.length > KV_COMMIT_LIMITS.mutations ||
          used.keyBytes + keyBytes > KV_COMMIT_LIMITS.keyBytes ||
          used.totalBytes + totalBytes > KV_COMMIT_LIMITS.totalBytes
        )
      ) return false;
      used.checks += checks.length;
      used.mutations += mutations.length;
      used.keyBytes += keyBytes;
      used.totalBytes += totalBytes;
      admitted++;
      return true;
    },
  };
}
