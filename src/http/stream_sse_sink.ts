import type { SSEStreamingApi } from "hono/streaming";
import type { FrameSink } from "../domain/ports.ts";

/**
 * FrameSink over Hono's `streamSSE`. Frames arrive already formatted (domain/sse_frames.ts),
 * so they go through `write`, not `writeSSE`. Closing while a write is stuck (client not
 * reading) aborts instead: a graceful close would wait behind the stuck write forever.
 */
export function createStreamSseSink(stream: SSEStreamingApi): FrameSink {
  const callbacks: (() => void)[] = [];
  let ended = false;
  let writing = 0;
  const end = () => {
    if (ended) return;
    ended = true;
    for (const callback of callbacks.splice(0)) callback();
  };
  stream.onAbort(end);
  return {
    async write(chunk) {
      if (ended || stream.aborted) return;
      writing++;
      try {
        await stream.write(chunk);
      } finally {
        writing--;
      }
    },
    close() {
      if (ended) return;
      if (writing > 0) stream.abort();
      else void stream.close();
      end();
    },
    onClose(callback) {
      if (ended) callback();
      else callbacks.push(callback);
    },
  };
}
