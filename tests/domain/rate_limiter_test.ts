import assert from "node:assert/strict";
import { LimitExceededError } from "../../src/domain/errors.ts";
import { createRateLimiter } from "../../src/domain/rate_limiter.ts";
import { createFakeClock } from "../helpers/fake_clock.ts";

/** The Retry-After of a refused take, or null when the take passed. */
function refusal(take: () => void): number | null {
  try {
    take();
    return null;
  } catch (error) {
    assert.ok(error instanceof LimitExceededError);
    assert.equal(error.code, "rate_limited");
    return error.retryAfterSeconds;
  }
}

Deno.test("a bucket holds at least the largest cost, whatever the rate", () => {
  const clock = createFakeClock();
  const limiter = createRateLimiter({
    name: "publish",
    scope: "publisher",
    ratePerSecond: 1,
    burst: 2,
    largestCost: 500,
    clock,
  });
  assert.equal(refusal(() => limiter.take("a", 500)), null);
  assert.equal(refusal(() => limiter.take("a", 1)), 1);
  assert.equal(refusal(() => limiter.take("a", 500)), 500);
  clock.tick(500_000);
  assert.equal(refusal(() => limiter.take("a", 500)), null);
});

Deno.test("Retry-After is honest: the same take passes after it, and not a second sooner", () => {
  // Rates that do not divide a second evenly, at odd moments, to catch rounding.
  for (const rate of [3, 7, 10, 333]) {
    const clock = createFakeClock(1_000_003);
    const limiter = createRateLimiter({
      name: "publish",
      scope: "publisher",
      ratePerSecond: rate,
      burst: 2 * rate,
      largestCost: 500,
      clock,
    });
    let seed = rate;
    const random = (n: number) => (seed = (seed * 48271) % 2147483647) % n;
    for (let i = 0; i < 200; i++) {
      clock.tick(random(1500));
      const cost = 1 + random(500);
      const retryAfter = refusal(() => limiter.take("k", cost));
      if (retryAfter === null) continue;
      if (retryAfter > 1) {
        clock.tick((retryAfter - 1) * 1000);
        assert.ok(refusal(() => limiter.take("k", cost)) !== null, `rate ${rate}, cost ${cost}`);
        clock.tick(1000);
      } else clock.tick(retryAfter * 1000);
      assert.equal(refusal(() => limiter.take("k", cost)), null, `rate ${rate}, cost ${cost}`);
    }
  }
});

Deno.test("a refusal names the limiter's own scope: a client address's, a publisher's, a user's", () => {
  for (const scope of ["address", "publisher", "user"] as const) {
    const limiter = createRateLimiter({
      name: "connection attempt",
      scope,
      ratePerSecond: 1,
      burst: 1,
      clock: createFakeClock(),
    });
    limiter.take("127.0.0.1");
    assert.throws(
      () => limiter.take("127.0.0.1"),
      (error) => error instanceof LimitExceededError && error.scope === scope,
    );
  }
});
