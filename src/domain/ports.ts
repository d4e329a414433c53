/**
 * The ports the domain depends on. Each method's doc comment is its contract; one contract test
 * suite per port (tests/storage, tests/broker) holds every adapter to it.
 */
import type { Alarm, NewAlarm } from "./alarm.ts";

/** Per-user bookkeeping, read in O(1). */
export interface UserState {
  /** Newest id ever assigned to the user (it may since be deleted), or null. */
  readonly lastId: string | null;
  /**
   * The id assigned just before `lastId`, or null (none, or state stored before it was kept): a
   * stream resuming from it has missed `lastId` alone, and reads it by key instead of a page.
   */
  readonly prevId: string | null;
  /** Newest id the server dropped by retention or the per-user cap; replay from below it has a gap. */
  readonly floorId: string | null;
  /** Stored alarms. */
  readonly total: number;
  /** Stored alarms with `readAt === null`. */
  readonly unread: number;
}

export interface IdempotencyRef {
  /** Whose key space: the publisher's `sub`. */
  readonly scope: string;
  readonly key: string;
  /** Position in a batch request, or null for a single create. */
  readonly index: number | null;
  /** Digest of the request body; a retry with another body is a conflict. */
  readonly fingerprint: string;
}

export interface CreateItem {
  readonly alarm: NewAlarm;
  readonly idempotency?: IdempotencyRef;
  /** A push of its notification is due: recorded in the outbox in the alarm's own commit. */
  readonly push?: boolean;
}

export interface CreateOutcome {
  readonly alarm: Alarm;
  /** True when an earlier request with the same idempotency key stored it. */
  readonly replayed: boolean;
}

/** A committed change, as every open stream of the user must hear of it. */
export type AlarmChange =
  | {
    readonly kind: "created";
    readonly alarm: Alarm;
    /** `lastId` of the user just before this alarm: lets a listener notice a gap. */
    readonly prevId: string | null;
  }
  | {
    readonly kind: "read" | "deleted";
    readonly userId: string;
    readonly ids: readonly string[];
    /** The user's unread count right after this change. */
    readonly unread: number;
  }
  /** Everything of the user is gone: their streams end. */
  | { readonly kind: "erased"; readonly userId: string };

/** The changes a stream shows its client (an erasure ends the stream instead). */
export type StreamChange = Exclude<AlarmChange, { readonly kind: "erased" }>;

export interface ListQuery {
  /** 1..1000 */
  readonly limit: number;
  /** Only alarms with id strictly lower than this (the previous page's last id). */
  readonly before?: string;
  readonly unreadOnly?: boolean;
}

export interface ListPage {
  /** Newest first. */
  readonly items: Alarm[];
  /** Pass as `before` for the next page; null when this page is the last. */
  readonly nextBefore: string | null;
}

export interface AlarmStore {
  /**
   * Stores every item durably before resolving, in order. Within one user, ids increase in
   * commit order across all processes sharing the store, so a reader that sees id X also sees
   * every older id of that user that still exists. An item whose idempotency record exists
   * (and is younger than 24 h) resolves to the stored alarm with `replayed: true` and stores
   * nothing; a record with another fingerprint rejects that item with IdempotencyConflictError.
   * Alarm, unread bookkeeping and idempotency record commit together or not at all. Drops the
   * user's oldest alarms beyond the per-user cap, reporting them as `deleted`. A storage failure
   * rejects with UnavailableError and stores nothing of the failed commit.
   */
  create(items: readonly CreateItem[]): Promise<CreateOutcome[]>;

  /** The user's alarm, or null if unknown, expired, or another user's. */
  get(userId: string, id: string): Promise<Alarm | null>;

  /** One page, newest first; stable under concurrent inserts (new ids sort above `before`). */
  list(userId: string, query: ListQuery): Promise<ListPage>;

  /** Up to `limit` unexpired alarms with id strictly greater than `afterId`, oldest first. */
  listAfter(userId: string, afterId: string | null, limit: number): Promise<Alarm[]>;

  /** Current bookkeeping; zeros and nulls for a user never seen. */
  userState(userId: string): Promise<UserState>;

  /** Sets `readAt` once. `changed` is false when it was already read. NotFoundError if absent. */
  markRead(userId: string, id: string): Promise<{ changed: boolean; unread: number }>;

  /** Marks every unread alarm read; returns the ids it changed. */
  markAllRead(userId: string): Promise<{ ids: string[]; unread: number }>;

  /** Deletes one alarm. NotFoundError if absent. */
  delete(userId: string, id: string): Promise<{ unread: number }>;

  /**
   * Erases everything of the user: alarms, state, index entries and push subscriptions, in as
   * many commits as it takes, then reports `erased`. The user's next alarm starts afresh, as for
   * a user never seen. Erasing an unknown user does nothing and succeeds.
   */
  erase(userId: string): Promise<void>;

  /** Deletes alarms past retention (raising each user's `floorId`); returns how many. */
  sweepExpired(): Promise<number>;

  /**
   * Calls `listener` once per committed change, synchronously, in commit order, before the
   * mutating call resolves. Returns an unsubscribe function.
   */
  onChange(listener: (change: AlarmChange) => void): () => void;

  /**
   * Resolves while storage can commit; rejects with UnavailableError when the last commit
   * failed and a probe write fails too. Writes nothing while commits succeed, and probes at
   * most once every few seconds, so polling it never slows writes.
   */
  ping(): Promise<void>;

  /** Finishes queued writes, then refuses new ones. Does not close the underlying database. */
  close(): Promise<void>;
}

/** Fan-out of committed changes to every instance's live connections. */
export interface LiveBus {
  /**
   * Hands a change to every subscriber of every instance, in publish order per publisher.
   * Subscribers of this instance hear it synchronously, before `publish` returns; other
   * instances hear it at most once, possibly never if the broker is down (the change is in
   * storage, and `onGap` tells them to catch up).
   */
  publish(change: AlarmChange): void;
  /** `listener` hears every change published on any instance, including this one. */
  subscribe(listener: (change: AlarmChange) => void): () => void;
  /**
   * `listener` is called when this instance may have missed changes from other instances (the
   * broker connection dropped and came back); it should re-read what it delivers.
   */
  onGap(listener: () => void): () => void;
  /** Resolves when the bus can fan out to other instances; rejects with UnavailableError. */
  ready(): Promise<void>;
  close(): Promise<void>;
}

/** Time, injected so that heartbeats, timeouts and retention are testable with a fake clock. */
export interface Clock {
  now(): number;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (h) => clearInterval(h as number),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as number),
};

/**
 * How bytes of one stream reach its client. The stream protocol (live_connection.ts) is written
 * against this so the same logic runs on Hono's `streamSSE` and on a leaner `node:http` sink.
 */
export interface FrameSink {
  /**
   * Hands `chunk` (whole SSE frames) to the transport. Resolves once the transport accepted it;
   * may stay pending while the client does not read. Never rejects after the client left.
   */
  write(chunk: string): Promise<void>;
  /** Ends the response; idempotent. */
  close(): void;
  /** Registers the callback for when the client goes away or the sink is closed; called once. */
  onClose(callback: () => void): void;
}
