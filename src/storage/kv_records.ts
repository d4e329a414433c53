/**
 * The values alarmd stores in Deno KV and how they are encoded. Alarms and idempotency records
 * are JSON bytes: stored bytes skip V8's serializer on every write. The user's state keeps its
 * original stored field names, so files written by earlier versions read unchanged.
 */
import type { Alarm } from "../domain/alarm.ts";
import { IdempotencyConflictError } from "../domain/errors.ts";
import { NO_USER_STATE } from "../domain/inbox_rules.ts";
import type { IdempotencyRef, UserState } from "../domain/ports.ts";

/** How long after retention KV's own `expireIn` removes an alarm the sweeper never reached. */
export const DEFAULT_EXPIRY_MARGIN_MS = 24 * 3600_000;

/** The value of retention-index entries, whose keys say everything. */
export const INDEX_VALUE = new Uint8Array(0);

/** A user's state as stored under ["U", userId, "h"]. */
export interface StoredUserState {
  last: string | null;
  /** Absent in states stored by versions that did not keep it. */
  prev?: string | null;
  floor: string | null;
  total: number;
  unread: number;
}

export function toStoredUserState(state: UserState): StoredUserState {
  const { lastId: last, prevId: prev, floorId: floor, total, unread } = state;
  return { last, prev, floor, total, unread };
}

export function fromStoredUserState(stored: StoredUserState | null | undefined): UserState {
  if (!stored) return NO_USER_STATE;
  const { last: lastId, prev: prevId = null, floor: floorId, total, unread } = stored;
  return { lastId, prevId, floorId, total, unread };
}

/** What answers a retried create: the request's fingerprint and the alarm it stored. */
export interface IdempotencyRecord {
  fp: string;
  alarm: Alarm;
  expiresAt: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export const encodeJson = (value: unknown): Uint8Array => encoder.encode(JSON.stringify(value));
export const decodeJson = <T>(bytes: unknown): T =>
  JSON.parse(decoder.decode(bytes as Uint8Array)) as T;

/** An alarm as stored; alarms stored before notifications existed have none. */
export function decodeAlarm(bytes: unknown): Alarm {
  const alarm = decodeJson<Alarm>(bytes);
  return alarm.notification === undefined ? { ...alarm, notification: null } : alarm;
}

/** A push waiting in the outbox: one per alarm, whatever the number of subscriptions. */
export interface OutboxRecord {
  /** When the push service may stop trying (the alarm's time plus the push TTL), ms. */
  readonly expiresAt: number;
  readonly attempts: number;
  /** Subscription ids still to send to after a partial failure; absent: all of the user's. */
  readonly remaining?: readonly string[];
}

/**
 * What a stored idempotency record means for a new request: none (or an expired one) lets it
 * create, the same fingerprint replays the stored alarm, another fingerprint is a conflict.
 */
export function idempotencyVerdict(
  record: IdempotencyRecord | null,
  idempotency: IdempotencyRef,
  nowMs: number,
): "create" | "replay" | "conflict" {
  if (!record || record.expiresAt <= nowMs) return "create";
  return record.fp === idempotency.fingerprint ? "replay" : "conflict";
}

export function idempotencyConflict(): IdempotencyConflictError {
  return new IdempotencyConflictError(
    "Idempotency-Key was already used with a different request body",
  );
}
