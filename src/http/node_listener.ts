import { getRequestListener } from "@hono/node-server";
import { parse as parseCookie } from "hono/utils/cookie";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AlarmService } from "../domain/alarm_service.ts";
import { PayloadTooLargeError, UnauthorizedError } from "../domain/errors.ts";
import type { LiveHub } from "../domain/live_hub.ts";
import type { AlarmdApp } from "./app.ts";
import { BODY_LIMITS } from "./alarm_routes.ts";
import type { Authenticate, Principal } from "./auth.ts";
import { assertScope, PUBLISH_SCOPE, tokenFrom } from "./auth.ts";
import { createAlarmFromBody } from "./create_alarm.ts";
import { errorBody, errorHeaders, isClientGone, toErrorShape } from "./errors.ts";
import { createNodeSseSink } from "./node_sse_sink.ts";
import type { Logger } from "../log.ts";
import { logRequest, requestIdOf } from "./request_log.ts";
import type { Guards } from "./guards.ts";
import { BASE_SECURITY_HEADERS, corsHeaders } from "./guards.ts";
import { prepareSubscription, SSE_HEADERS, SUBSCRIBE_PATH } from "./subscription.ts";

export interface NodeListenerDeps {
  readonly app: AlarmdApp;
  readonly hub: LiveHub;
  readonly service: AlarmService;
  readonly authenticate: Authenticate;
  readonly onUnexpectedError?: (error: unknown, requestId?: string) => void;
  readonly logger?: Logger;
  readonly guards?: Guards;
}

/**
 * The request listener for a `node:http` server. The two hot endpoints are served natively:
 * streams are written straight to the socket with `res.write` (a fraction of the memory a
 * streamed `Response` costs on Deno.serve) and alarm creation skips the node→web Request
 * adapter. Both call the same functions as their Hono routes (auth, prepareSubscription,
 * createAlarmFromBody, the error table); every other request goes to the Hono app.
 */
