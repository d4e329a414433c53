import type { Clock, FrameSink } from "./ports.ts";

/**
 * The most bytes handed to the sink in one write. A whole backlog in one write is copied whole
 * (joined, then encoded into the socket's buffer), and for a client that stopped reading those
 * copies stay in memory next to the queue; in small writes, the backlog stays in the queue.
 */
const MAX_CHUNK = 64 * 1024;

export interface FrameQueueOptions {
  readonly sink: FrameSink;
  readonly clock: Clock;
  /** Past this many queued bytes `push` refuses: the client is not reading. */
  readonly maxBytes: number;
  /** The sink rejected a write: the client is gone. */
  readonly onWriteFailed: () => void;
}

/**
 * One stream's outgoing frames, written to its sink in order by a single pump, so that whoever
 * queues a frame never waits for the client, and a client that stops reading costs at most
 * `maxBytes`.
 */
export class FrameQueue {
  #options: FrameQueueOptions;
  #frames: string[] = [];
  #bytes = 0;
  #writingSince: number | null = null;
  #closed = false;
  /** A `room` call waiting for the queue to drain to `bytes`. */
  #roomWaiter: { bytes: number; resolve: () => void } | null = null;

  constructor(options: FrameQueueOptions) {
    this.#options = options;
  }

  /** Bytes queued, the write in flight included. */
  get bytes(): number {
    return this.#bytes;
  }

  /** When the write in flight started, or null when none is. */
  get writingSince(): number | null {
    return this.#writingSince;
  }

  /** Queues a frame; false when that takes the queue past `maxBytes` (nothing more is written). */
  push(frame: string): boolean {
    if (this.#closed) return true;
    this.#frames.push(frame);
    this.#bytes += frame.length;
    if (this.#bytes > this.#options.maxBytes) return false;
    if (this.#writingSince === null) void this.#pump();
    return true;
  }

  /** Resolves once at most `bytes` are queued, or the queue is closed. */
  room(bytes: number): Promise<void> {
    if (this.#bytes <= bytes || this.#closed) return Promise.resolve();
    return new Promise((resolve) => (this.#roomWaiter = { bytes, resolve }));
  }

  /** Drops the frames not yet written and releases a `room` waiter; idempotent. */
  close(): void {
    this.#closed = true;
    this.#frames = [];
    this.#roomWaiter?.resolve();
    this.#roomWaiter = null;
  }

  async #pump(): Promise<void> {
    const { sink, clock } = this.#options;
    while (this.#frames.length > 0 && !this.#closed) {
      const frames = this.#frames;
      let count = 1;
      let size = frames[0].length;
      while (count < frames.length && size + frames[count].length <= MAX_CHUNK) {
        size += frames[count++].length;
      }
      const chunk = count === 1 ? frames[0] : frames.slice(0, count).join("");
      this.#frames = count === frames.length ? [] : frames.slice(count);
      this.#writingSince = clock.now();
      try {
        await sink.write(chunk);
      } catch {
        this.#options.onWriteFailed();
      }
      this.#bytes -= size;
      if (this.#roomWaiter && this.#bytes <= this.#roomWaiter.bytes) {
        this.#roomWaiter.resolve();
        this.#roomWaiter = null;
      }
    }
    this.#writingSince = null;
  }
}
