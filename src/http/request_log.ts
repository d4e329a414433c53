import type { Logger } from "../log.ts";

const SAFE_ID = /^[\w.:-]{1,128}$/;

/**
 * The request's id: the caller's `X-Request-Id` when it is safe to echo and log (a proxy's
 * id then ties both logs together), otherwise a new UUID.
 */
export function requestIdOf(header: string | null | undefined): string {
  return header && SAFE_ID.test(header) ? header : crypto.randomUUID();
}

/**
 * One log line per finished request. The path is logged without its query string: a token
 * may travel as `access_token` there and must never reach a log.
 */
export function logRequest(
  logger: Logger,
  fields: {
    requestId: string;
    method: string;
    path: string;
    status: number;
    startedAt: number;
    /** The client's address, through trusted proxies. */
    client: string;
  },
): void {
  const line = {
    requestId: fields.requestId,
    method: fields.method,
    path: fields.path,
    status: fields.status,
    client: fields.client,
    durationMs: Math.round((performance.now() - fields.startedAt) * 100) / 100,
  };
  if (fields.status >= 500) logger.error("request failed", line);
  else logger.debug("request", line);
}
