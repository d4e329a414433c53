import type { Principal } from "./auth.ts";
import type { HttpRequest } from "./http_request.ts";
import type { Reply } from "./reply.ts";

/**
 * One endpoint: its method and path (Hono's router syntax), who may call it, and what the
 * pipeline does before the handler runs. Handlers stay short: parse, call one service method,
 * answer.
 */
export interface Route {
  readonly method: "GET" | "POST" | "DELETE";
  readonly path: string;
  /** `user`: any valid token, acting on its own `sub`; `publisher`: the publish scope too. */
  readonly access: "public" | "user" | "publisher";
  /** The body is read (Content-Length or chunked) under this many bytes; absent: not read. */
  readonly bodyLimit?: number;
  /** A rate limit taken before the handler: per client address before authentication, or per user. */
  readonly rateLimit?: "connection_attempt" | "user";
  /** Answered from the stream route's headers alone, without opening a stream. */
  readonly head?: () => Reply;
  handle(context: RouteContext): Reply | Promise<Reply>;
}

export interface RouteContext {
  readonly request: HttpRequest;
  readonly requestId: string;
  /** Path parameters, URI-decoded. */
  readonly params: Readonly<Record<string, string>>;
  /** The query string's parameters (first value of each). */
  query(): Record<string, string>;
  /** The caller, for routes that are not public; ANONYMOUS otherwise. */
  readonly principal: Principal;
  /** The body as UTF-8 text, for routes with a body limit; "" otherwise. */
  readonly body: string;
  /** The client's address, through trusted proxies. */
  readonly clientAddress: string;
}

/** The principal of public routes: no user, no scope. */
export const ANONYMOUS: Principal = Object.freeze({
  userId: "",
  scopes: new Set<string>(),
  expiresAt: 0,
});
