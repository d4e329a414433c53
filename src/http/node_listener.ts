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
import { errorBody, errorHeaders, toErrorShape } from "./errors.ts";
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

  function fail(res: ServerResponse, error: unknown, closeAfter = false) {
    const shape = toErrorShape(error);
    if (shape.status === 500) {
      deps.onUnexpectedError?.(error, String(res.getHeader("X-Request-Id")));
    }
    if (res.headersSent || res.destroyed) return;
    res.writeHead(shape.status, {
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
    started: () => void,
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
      res.writeHead(200, SSE_HEADERS);
      started();
      deps.hub.open(subscription.reservation, {
        sink: createNodeSseSink(res),
        lastEventId: subscription.lastEventId,
        tokenExpiresAt: principal.expiresAt,
      });
    } catch (error) {
      fail(res, error);
    }
  }

  async function create(req: IncomingMessage, res: ServerResponse, search: string) {
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
      res.writeHead(status, { "Content-Type": "application/json" });
      res.end(JSON.stringify(alarm));
    } catch (error) {
      // An unread body would be parsed as the next request: close the connection instead.
      fail(res, error, !bodyRead);
    }
  }

  /** The Hono app sets its own request id; the native paths do the same here. */
  /**
   * Gives the request an id (as the Hono app does for its routes) and logs it when done: a
   * refused stream or a create when its response finished, an accepted stream once its 200
   * went out (the hub logs its end).
   */
  function tracked(req: IncomingMessage, res: ServerResponse, path: string) {
    const header = req.headers["x-request-id"];
    const requestId = requestIdOf(typeof header === "string" ? header : null);
    res.setHeader("X-Request-Id", requestId);
    for (const [name, value] of Object.entries(BASE_SECURITY_HEADERS)) res.setHeader(name, value);
    if (deps.guards) {
      const origin = req.headers.origin;
      for (const [name, value] of Object.entries(corsHeaders(deps.guards, origin))) {
        res.setHeader(name, value);
      }
    }
    const startedAt = performance.now();
    const logger = deps.logger;
    if (!logger) return () => {};
    let logged = false;
    const log = () => {
      if (logged) return;
      logged = true;
      logRequest(logger, {
        requestId,
        method: req.method!,
        path,
        status: res.statusCode,
        startedAt,
      });
    };
    res.once("finish", log);
    return log;
  }

  return (req, res) => {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q === -1 ? url : url.slice(0, q);
    const search = q === -1 ? "" : url.slice(q + 1);
    if (req.method === "GET" && path === SUBSCRIBE_PATH) {
      void subscribe(req, res, search, tracked(req, res, path));
    } else if (req.method === "POST" && path === "/api/v1/alarms") {
      tracked(req, res, path);
      void create(req, res, search);
    } else void toHono(req, res);
  };
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
