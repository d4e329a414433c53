import type { ServerResponse } from "node:http";
import type { FrameSink } from "../domain/ports.ts";

const RESOLVED = Promise.resolve();

/**
 * FrameSink over a `node:http` response. `res.write` returning false means the socket buffer
 * is full: the write resolves on 'drain', so the connection's queue (not node's) holds the
 * backlog and its byte cap applies. Closing a stalled response destroys the socket at once;
 * `end()` would wait behind data the client never reads.
 */
export function createNodeSseSink(res: ServerResponse): FrameSink {
  const callbacks: (() => void)[] = [];
  let ended = false;
  let waiting: (() => void) | null = null;
  const end = () => {
    if (ended) return;
    ended = true;
    waiting?.();
    waiting = null;
    for (const callback of callbacks.splice(0)) callback();
  };
  res.on("close", () => {
    end();
    // The client is gone; without this the server keeps counting the response as in flight,
    // and its shutdown waits for it.
    if (!res.writableEnded) res.destroy();
  });
  res.on("drain", () => {
    waiting?.();
    waiting = null;
  });
  return {
    write(chunk) {
      if (ended) return RESOLVED;
      if (res.write(chunk)) return RESOLVED;
      return new Promise<void>((resolve) => (waiting = resolve));
    },
    close() {
      if (ended) return;
      if (waiting || res.writableNeedDrain) res.destroy();
      else res.end();
      end();
    },
    onClose(callback) {
      if (ended) callback();
      else callbacks.push(callback);
    },
  };
}
