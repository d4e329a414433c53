/**
 * The few failures callers act on. The HTTP layer maps each class to a status and a stable
 * code in one table (src/http/errors.ts); nothing else needs to know about HTTP.
 */
export class AlarmdError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

export class NotFoundError extends AlarmdError {}

export class ForbiddenError extends AlarmdError {}

export class UnauthorizedError extends AlarmdError {}

/** Same idempotency key, different request body. */
export class IdempotencyConflictError extends AlarmdError {}

export class PayloadTooLargeError extends AlarmdError {}

/**
 * Whose limit was hit: one user's, one client address's, one publisher's, or the whole server's.
 * A stream refused for the server's sake is a 503 (try another instance), any other refusal a 429.
 */
export type LimitScope = "user" | "address" | "publisher" | "server";

/** A cap or rate was hit; `retryAfterSeconds` tells the client when to try again. */
export class LimitExceededError extends AlarmdError {
  constructor(
    message: string,
    readonly code: "too_many_connections" | "rate_limited",
    readonly scope: LimitScope,
    readonly retryAfterSeconds: number,
  ) {
    super(message);
  }
}

/** Storage or fan-out cannot serve right now (disk full, KV unwritable, shutting down). */
export class UnavailableError extends AlarmdError {
  constructor(message: string, readonly retryAfterSeconds = 5) {
    super(message);
  }
}

/**
 * The identity provider's key set cannot be fetched and no key at hand verifies the token: the
 * token may well be valid, so the client should retry rather than sign in again.
 */
export class AuthUnavailableError extends AlarmdError {
  constructor(message: string, readonly retryAfterSeconds = 5) {
    super(message);
  }
}

/** Well-formed JSON that the domain rejects (a cursor it never issued, say). */
export class InvalidRequestError extends AlarmdError {}

/** Push is not configured on this server (no VAPID subject, or `ALARMD_PUSH=off`). */
export class PushDisabledError extends NotFoundError {}

/** A push subscription whose endpoint is not on the allowed push services. */
export class EndpointNotAllowedError extends InvalidRequestError {}
