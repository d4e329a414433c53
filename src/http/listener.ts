/** A listening transport, as the composition root starts and stops it. */
export interface Listener {
  readonly addr: { hostname: string; port: number };
  /** Resolves when the server has stopped. */
  readonly finished: Promise<void>;
  /** Stops accepting, lets in-flight requests finish, closes idle connections. */
  stop(): Promise<void>;
}

/** What every transport is told about where and how to listen. */
export interface ListenOptions {
  readonly port: number;
  readonly host: string;
  /** Several isolates share the port (`--workers`). */
  readonly reusePort: boolean;
  /** The whole request head must arrive within this (one deadline, not reset per byte). */
  readonly headerTimeoutMs: number;
  /** A keep-alive connection idle this long is closed. */
  readonly idleTimeoutMs: number;
  /** Client sockets held at once; more are closed as they arrive. Null: no cap. */
  readonly maxSockets: number | null;
  /** Requests that could not be answered, and accept failures, for the log. */
  readonly onTransportError?: (message: string, fields: Record<string, unknown>) => void;
}

/** How long in-flight requests get to finish on shutdown before their connections are cut. */
export const SHUTDOWN_GRACE_MS = 2_000;

/**
 * Counts sockets closed at the socket cap and reports them in one line per burst: a flood must
 * not flood the log too.
 */
export function createDropReport(options: ListenOptions): { dropped(): void; stop(): void } {
  let count = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  return {
    dropped() {
      if (count++ > 0) return;
      timer = setTimeout(() => {
        options.onTransportError?.("sockets closed at the socket cap", {
          count,
          maxSockets: options.maxSockets,
        });
        count = 0;
      }, 10_000);
    },
    stop: () => clearTimeout(timer),
  };
}
