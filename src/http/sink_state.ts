/**
 * What every FrameSink keeps, whatever its transport: at most one write waiting for the client
 * to read, and the close callbacks, called once when the sink ends (the waiting write is
 * released then too, so nothing waits on a client that is gone). A class, so that an open
 * stream holds its fields and not a closure for every method.
 */
export class SinkState {
  /** Made on the first `onClose`: most sinks get one callback, and an empty array grows big. */
  #callbacks: (() => void)[] | null = null;
  #ended = false;
  #waiting: (() => void) | null = null;

  get ended(): boolean {
    return this.#ended;
  }

  /** Whether a write is waiting for the client to read. */
  get waiting(): boolean {
    return this.#waiting !== null;
  }

  /** A write that resolves at the next `release()` or `end()`. */
  wait(): Promise<void> {
    return new Promise<void>((resolve) => (this.#waiting = resolve));
  }

  release(): void {
    const waiting = this.#waiting;
    this.#waiting = null;
    waiting?.();
  }

  /** Ends the sink once; later calls do nothing. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.release();
    const callbacks = this.#callbacks ?? [];
    this.#callbacks = null;
    for (const callback of callbacks) callback();
  }

  onClose(callback: () => void): void {
    if (this.#ended) callback();
    else if (this.#callbacks) this.#callbacks.push(callback);
    else this.#callbacks = [callback];
  }
}
