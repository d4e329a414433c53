import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:http";
import type { Socket } from "node:net";
import type { BodyRead, HttpRequest } from "./http_request.ts";
import { DRAIN_MAX_BYTES, DRAIN_MAX_MS } from "./http_request.ts";
import type { Listener, ListenOptions } from "./listener.ts";
import { createDropReport, SHUTDOWN_GRACE_MS } from "./listener.ts";
import { createNodeSseSink } from "./node_sse_sink.ts";
import type { Answer, Pipeline } from "./pipeline.ts";
import { isStream } from "./reply.ts";
import { errorBody } from "./errors.ts";

const encoder = new TextEncoder();

/**
 * Connections the kernel may queue before alarmd accepts them: as many as it allows (Linux caps
 * this at net.core.somaxconn). Node's default of 511 overflows when thousands of streams
 * reconnect at once, and every dropped SYN costs its client a one-second retransmit.
 */
const LISTEN_BACKLOG = 65_535;

/**
 * The default transport: `node:http`, whose streams are written straight to the socket with
 * `res.write`, so an open stream holds less memory than a streamed `Response` on Deno.serve (see
 * docs/performance.md, "Transport"). Its own
 * defences: a cap on sockets below the open-file limit (past it new sockets are closed at once,
 * so accept never fails), the header deadline and the keep-alive idle timeout, and JSON answers
 * to requests the parser refuses.
 */