export function createNodeListener(
  deps: NodeListenerDeps,
): (req: IncomingMessage, res: ServerResponse) => void {
  // By default the adapter swaps the global Request/Response for its own classes, which breaks
  // anything else in the process that needs the real ones (Deno.serve, fetch consumers).
  const toHono = getRequestListener(deps.app.fetch, { overrideGlobalObjects: false });

  async function principalOf(req: IncomingMessage, query: Record<string, string>) {
    const cookie = req.headers.cookie ? parseCookie(req.headers.cookie, "alarmd_token") : {};
    const token = tokenFrom(req.headers.authorization, cookie.alarmd_token, query.access_token);
    if (!token) throw new UnauthorizedError("a bearer token is required");
    return await deps.authenticate(token);
  }

  function fail(
    req: IncomingMessage,
    res: ServerResponse,
    request: Tracked,
    error: unknown,
    closeAfter = false,
  ) {
    // The client left mid-request (its body or the stream was cut): nobody reads an answer,
    // and it is not the server's fault.
    if (isClientGone(error) || (req.destroyed && !req.complete)) return;
    const shape = toErrorShape(error);
    if (shape.status === 500) deps.onUnexpectedError?.(error, request.id);
    if (res.headersSent || res.destroyed) return;
    res.writeHead(shape.status, {
      ...request.headers,
      "Content-Type": "application/json",
      ...errorHeaders(shape),
      ...(closeAfter ? { Connection: "close" } : {}),
    });
    res.end(JSON.stringify(errorBody(shape)));
  }

  async function subscribe(
    req: IncomingMessage,
    res: ServerResponse,
    search: string,
    request: Tracked,
  ) {
    try {
      deps.guards?.connect.take(req.socket.remoteAddress ?? "unknown");
      const query = Object.fromEntries(new URLSearchParams(search));
      const principal: Principal = await principalOf(req, query);
      const lastEventId = req.headers["last-event-id"];
      const subscription = prepareSubscription(deps.hub, principal, {
        lastEventIdHeader: typeof lastEventId === "string" ? lastEventId : null,
        query,
      });
      if (res.destroyed) {
        subscription.reservation.release();
        return;
      }
      res.writeHead(200, { ...request.headers, ...SSE_HEADERS });
      flattenHead(res);
      request.log();
      deps.hub.open(subscription.reservation, {
        sink: createNodeSseSink(res),
        lastEventId: subscription.lastEventId,
        tokenExpiresAt: principal.expiresAt,
      });
    } catch (error) {
      fail(req, res, request, error);
    }
  }

  async function create(
    req: IncomingMessage,
    res: ServerResponse,
    search: string,
    request: Tracked,
  ) {
    let bodyRead = false;
    try {
      const principal = await principalOf(req, Object.fromEntries(new URLSearchParams(search)));
      assertScope(principal, PUBLISH_SCOPE);
      deps.guards?.publish.take(principal.userId);
      const body = await readBody(req, BODY_LIMITS.single);
      bodyRead = true;
      const key = req.headers["idempotency-key"];
      const { status, alarm } = await createAlarmFromBody(deps.service, principal, {
        contentType: req.headers["content-type"],
        idempotencyKey: typeof key === "string" ? key : undefined,
        body,
      });
      res.writeHead(status, { ...request.headers, "Content-Type": "application/json" });
      res.end(JSON.stringify(alarm));
    } catch (error) {
      // An unread body would be parsed as the next request: close the connection instead.
      fail(req, res, request, error, !bodyRead);
    }
  }

  /**
   * Gives the request an id (as the Hono app does for its routes) and logs it when done: a
   * refused stream or a create when its response finished, an accepted stream once its 200
   * went out (the hub logs its end). The headers go out in one `writeHead`: headers set one by
   * one with `setHeader` stay in a per-response table for the whole life of a stream.
   */
  function tracked(req: IncomingMessage, res: ServerResponse, path: string): Tracked {
    const header = req.headers["x-request-id"];
    const id = requestIdOf(typeof header === "string" ? header : null);
    const headers: Record<string, string> = { "X-Request-Id": id, ...BASE_SECURITY_HEADERS };
    if (deps.guards) Object.assign(headers, corsHeaders(deps.guards, req.headers.origin));
    const startedAt = performance.now();
    const logger = deps.logger;
    if (!logger) return { id, headers, log: () => {} };
    let logged = false;
    const log = () => {
      if (logged) return;
      logged = true;
      logRequest(logger, {
        requestId: id,
        method: req.method!,
        path,
        status: res.statusCode,
        startedAt,
      });
    };
    res.once("finish", log);
    return { id, headers, log };
  }

  return (req, res) => {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q === -1 ? url : url.slice(0, q);
    const search = q === -1 ? "" : url.slice(q + 1);
    if (req.method === "GET" && path === SUBSCRIBE_PATH) {
      void subscribe(req, res, search, tracked(req, res, path));
    } else if (req.method === "POST" && path === "/api/v1/alarms") {
      void create(req, res, search, tracked(req, res, path));
    } else void toHono(req, res);
  };
}

/** A native request's id, the headers every answer to it carries, and its access log. */
interface Tracked {
  readonly id: string;
  readonly headers: Record<string, string>;
  readonly log: () => void;
}

/**
 * `node:http` keeps a response's serialized head for the whole response, as a rope of some 40
 * string pieces (one per concatenation). Reading one character makes V8 flatten it into one
 * string, and the pieces are collected: about 1.2 KB less per open stream, measured with a heap
 * snapshot at 3,000 streams.
 */
function flattenHead(res: ServerResponse) {
  const head = (res as unknown as { _header?: unknown })._header;
  if (typeof head === "string" && head.length > 0) head.charCodeAt(0);
}

/** The body as text, refusing more than `limit` bytes without reading them into memory. */
function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const declared = Number(req.headers["content-length"]);
  if (declared > limit) {
    return Promise.reject(new PayloadTooLargeError(`request body is over ${limit} bytes`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    let size = 0;
    req.on("data", (chunk: Uint8Array) => {
      size += chunk.byteLength;
      if (size > limit) {
        req.removeAllListeners("data");
        req.pause();
        reject(new PayloadTooLargeError(`request body is over ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      const all = new Uint8Array(size);
      let at = 0;
      for (const c of chunks) {
        all.set(c, at);
        at += c.byteLength;
      }
      resolve(new TextDecoder().decode(all));
    });
    req.on("error", reject);
  });
}
