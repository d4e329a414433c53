import type { FrameSink } from "../domain/ports.ts";
import { SinkState } from "./sink_state.ts";

const encoder = new TextEncoder();

/**
 * A FrameSink over a ReadableStream body. A write resolves once the stream wants more (its
 * queue holds one chunk), so a client that stops reading holds its connection's queue, where
 * the byte cap applies. The stream ends when the client cancels it or the request aborts.
 */
export function createReadableSink(
  signal: AbortSignal,
): { body: ReadableStream<Uint8Array>; sink: FrameSink } {
  const state = new SinkState();
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const end = () => {
    signal.removeEventListener("abort", end);
    state.end();
  };
  const body = new ReadableStream<Uint8Array>({
    start: (c) => void (controller = c),
    pull: () => state.release(),
    cancel: end,
  }, { highWaterMark: 1 });
  signal.addEventListener("abort", end);
  return {
    body,
    sink: {
      write(chunk) {
        if (state.ended) return Promise.resolve();
        controller.enqueue(encoder.encode(chunk));
        if ((controller.desiredSize ?? 0) > 0) return Promise.resolve();
        return state.wait();
      },
      close() {
        if (state.ended) return;
        // A stalled client would hold a graceful close behind data it never reads.
        if (state.waiting) {
          controller.error(new Error("stream closed while the client was not reading"));
        } else controller.close();
        end();
      },
      onClose: (callback) => state.onClose(callback),
    },
  };
}
