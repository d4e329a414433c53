import type { ServerResponse } from "node:http";
import type { FrameSink } from "../domain/ports.ts";
import { createSinkState } from "./sink_state.ts";

const RESOLVED = Promise.resolve();

/**
 * FrameSink over a `node:http` response. `res.write` returning false means the socket buffer
 * is full: the write resolves on 'drain', so the connection's queue (not node's) holds the
 * backlog and its byte cap applies. Closing a stalled response destroys the socket at once;
 * `end()` would wait behind data the client never reads.
 */
export function createNodeSseSink(res: ServerResponse): FrameSink {
  const state = createSinkState();
  res.on("close", () => {
    state.end();
    // The client is gone; without this the server keeps counting the response as in flight,
    // and its shutdown waits for it.
    if (!res.writableEnded) res.destroy();
  });
  res.on("drain", state.release);
  return {
    write(chunk) {
      if (state.ended) return RESOLVED;
      if (res.write(chunk)) return RESOLVED;
      return state.wait();
    },
    close() {
      if (state.ended) return;
      if (state.waiting || res.writableNeedDrain) res.destroy();
      else res.end();
      state.end();
    },
    onClose: state.onClose,
  };
}
