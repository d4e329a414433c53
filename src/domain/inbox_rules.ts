/**
 * How a user's inbox state (ports.ts `UserState`) follows each change, and which alarms the
 * server drops: the rules every store must apply the same way, kept apart from how one stores
 * them. Pure functions over plain values.
 */
import type { Alarm } from "./alarm.ts";
import type { UserState } from "./ports.ts";
import { ulidFloorOf } from "./ulid.ts";

export const NO_USER_STATE: UserState = {
  lastId: null,
  prevId: null,
  floorId: null,
  total: 0,
  unread: 0,
};

/** The lowest id still within retention: ids below it belong to alarms past retention. */
export function firstLiveId(nowMs: number, retentionMs: number): string {
  // An id's time is never before its alarm's createdAt, so this never hides a live alarm.
  return ulidFloorOf(nowMs - retentionMs + 1);
}

/** State after storing a new unread alarm `id`, the user's newest. */
export function afterCreate(state: UserState, id: string): UserState {
  const { lastId: prevId, total, unread } = state;
  return { ...state, lastId: id, prevId, total: total + 1, unread: unread + 1 };
}

/** State after `count` unread alarms were marked read. */
export function afterRead(state: UserState, count: number): UserState {
  return { ...state, unread: state.unread - count };
}

/** State after deleting `alarm` at the user's request. */
export function afterDelete(state: UserState, alarm: Alarm): UserState {
  return {
    ...state,
    total: state.total - 1,
    unread: alarm.readAt === null ? state.unread - 1 : state.unread,
  };
}

/**
 * State after the server dropped alarm `id` (per-user cap or retention): replay from below the
 * floor has a gap, so the floor rises to the newest id ever dropped. `alarm` is what was still
 * stored under that id, or null when it was already gone.
 */
export function afterDrop(state: UserState, id: string, alarm: Alarm | null): UserState {
  const next = alarm ? afterDelete(state, alarm) : { ...state };
  return state.floorId !== null && state.floorId >= id ? next : { ...next, floorId: id };
}

/**
 * The alarms to drop so that the user keeps at most `maxAlarms`: the oldest first, taken from
 * `oldestFirst` (which may hold fewer than needed; the rest waits for a later change).
 */
export function overCap(
  state: UserState,
  maxAlarms: number,
  oldestFirst: Iterable<Alarm>,
): Alarm[] {
  const victims: Alarm[] = [];
  let excess = state.total - maxAlarms;
  if (excess <= 0) return victims;
  for (const alarm of oldestFirst) {
    victims.push(alarm);
    if (--excess === 0) break;
  }
  return victims;
}

/** Counters recomputed from every stored alarm, expired ones included until swept. */
export function recounted(state: UserState, stored: readonly Alarm[]): UserState {
  let unread = 0;
  for (const alarm of stored) if (alarm.readAt === null) unread++;
  return { ...state, total: stored.length, unread };
}
