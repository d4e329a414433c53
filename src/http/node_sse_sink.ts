import type { ServerResponse } from "node:http";
import type { FrameSink } from "../domain/ports.ts";
import { SinkState } from "./sink_state.ts";

const RESOLVED = Promise.resolve();

/**
 * FrameSink over a `node:http` response. `res.write` returning false means the socket buffer
 * is full: the write resolves on 'drain', so the connection's queue (not node's) holds the
 * backlog and its byte cap applies. Closing a stalled response destroys the socket at once;
 * `end()` would wait behind data the client never reads.
 */
export function createNodeSseSink(res: ServerResponse): FrameSink {
  return new NodeSseSink(res);
}

/** A class: every open stream holds one, so its methods live on the prototype. */
class NodeSseSink implements FrameSink {
  readonly #res: ServerResponse;
  readonly #state = new SinkState();

  constructor(res: ServerResponse) {
    this.#res = res;
    const state = this.#state;
    res.on("close", () => {
      state.end();
      // The client is gone; without this the server keeps counting the response as in flight,
      // and its shutdown waits for it.
      if (!res.writableEnded) res.destroy();
    });
    res.on("drain", () => state.release());
  }

  write(chunk: string): Promise<void> {
    if (this.#state.ended) return RESOLVED;
    const flushed = this.#res.write(chunk);
    releaseSentHead(this.#res);
    return flushed ? RESOLVED : this.#state.wait();
  }

  close(): void {
    const state = this.#state;
    if (state.ended) return;
    if (state.waiting || this.#res.writableNeedDrain) this.#res.destroy();
    else this.#res.end();
    state.end();
  }

  onClose(callback: () => void): void {
    this.#state.onClose(callback);
  }
}

/**
 * `node:http` keeps a response's serialized head for the response's whole life, though once
 * it is on the wire only its truthiness is read again (`headersSent`, and the guards against
 * setting headers late). A stream lives for hours: a short stand-in keeps those answers and
 * lets the head's few hundred bytes go.
 */
function releaseSentHead(res: ServerResponse) {
  const head = res as unknown as { _header?: unknown; _headerSent?: unknown };
  if (head._headerSent === true && typeof head._header === "string" && head._header.length > 2) {
    head._header = SENT_HEAD;
  }
}

const SENT_HEAD = "\r\n";
