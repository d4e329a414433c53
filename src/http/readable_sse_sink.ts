import type { FrameSink } from "../domain/ports.ts";

const encoder = new TextEncoder();

/**
 * A FrameSink over a ReadableStream body. A write resolves once the stream wants more (its
 * queue holds one chunk), so a client that stops reading holds its connection's queue, where
 * the byte cap applies. The stream ends when the client cancels it or the request aborts.
 */
export function createReadableSink(
  signal: AbortSignal,
): { body: ReadableStream<Uint8Array>; sink: FrameSink } {
  const callbacks: (() => void)[] = [];
  let ended = false;
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let waiting: (() => void) | null = null;
  const end = () => {
    if (ended) return;
    ended = true;
    waiting?.();
    waiting = null;
    signal.removeEventListener("abort", end);
    for (const callback of callbacks.splice(0)) callback();
  };
  const body = new ReadableStream<Uint8Array>({
    start: (c) => void (controller = c),
    pull: () => {
      waiting?.();
      waiting = null;
    },
    cancel: end,
  }, { highWaterMark: 1 });
  signal.addEventListener("abort", end);
  return {
    body,
    sink: {
      write(chunk) {
        if (ended) return Promise.resolve();
        controller.enqueue(encoder.encode(chunk));
        if ((controller.desiredSize ?? 0) > 0) return Promise.resolve();
        return new Promise<void>((resolve) => (waiting = resolve));
      },
      close() {
        if (ended) return;
        // A stalled client would hold a graceful close behind data it never reads.
        if (waiting) controller.error(new Error("stream closed while the client was not reading"));
        else controller.close();
        end();
      },
      onClose(callback) {
        if (ended) callback();
        else callbacks.push(callback);
      },
    },
  };
}
