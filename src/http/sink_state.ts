/**
 * What every FrameSink keeps, whatever its transport: at most one write waiting for the client
 * to read, and the close callbacks, called once when the sink ends (the waiting write is
 * released then too, so nothing waits on a client that is gone).
 */
export function createSinkState() {
  const callbacks: (() => void)[] = [];
  let ended = false;
  let waiting: (() => void) | null = null;
  const release = () => {
    waiting?.();
    waiting = null;
  };
  return {
    get ended() {
      return ended;
    },
    /** Whether a write is waiting for the client to read. */
    get waiting() {
      return waiting !== null;
    },
    /** A write that resolves at the next `release()` or `end()`. */
    wait: () => new Promise<void>((resolve) => (waiting = resolve)),
    release,
    /** Ends the sink once; later calls do nothing. */
    end() {
      if (ended) return;
      ended = true;
      release();
      for (const callback of callbacks.splice(0)) callback();
    },
    onClose(callback: () => void) {
      if (ended) callback();
      else callbacks.push(callback);
    },
  };
}
