import { RegExpRouter } from "hono/router/reg-exp-router";
import { SmartRouter } from "hono/router/smart-router";
import { TrieRouter } from "hono/router/trie-router";
import type { Router } from "hono/router";
import { parse as parseCookie } from "hono/utils/cookie";
import { InvalidRequestError, UnauthorizedError } from "../domain/errors.ts";
import type { RateLimiter } from "../domain/rate_limiter.ts";
import type { Logger } from "../log.ts";
import type { Authenticate, Principal } from "./auth.ts";
import { assertScope, findToken } from "./auth.ts";
import { PUBLISH_SCOPE } from "../domain/scopes.ts";
import type { ClientView, ProxyTrust } from "./client_address.ts";
import { clientView } from "./client_address.ts";
import {
  errorBody,
  errorHeaders,
  isClientGone,
  toErrorShape,
  UnsupportedMediaTypeError,
} from "./errors.ts";
import { ForbiddenError, PayloadTooLargeError } from "../domain/errors.ts";
import type { HttpRequest } from "./http_request.ts";
import type { OriginPolicy } from "./origin_policy.ts";
import {
  cookieRequestAllowed,
  corsHeaders,
  preflightHeaders,
  securityHeaders,
} from "./origin_policy.ts";
import type { Reply } from "./reply.ts";
import { emptyReply, isStream } from "./reply.ts";
import { logRequest, requestIdOf } from "./request_log.ts";
import type { Route, RouteContext } from "./route.ts";
import { ANONYMOUS } from "./route.ts";

/** Per-key rate limits the pipeline takes; the publish limit is taken by the publisher routes. */
export interface RateLimits {
  /** Per client address, on stream attempts (before authentication, so floods cost little). */
  readonly connectionAttempt: RateLimiter;
  /** Per user, on the user endpoints. */
  readonly user: RateLimiter;
}

export interface PipelineDeps {
  readonly routes: readonly Route[];
  readonly authenticate: Authenticate;
  readonly origins: OriginPolicy;
  readonly proxies: ProxyTrust;
  readonly limits?: RateLimits;
  readonly logger?: Logger;
  /** Unexpected errors (the 500s) go here; the client only sees "internal error". */
  readonly onUnexpectedError?: (error: unknown, requestId: string) => void;
}

/** What the transport writes: the route's reply with every common header added. */
export type Answer = Reply & { readonly requestId: string };

