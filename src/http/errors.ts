import {
  AuthUnavailableError,
  EndpointNotAllowedError,
  ForbiddenError,
  IdempotencyConflictError,
  InvalidRequestError,
  LimitExceededError,
  NotFoundError,
  PayloadTooLargeError,
  PushDisabledError,
  UnauthorizedError,
  UnavailableError,
} from "../domain/errors.ts";

export interface ValidationIssue {
  readonly path: string;
  readonly message: string;
}

/** Request input that failed its zod schema; carries the issues to list in the response. */
export class ValidationError extends InvalidRequestError {
  constructor(readonly issues: readonly ValidationIssue[]) {
    super(issues.length === 1 ? `${issues[0].path}: ${issues[0].message}` : "invalid request");
  }
}

/** A request body in an encoding alarmd does not decode (gzip, say): 415. */
export class UnsupportedMediaTypeError extends InvalidRequestError {}

export interface ErrorShape {
  status: 400 | 401 | 403 | 404 | 409 | 413 | 415 | 429 | 500 | 503;
  code: string;
  message: string;
  issues?: readonly ValidationIssue[];
  retryAfter?: number;
}

/**
 * The one table from failures to HTTP: domain code throws meaningful errors, this decides
 * status and stable code. Anything unknown is a 500 with no detail (the log has it).
 */
export function toErrorShape(error: unknown): ErrorShape {
  if (error instanceof ValidationError) {
    return { status: 400, code: "invalid_request", message: error.message, issues: error.issues };
  }
  if (error instanceof UnsupportedMediaTypeError) {
    return { status: 415, code: "unsupported_media_type", message: error.message };
  }
  if (error instanceof EndpointNotAllowedError) {
    return { status: 400, code: "endpoint_not_allowed", message: error.message };
  }
  if (error instanceof InvalidRequestError) {
    return { status: 400, code: "invalid_request", message: error.message };
  }
  if (error instanceof UnauthorizedError) {
    return { status: 401, code: "unauthorized", message: error.message };
  }
  if (error instanceof ForbiddenError) {
    return { status: 403, code: "forbidden", message: error.message };
  }
  if (error instanceof PushDisabledError) {
    return { status: 404, code: "push_disabled", message: error.message };
  }
  if (error instanceof NotFoundError) {
    return { status: 404, code: "not_found", message: error.message };
  }
  if (error instanceof IdempotencyConflictError) {
    return { status: 409, code: "idempotency_conflict", message: error.message };
  }
  if (error instanceof PayloadTooLargeError) {
    return { status: 413, code: "payload_too_large", message: error.message };
  }
  if (error instanceof LimitExceededError) {
    const status = error.code === "too_many_connections" && error.scope === "server" ? 503 : 429;
    return {
      status,
      code: error.code,
      message: error.message,
      retryAfter: error.retryAfterSeconds,
    };
  }
  if (error instanceof AuthUnavailableError) {
    return {
      status: 503,
      code: "auth_unavailable",
      message: error.message,
      retryAfter: error.retryAfterSeconds,
    };
  }
  if (error instanceof UnavailableError) {
    return {
      status: 503,
      code: "unavailable",
      message: error.message,
      retryAfter: error.retryAfterSeconds,
    };
  }
  return { status: 500, code: "internal", message: "internal error" };
}

/** Headers an error response carries besides its JSON content type. */
export function errorHeaders(shape: ErrorShape): Record<string, string> {
  const headers: Record<string, string> = {};
  if (shape.retryAfter !== undefined) headers["Retry-After"] = String(shape.retryAfter);
  if (shape.status === 401) headers["WWW-Authenticate"] = 'Bearer realm="alarmd"';
  return headers;
}

/** The contract's error body: `{"error":{"code","message","issues"?}}`. */
export function errorBody(shape: ErrorShape) {
  return {
    error: {
      code: shape.code,
      message: shape.message,
      ...(shape.issues ? { issues: shape.issues } : {}),
    },
  };
}

/**
 * Whether a request failed because its client hung up while it was read: nobody is there to
 * answer and it is not the server's fault, so it is not logged as an error. Deno.serve reports
 * a cut body as BadResource, node:http as "aborted" (ECONNRESET).
 */
export function isClientGone(error: unknown, signal?: AbortSignal): boolean {
  if (signal?.aborted) return true;
  if (
    error instanceof Deno.errors.BadResource || error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.BrokenPipe
  ) return true;
  return (error as { code?: unknown } | null)?.code === "ECONNRESET";
}