export async function listenNode(pipeline: Pipeline, options: ListenOptions): Promise<Listener> {
  const server = createServer({
    headersTimeout: options.headerTimeoutMs,
    requestTimeout: 0,
    keepAliveTimeout: options.idleTimeoutMs,
    // How often expired heads are looked for: often enough that the deadline is kept.
    connectionsCheckingInterval: Math.max(50, Math.min(1_000, options.headerTimeoutMs / 4)),
  }, (req, res) => {
    void pipeline.handle(nodeRequest(req)).then((answer) => write(req, res, answer));
  });
  if (options.maxSockets !== null) server.maxConnections = options.maxSockets;
  server.on("clientError", (error: Error & { code?: string }, socket: Socket) => {
    answerUnparsed(error, socket);
  });
  const drops = createDropReport(options);
  // Counted where the runtime reports sheds (Node emits "drop"; not every runtime does).
  server.on("drop", () => drops.dropped());
  const finished = new Promise<void>((resolve) => server.once("close", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    const { port, host, reusePort } = options;
    server.listen({ port, host, reusePort, backlog: LISTEN_BACKLOG }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on(
    "error",
    (error) => options.onTransportError?.("listener error", { error: String(error) }),
  );
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("node:http did not report a port");
  return {
    addr: { hostname: address.address, port: address.port },
    finished,
    // close() waits for every connection, and a keep-alive connection that goes idle later
    // would hold it for keepAliveTimeout: close idle ones as they appear, and after a grace
    // period (in-flight requests had time to finish) close what is left.
    stop: () =>
      new Promise<void>((resolve) => {
        const sweep = setInterval(() => server.closeIdleConnections(), 20);
        const force = setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS);
        drops.stop();
        server.close(() => {
          clearInterval(sweep);
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}

function nodeRequest(req: IncomingMessage): HttpRequest {
  const headers = req.headers;
  return {
    method: req.method ?? "GET",
    target: req.url ?? "/",
    header(name) {
      const value = headers[name];
      return typeof value === "string" ? value : value?.join(", ");
    },
    peer: req.socket.remoteAddress ?? "",
    hasBody: hasBody(req),
    readBody: bodyReader(req),
  };
}

/** Whether the head announces a body: chunked, or a length other than zero. */
function hasBody(req: IncomingMessage): boolean {
  const length = req.headers["content-length"];
  return req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
}

/**
 * Reads the body in flowing mode under a limit; past it, discards the rest within the drain
 * limits. A second call (the pipeline discarding a body the route did not read) reports what
 * the first left.
 */
function bodyReader(req: IncomingMessage): (limit: number) => Promise<BodyRead> {
  let left: Promise<BodyRead> | null = null;
  return (limit) => {
    if (left) return left.then((r) => (r.ok ? { ok: false, drained: true } : r));
    const declared = Number(req.headers["content-length"]);
    if (declared > DRAIN_MAX_BYTES) return (left = Promise.resolve({ ok: false, drained: false }));
    left = new Promise<BodyRead>((resolve, reject) => {
      const chunks: Uint8Array[] = [];
      let size = 0;
      let over = declared > limit;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const startDiscarding = () => {
        over = true;
        chunks.length = 0;
        timer = setTimeout(() => finish({ ok: false, drained: false }), DRAIN_MAX_MS);
      };
      const finish = (result: BodyRead | Error) => {
        clearTimeout(timer);
        req.off("data", onData);
        req.off("end", onEnd);
        req.off("error", onError);
        if (result instanceof Error) reject(result);
        else {
          if (!result.ok && !result.drained) req.pause();
          resolve(result);
        }
      };
      const onData = (chunk: Uint8Array) => {
        size += chunk.byteLength;
        if (!over && size > limit) startDiscarding();
        if (over) {
          if (size > DRAIN_MAX_BYTES) finish({ ok: false, drained: false });
          return;
        }
        chunks.push(chunk);
      };
      const onEnd = () => {
        if (over) return finish({ ok: false, drained: true });
        const bytes = new Uint8Array(size);
        let at = 0;
        for (const c of chunks) {
          bytes.set(c, at);
          at += c.byteLength;
        }
        finish({ ok: true, bytes });
      };
      const onError = (error: Error) => finish(error);
      if (over) startDiscarding();
      req.on("data", onData);
      req.on("end", onEnd);
      req.on("error", onError);
    });
    return left;
  };
}

function write(req: IncomingMessage, res: ServerResponse, answer: Answer) {
  if (isStream(answer)) {
    if (res.destroyed) return answer.cancel();
    res.writeHead(200, answer.headers);
    answer.open(createNodeSseSink(res));
    releaseRequest(req);
    return;
  }
  if (answer.status === 499 || res.destroyed) {
    res.destroy();
    return;
  }
  const headers = answer.headers;
  const body = typeof answer.body === "string" ? encoder.encode(answer.body) : answer.body;
  if (answer.status !== 204) headers["Content-Length"] = String(body?.byteLength ?? 0);
  if (answer.close) headers["Connection"] = "close";
  res.writeHead(answer.status, headers);
  res.end(body ?? undefined);
}

/**
 * A stream's request without a body: read it to its end and let it go. Otherwise
 * node:http treats the client's hang-up, whenever it comes, as an aborted request, and builds
 * and formats an error for it: that, not the hang-up, was most of what closing a stream cost.
 */
function releaseRequest(req: IncomingMessage) {
  // A body, which nobody reads, stays unread (and the socket paused), as it was.
  if (hasBody(req)) return;
  req.once("end", () => {
    req.destroy();
    // node:http holds the request as long as its response lasts, and the stream never reads
    // its head again: let the head's strings (the token among them) go.
    req.rawHeaders.length = 0;
    req.headers = {};
  });
  req.resume();
}

const PARSER_ANSWERS: Record<string, [number, string, string]> = {
  HPE_HEADER_OVERFLOW: [431, "Request Header Fields Too Large", "request headers are too large"],
  ERR_HTTP_REQUEST_TIMEOUT: [408, "Request Timeout", "the request head did not arrive in time"],
  ERR_HTTP_HEADERS_TIMEOUT: [408, "Request Timeout", "the request head did not arrive in time"],
};

/**
 * A request the parser refused never reaches the pipeline: answer it in the contract's JSON
 * while the socket can still take an answer, then close.
 */
function answerUnparsed(error: Error & { code?: string }, socket: Socket) {
  if (error.code === "ECONNRESET" || !socket.writable) {
    socket.destroy();
    return;
  }
  const [status, reason, message] = PARSER_ANSWERS[error.code ?? ""] ??
    [400, "Bad Request", "the request could not be parsed as HTTP/1.1"];
  const body = JSON.stringify(errorBody({ status: 400, code: "invalid_request", message }));
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${encoder.encode(body).byteLength}\r\nConnection: close\r\n\r\n${body}`,
  );
}
