import FakeTimers from "@sinonjs/fake-timers";
import type { Clock } from "../../src/domain/ports.ts";

export interface FakeClock extends Clock {
  /** Advances time, firing due timers and intervals synchronously. */
  tick(ms: number): void;
}

/** A Clock whose time only moves when the test says so; real timers stay untouched. */
export function createFakeClock(start = Date.now()): FakeClock {
  const fake = FakeTimers.createClock(start);
  return {
    now: () => fake.now,
    setInterval: (fn, ms) => fake.setInterval(fn, ms),
    clearInterval: (h) => fake.clearInterval(h as FakeTimers.TimerId),
    setTimeout: (fn, ms) => fake.setTimeout(fn, ms),
    clearTimeout: (h) => fake.clearTimeout(h as FakeTimers.TimerId),
    tick: (ms) => void fake.tick(ms),
  };
}
