import type { ListenerSet } from "./listener_set.ts";
import { createListenerSet } from "./listener_set.ts";
import type { LiveCountSource } from "./presence.ts";

/** What the counts need of a stream: whose it is, and since when its write has been pending. */
export interface CountedStream {
  readonly userId: string;
  readonly writingSince: number | null;
}

/**
 * Per-user counts of the streams that are live: open, and taking their writes. A stream whose
 * current write has been pending for `stalledAfterMs` (its client stopped reading: a sleeping
 * laptop, a dead network) stops counting until the write completes, whether or not the hub has
 * dropped it yet. The hub reports opens and closes, and shows every open stream to `check` on
 * its tick, which visits them all anyway; a check costs a comparison while nothing is stalled.
 */
export class LiveCounts implements LiveCountSource {
  readonly #stalledAfterMs: number;
  readonly #counts = new Map<string, number>();
  readonly #stalled = new Set<CountedStream>();
  readonly #changes: ListenerSet<[string, number, number]>;

  constructor(stalledAfterMs: number, onError?: (error: unknown) => void) {
    this.#stalledAfterMs = stalledAfterMs;
    this.#changes = createListenerSet(onError);
  }

  opened(stream: CountedStream): void {
    this.#move(stream.userId, 1);
  }

  closed(stream: CountedStream): void {
    if (!this.#stalled.delete(stream)) this.#move(stream.userId, -1);
  }

  /** Whether the stream has stalled (or recovered) since the last check; updates its count. */
  check(stream: CountedStream, now: number): void {
    const since = stream.writingSince;
    const stalled = since !== null && now - since >= this.#stalledAfterMs;
    if (!stalled && this.#stalled.size === 0) return;
    if (stalled === this.#stalled.has(stream)) return;
    if (stalled) this.#stalled.add(stream);
    else this.#stalled.delete(stream);
    this.#move(stream.userId, stalled ? -1 : 1);
  }

  countOf(userId: string): number {
    return this.#counts.get(userId) ?? 0;
  }

  entries(): Iterable<readonly [string, number]> {
    return this.#counts.entries();
  }

  onChange(listener: (userId: string, count: number, previous: number) => void): () => void {
    return this.#changes.add(([userId, count, previous]) => listener(userId, count, previous));
  }

  #move(userId: string, by: number): void {
    const previous = this.#counts.get(userId) ?? 0;
    const count = previous + by;
    if (count > 0) this.#counts.set(userId, count);
    else this.#counts.delete(userId);
    this.#changes.emit([userId, count, previous]);
  }
}
