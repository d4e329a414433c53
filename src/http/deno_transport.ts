import type { BodyRead, HttpRequest } from "./http_request.ts";
import { DRAIN_MAX_BYTES, DRAIN_MAX_MS } from "./http_request.ts";
import type { Listener, ListenOptions } from "./listener.ts";
import { createDropReport, SHUTDOWN_GRACE_MS } from "./listener.ts";
import type { Answer, Pipeline } from "./pipeline.ts";
import { isStream } from "./reply.ts";
import { createReadableSink } from "./readable_sse_sink.ts";

type ServeOnConnection = (
  conn: Deno.Conn,
  signal: AbortSignal,
  handler: (request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => Promise<Response>,
  onError: (error: unknown) => Response,
  onListen: () => void,
) => { finished: Promise<void> };

/**
 * `Deno.serve`'s HTTP engine on one accepted connection. Deno exposes it only internally;
 * without it the transport falls back to plain `Deno.serve`, which has no socket cap and no
 * header or idle deadline (see docs on the transports).
 */
function serveOnConnection(): ServeOnConnection | null {
  const deno = Deno as unknown as Record<symbol, Record<string, unknown> | undefined>;
  const internal = deno[(Deno as unknown as { internal: symbol }).internal];
  const fn = internal?.serveHttpOnConnection;
  return typeof fn === "function" ? fn as ServeOnConnection : null;
}

/**
 * The `--transport deno` transport: `Deno.serve`'s engine, every answer a web `Response`, streams a
 * `ReadableStream` whose cleanup also follows the request's AbortSignal. `Deno.serve` stops
 * accepting for good when accept fails for lack of descriptors and never closes a silent
 * socket, so alarmd accepts connections itself: sockets past the cap are closed at once, a
 * connection must send its first request head within the header deadline and may idle between
 * requests for the idle timeout, and accept failures are waited out instead of ending the server.
 */
export async function listenDeno(pipeline: Pipeline, options: ListenOptions): Promise<Listener> {
  const handler = async (request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) =>
    toResponse(await pipeline.handle(denoRequest(request, info)), request);
  const serveOn = serveOnConnection();
  if (!serveOn) {
    options.onTransportError?.(
      "this Deno has no per-connection serving: no socket cap or deadlines",
      {},
    );
    const { promise: listening, resolve: onListen } = Promise.withResolvers<Deno.NetAddr>();
    const server = Deno.serve(
      { port: options.port, hostname: options.host, reusePort: options.reusePort, onListen },
      handler,
    );
    const finished = server.finished.catch((error) =>
      options.onTransportError?.("listener failed", { error: String(error) })
    );
    return { addr: await listening, finished, stop: () => server.shutdown() };
  }
  return acceptLoop(serveOn, handler, options);
}

interface Connection {
  readonly abort: AbortController;
  /** Requests being answered (a stream counts until it ends). */
  inFlight: number;
  requests: number;
  /** When the connection was accepted or its last answer finished. */
  since: number;
}

function acceptLoop(
  serveOn: ServeOnConnection,
  handler: (request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => Promise<Response>,
  options: ListenOptions,
): Listener {
  const listener = Deno.listen({
    port: options.port,
    hostname: options.host,
    reusePort: options.reusePort,
  });
  const connections = new Set<Connection>();
  let stopping = false;
  // Aborting a connection whose response Deno's engine is still flushing surfaces inside the
  // engine as a BadResource nobody can catch; the connection is gone either way, so it is
  // reported, not fatal.
  const stray = (event: Event & { error?: unknown; reason?: unknown }) => {
    const error = event.error ?? event.reason;
    if (!(error instanceof Deno.errors.BadResource)) return;
    event.preventDefault();
    options.onTransportError?.("a connection ended while its answer was written", {});
  };
  globalThis.addEventListener("error", stray);
  globalThis.addEventListener("unhandledrejection", stray);
  const drops = createDropReport(options);
  const { promise: finished, resolve: done } = Promise.withResolvers<void>();

  const sweep = setInterval(() => {
    const now = Date.now();
    for (const c of connections) {
      if (c.inFlight > 0) continue;
      const limit = c.requests === 0 ? options.headerTimeoutMs : options.idleTimeoutMs;
      if (now - c.since > limit) c.abort.abort();
    }
  }, Math.max(50, Math.min(1_000, options.headerTimeoutMs / 4)));

  const serve = (conn: Deno.Conn) => {
    const c: Connection = {
      abort: new AbortController(),
      inFlight: 0,
      requests: 0,
      since: Date.now(),
    };
    connections.add(c);
    const track = async (request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => {
      c.requests++;
      c.inFlight++;
      const settle = () => {
        c.inFlight--;
        c.since = Date.now();
      };
      try {
        const response = await handler(request, info);
        if (streamResponses.has(response)) {
          request.signal.addEventListener("abort", settle, { once: true });
        } else settle();
        return response;
      } catch (error) {
        settle();
        throw error;
      }
    };
    const onError = () => new Response(null, { status: 500 });
    try {
      serveOn(conn, c.abort.signal, track, onError, () => {}).finished
        .catch(() => {})
        .finally(() => connections.delete(c));
    } catch (error) {
      connections.delete(c);
      conn.close();
      options.onTransportError?.("a connection could not be served", { error: String(error) });
    }
  };

  void (async () => {
    while (!stopping) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (stopping || error instanceof Deno.errors.BadResource) break;
        // Out of descriptors (or another passing failure): wait, then accept again. Sockets
        // already served are unaffected.
        options.onTransportError?.("accept failed; retrying", { error: String(error) });
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      if (options.maxSockets !== null && connections.size >= options.maxSockets) {
        conn.close();
        drops.dropped();
        continue;
      }
      serve(conn);
    }
  })();

  const addr = listener.addr as Deno.NetAddr;
  return {
    addr: { hostname: addr.hostname, port: addr.port },
    finished,
    async stop() {
      stopping = true;
      listener.close();
      const deadline = Date.now() + SHUTDOWN_GRACE_MS;
      while (Date.now() < deadline) {
        for (const c of connections) if (c.inFlight === 0) c.abort.abort();
        if (connections.size === 0) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      for (const c of connections) c.abort.abort();
      clearInterval(sweep);
      drops.stop();
      done();
    },
  };
}

function denoRequest(request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>): HttpRequest {
  const headers = request.headers;
  const length = headers.get("content-length");
  const url = request.url;
  // Deno hands the absolute URL; the pipeline wants the request-target's path and query.
  const pathStart = url.indexOf("/", url.indexOf("//") + 2);
  return {
    method: request.method,
    target: pathStart === -1 ? "/" : url.slice(pathStart),
    header: (name) => headers.get(name) ?? undefined,
    peer: info.remoteAddr.hostname,
    // From the head alone: reading `request.body` would make a JS stream for every request.
    hasBody: headers.has("transfer-encoding") || (length !== null && length !== "0"),
    readBody: bodyReader(request),
    // Read only when an error needs it: Deno makes the signal (and, at the end of the request,
    // its abort reason) only for requests that asked for it.
    get signal() {
      return request.signal;
    },
  };
}

/** The Deno twin of the node transport's reader: same limit, same discarding past it. */
function bodyReader(request: Request): (limit: number) => Promise<BodyRead> {
  let left: Promise<BodyRead> | null = null;
  return (limit) => {
    if (left) return left.then((r) => (r.ok ? { ok: false, drained: true } : r));
    const declared = Number(request.headers.get("content-length"));
    if (declared > DRAIN_MAX_BYTES) return (left = Promise.resolve({ ok: false, drained: false }));
    if (declared <= limit && !request.headers.has("transfer-encoding")) {
      // A declared length within the limit: the engine reads exactly that many bytes, in Rust,
      // without a JS stream in between.
      return (left = request.bytes().then((bytes) => ({ ok: true, bytes })));
    }
    if (!request.body) return (left = Promise.resolve({ ok: true, bytes: new Uint8Array() }));
    return (left = read(request.body.getReader(), limit, declared > limit));
  };
}

async function read(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  limit: number,
  overAlready: boolean,
): Promise<BodyRead> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  let deadline = overAlready ? Date.now() + DRAIN_MAX_MS : Infinity;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    while (true) {
      const next = reader.read();
      const { done, value } = deadline === Infinity ? await next : await Promise.race([
        next,
        new Promise<"late">((r) => (timer = setTimeout(() => r("late"), deadline - Date.now()))),
      ]).then((v) => v === "late" ? { done: "late" as const, value: undefined } : v);
      clearTimeout(timer);
      if (done === "late") {
        void reader.cancel().catch(() => {});
        return { ok: false, drained: false };
      }
      if (done) break;
      size += value.byteLength;
      if (deadline === Infinity && size > limit) {
        deadline = Date.now() + DRAIN_MAX_MS;
        chunks.length = 0;
      }
      if (deadline !== Infinity) {
        if (size > DRAIN_MAX_BYTES) {
          void reader.cancel().catch(() => {});
          return { ok: false, drained: false };
        }
        continue;
      }
      chunks.push(value);
    }
  } finally {
    clearTimeout(timer);
  }
  if (deadline !== Infinity) return { ok: false, drained: true };
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  return { ok: true, bytes };
}

/** Responses that are streams: their request counts as in flight until the stream ends. */
const streamResponses = new WeakSet<Response>();

function toResponse(answer: Answer, request: Request): Response {
  if (isStream(answer)) {
    if (request.signal.aborted) {
      answer.cancel();
      return new Response(null, { status: 499 });
    }
    const { body, sink } = createReadableSink(request.signal);
    answer.open(sink);
    const response = new Response(body, { status: 200, headers: answer.headers });
    streamResponses.add(response);
    return response;
  }
  const headers = answer.headers;
  if (answer.close) headers["Connection"] = "close";
  const body = answer.body === null || typeof answer.body === "string"
    ? answer.body
    : answer.body.slice();
  return new Response(body, { status: answer.status, headers });
}
