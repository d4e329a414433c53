import type { LimitScope } from "./errors.ts";
import { LimitExceededError } from "./errors.ts";
import type { Clock } from "./ports.ts";

export interface RateLimiter {
  /** Takes `cost` tokens for `key`, or throws LimitExceededError (429 rate_limited). */
  take(key: string, cost?: number): void;
}

/**
 * Token buckets per key: `ratePerSecond` refill, up to `burst`. A rate of 0 disables the
 * limiter. Memory stays bounded: when the map grows past `maxKeys`, buckets that have refilled
 * completely (idle keys, indistinguishable from new ones) are dropped.
 *
 * A bucket holds at least `largestCost` tokens (a full batch), whatever the rate: a take that
 * costs more than a full bucket could never succeed, and its Retry-After would be a lie.
 */
export function createRateLimiter(options: {
  name: string;
  /** Whose bucket a key names; reported in the LimitExceededError. */
  scope: LimitScope;
  ratePerSecond: number;
  burst: number;
  clock: Clock;
  /** The most one take may cost. */
  largestCost?: number;
  maxKeys?: number;
}): RateLimiter {
  const { ratePerSecond, clock, name, scope } = options;
  const burst = Math.max(options.burst, options.largestCost ?? 1);
  const maxKeys = options.maxKeys ?? 100_000;
  const buckets = new Map<string, { tokens: number; at: number }>();
  if (ratePerSecond <= 0) return { take() {} };

  function prune(now: number) {
    for (const [key, bucket] of buckets) {
      if (bucket.tokens + ((now - bucket.at) / 1000) * ratePerSecond >= burst) buckets.delete(key);
    }
  }

  return {
    take(key, cost = 1) {
      const now = clock.now();
      let bucket = buckets.get(key);
      if (!bucket) {
        if (buckets.size >= maxKeys) prune(now);
        bucket = { tokens: burst, at: now };
        buckets.set(key, bucket);
      }
      bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) / 1000) * ratePerSecond);
      bucket.at = now;
      // The tolerance absorbs rounding, so that waiting the Retry-After given is always enough.
      if (bucket.tokens < cost - 1e-9) {
        const wait = Math.ceil((cost - bucket.tokens) / ratePerSecond - 1e-9);
        throw new LimitExceededError(
          `${name} rate limit of ${ratePerSecond}/s per ${scope} exceeded`,
          "rate_limited",
          scope,
          Math.max(1, wait),
        );
      }
      bucket.tokens -= cost;
    },
  };
}
