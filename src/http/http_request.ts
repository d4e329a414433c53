/**
 * A request as the pipeline sees it, whatever transport received it. Transports adapt their
 * native request to this without building a web `Request` (on `node:http`, an extra conversion
 * of every request, costly next to the rest of a create), and the pipeline reads only what each
 * route needs.
 */
export interface HttpRequest {
  readonly method: string;
  /** The request-target as sent: origin-form (`/path?q`) or absolute-form (`http://h/path?q`). */
  readonly target: string;
  /** A header's value by lower-case name; repeated headers joined as the transport joins them. */
  header(name: string): string | undefined;
  /** The TCP peer's address (a proxy's, when there is one). */
  readonly peer: string;
  /** Whether the request announces a body (a non-zero `Content-Length`, or chunked). */
  readonly hasBody: boolean;
  /** Reads the body under `limit` bytes; see BodyRead. */
  readBody(limit: number): Promise<BodyRead>;
  /** Aborts when the client goes away. */
  readonly signal?: AbortSignal;
}

/**
 * A body read under a limit. Over it, the rest is read and discarded (up to DRAIN_MAX_BYTES,
 * within DRAIN_MAX_MS) so that an ordinary client, still sending, can read the 413: closing
 * while it sends makes it see a broken pipe instead. `drained` says whether that worked.
 */
export type BodyRead =
  | { readonly ok: true; readonly bytes: Uint8Array }
  | { readonly ok: false; readonly drained: boolean };

/** The most of an over-limit body that is read and discarded before the 413. */
export const DRAIN_MAX_BYTES = 16 * 1024 * 1024;
/** How long discarding an over-limit body may take before the connection is cut. */
export const DRAIN_MAX_MS = 5_000;