export interface Pipeline {
  handle(request: HttpRequest): Promise<Answer>;
  readonly routes: readonly Route[];
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * The one path every request takes, on every transport: request id, proxy trust, routing, CORS
 * and the cookie-origin rule, rate limits, authentication, the body (length-delimited or
 * chunked, under the route's limit), the handler, common headers, error mapping, access log.
 */
export function createPipeline(deps: PipelineDeps): Pipeline {
  // Hono's own default: the fastest router that can hold these paths.
  const router: Router<Route> = new SmartRouter<Route>({
    routers: [new RegExpRouter(), new TrieRouter()],
  });
  for (const route of deps.routes) router.add(route.method, route.path, route);
  const security = securityHeaders(deps.origins);

  async function run(
    request: HttpRequest,
    requestId: string,
    path: string,
    search: string,
    body: BodyState,
    client: ClientView,
  ): Promise<Reply> {
    if (request.method === "OPTIONS") {
      return {
        ...emptyReply(204),
        headers: preflightHeaders(deps.origins, request.header("origin")),
      };
    }
    const method = request.method === "HEAD" ? "GET" : request.method;
    const match = matchRoute(router, method, path);
    if (!match) {
      throw new NotFoundRoute();
    }
    const { route, params } = match;
    let queryCache: Record<string, string> | undefined;
    const query = () => (queryCache ??= parseQuery(search));
    if (route.rateLimit === "connection_attempt") {
      deps.limits?.connectionAttempt.take(client.address);
    }
    let principal = ANONYMOUS;
    if (route.access !== "public") {
      principal = await authenticate(request, query, client);
      if (route.access === "publisher") assertScope(principal, PUBLISH_SCOPE);
      if (route.rateLimit === "user") deps.limits?.user.take(principal.userId);
    }
    if (request.method === "HEAD" && route.head) return route.head();
    const text = route.bodyLimit === undefined
      ? ""
      : await readText(request, route.bodyLimit, body);
    const context: RouteContext = {
      request,
      requestId,
      params,
      query,
      principal,
      body: text,
      clientAddress: client.address,
    };
    const reply = await route.handle(context);
    // Answers about one user must never be served to another from a shared cache.
    if (route.access !== "public") reply.headers["Cache-Control"] ??= "no-store";
    return reply;
  }

  async function authenticate(
    request: HttpRequest,
    query: () => Record<string, string>,
    client: { proto: string | undefined; host: string | undefined },
  ): Promise<Principal> {
    const found = findToken(request.header("authorization"), () => query().access_token, () => {
      const header = request.header("cookie");
      return header ? parseCookie(header, "alarmd_token").alarmd_token : undefined;
    });
    if (!found) throw new UnauthorizedError("a bearer token is required");
    if (found.fromCookie) {
      const host = client.host;
      const allowed = cookieRequestAllowed(deps.origins, {
        origin: request.header("origin"),
        fetchSite: request.header("sec-fetch-site"),
        ownOrigin: host ? `${client.proto ?? "http"}://${host}` : null,
      });
      if (!allowed) {
        throw new ForbiddenError(
          "a cookie token is accepted only from alarmd's own pages or the configured origins",
        );
      }
    }
    return await deps.authenticate(found.token);
  }

  return {
    routes: deps.routes,
    async handle(request) {
      const startedAt = performance.now();
      const requestId = requestIdOf(request.header("x-request-id"));
      let path = "/";
      const body: BodyState = { done: !request.hasBody };
      const client = clientView(deps.proxies, request.peer, request.header);
      let reply: Reply;
      try {
        const target = splitTarget(request.target);
        path = target.path;
        reply = await run(request, requestId, target.path, target.search, body, client);
      } catch (error) {
        reply = errorReply(error, request, requestId);
      }
      if (!body.done && !isStream(reply) && reply.status !== 499) {
        // A body the route did not read (or an error came first) is discarded within the drain
        // limits so the client can read the answer; one that cannot be drained ends the connection.
        const rest = await request.readBody(0).catch(() => ({ ok: false, drained: false }));
        if (!rest.ok && !rest.drained) reply = { ...reply, close: true };
      }
      const headers = reply.headers;
      headers["X-Request-Id"] = requestId;
      for (const name in security) headers[name] ??= security[name];
      const cors = corsHeaders(deps.origins, request.header("origin"));
      if (cors) Object.assign(headers, cors);
      if (deps.logger) {
        logRequest(deps.logger, {
          requestId,
          method: request.method,
          path,
          status: reply.status,
          startedAt,
          client: client.address,
        });
      }
      return Object.assign(reply, { requestId });
    },
  };

  function errorReply(error: unknown, request: HttpRequest, requestId: string): Reply {
    if (error instanceof NotFoundRoute) {
      return jsonErrorReply(404, { status: 404, code: "not_found", message: "no such endpoint" });
    }
    if (isClientGone(error, request.signal)) {
      // Nobody reads this answer; 499 (nginx's "client closed request") keeps the access log
      // from counting a client's hang-up as a server error.
      return { status: 499, headers: {}, body: null, close: true };
    }
    const shape = toErrorShape(error);
    if (shape.status === 500) deps.onUnexpectedError?.(error, requestId);
    return jsonErrorReply(shape.status, shape);
  }
}

function jsonErrorReply(status: number, shape: Parameters<typeof errorBody>[0]): Reply {
  return {
    status,
    headers: {
      "Content-Type": "application/json",
      "Cache-Control": "no-store",
      ...errorHeaders(shape),
    },
    body: JSON.stringify(errorBody(shape)),
  };
}

class NotFoundRoute extends Error {}

/** Whether the request's body was consumed (read, or discarded to its end). */
interface BodyState {
  done: boolean;
}

function matchRoute(router: Router<Route>, method: string, path: string) {
  const [matches, stash] = router.match(method, path) as [
    [Route, Record<string, number | string>][],
    string[]?,
  ];
  if (matches.length === 0) return null;
  const [route, indexes] = matches[0];
  const params: Record<string, string> = {};
  for (const name in indexes) {
    const raw = stash ? stash[indexes[name] as number] : indexes[name] as string;
    try {
      params[name] = decodeURIComponent(raw);
    } catch {
      throw new InvalidRequestError(`path parameter ${name} is not valid percent-encoding`);
    }
  }
  return { route, params };
}

/** Path and query of a request-target in origin-form or absolute-form. */
export function splitTarget(target: string): { path: string; search: string } {
  let rest = target;
  if (!rest.startsWith("/")) {
    const match = /^https?:\/\/[^/?#]*/i.exec(rest);
    if (!match) throw new InvalidRequestError("the request-target is not a path or an http(s) URL");
    rest = rest.slice(match[0].length) || "/";
    if (!rest.startsWith("/")) rest = "/" + rest;
  }
  const q = rest.indexOf("?");
  return q === -1
    ? { path: rest, search: "" }
    : { path: rest.slice(0, q), search: rest.slice(q + 1) };
}

function parseQuery(search: string): Record<string, string> {
  const query: Record<string, string> = {};
  if (search === "") return query;
  for (const [key, value] of new URLSearchParams(search)) query[key] ??= value;
  return query;
}

/**
 * The body as text under `limit` bytes. Bodies must not be encoded (a gzip body would be parsed
 * as if it were JSON), must be UTF-8, and over the limit are answered 413 after the rest was
 * discarded (see BodyRead).
 */
async function readText(request: HttpRequest, limit: number, state: BodyState): Promise<string> {
  const encoding = request.header("content-encoding");
  if (encoding && encoding.trim().toLowerCase() !== "identity") {
    throw new UnsupportedMediaTypeError(`Content-Encoding ${encoding} is not supported`);
  }
  if (!request.hasBody) return "";
  const read = await request.readBody(limit);
  state.done = read.ok || read.drained;
  if (!read.ok) throw new PayloadTooLargeError(`request body is over ${limit} bytes`);
  try {
    return strictUtf8.decode(read.bytes);
  } catch {
    throw new InvalidRequestError("the request body is not valid UTF-8");
  }
}
