import type { Alarm } from "../domain/alarm.ts";
import type { UserState } from "../domain/ports.ts";
import type { KvAlarmReads } from "./kv_alarm_reads.ts";
import { keyByteLength, kvKeys } from "./kv_keys.ts";
import {
  decodeAlarm,
  decodeJson,
  fromStoredUserState,
  type StoredUserState,
} from "./kv_records.ts";
import type { IdempotencyRecord } from "./kv_records.ts";
import {
  alarmViewKey,
  type BatchView,
  idempotencyViewKey,
  type UnreadListing,
  userOf,
  type UserView,
  type WriteRequest,
} from "./write_plan.ts";

/**
 * Alarms one erasure pass removes: two keys each, and a commit holds at most 80 KiB of keys, so
 * users with long ids get smaller passes.
 */
export function erasePassSize(userId: string): number {
  const perAlarm = 2 * (keyByteLength(kvKeys.alarm(userId, "0".repeat(26))) + 8);
  return Math.max(1, Math.min(300, Math.floor(60 * 1024 / perAlarm)));
}

/** How many unread alarms one read-all pass marks: a pass must fit one commit. */
export const READ_ALL_PER_PASS = 200;

export interface CachedUserState {
  readonly state: UserState;
  readonly versionstamp: string | null;
}

/**
 * User states this process wrote or read last, newest last. A stale entry only costs a failed
 * check and a retry, so the cache needs no invalidation beyond dropping what failed.
 */
export function createUserStateCache(max = 100_000) {
  const entries = new Map<string, CachedUserState>();
  return {
    get: (userId: string) => entries.get(userId),
    set(userId: string, state: UserState, versionstamp: string | null) {
      entries.delete(userId);
      entries.set(userId, { state, versionstamp });
      if (entries.size > max) entries.delete(entries.keys().next().value!);
    },
    delete: (userId: string) => entries.delete(userId),
    clear: () => entries.clear(),
  };
}

export type UserStateCache = ReturnType<typeof createUserStateCache>;

/** Reads everything `writes` need into a BatchView, so that planning reads nothing. */
export async function readBatch(
  writes: readonly WriteRequest[],
  reads: KvAlarmReads,
  cache: UserStateCache,
  maxAlarmsPerUser: number,
): Promise<BatchView> {
  const userIds = new Set<string>();
  const alarmKeys: Deno.KvKey[] = [];
  const idemKeys: Deno.KvKey[] = [];
  const creates = new Map<string, number>();
  const removals = new Map<string, number>();
  /** Where each user's first read-all of the batch resumes its scan. */
  const readAllFrom = new Map<string, string | null>();
  const recounts = new Set<string>();
  const erasures = new Set<string>();
  const count = (counts: Map<string, number>, userId: string, n: number) =>
    counts.set(userId, (counts.get(userId) ?? 0) + n);
  for (const write of writes) {
    userIds.add(userOf(write));
    if (write.kind === "create") {
      count(creates, write.item.alarm.userId, 1);
      const idem = write.item.idempotency;
      if (idem) idemKeys.push(kvKeys.idempotency(idem.scope, idem.key, idem.index));
    } else if (write.kind === "read" || write.kind === "delete") {
      alarmKeys.push(kvKeys.alarm(write.userId, write.id));
      count(removals, write.userId, 1);
    } else if (write.kind === "expire") {
      for (const id of write.ids) alarmKeys.push(kvKeys.alarm(write.userId, id));
      count(removals, write.userId, write.ids.length);
    } else if (write.kind === "readAll") {
      if (!readAllFrom.has(write.userId)) readAllFrom.set(write.userId, write.before);
    } else if (write.kind === "recount") {
      recounts.add(write.userId);
    } else {
      erasures.add(write.userId);
    }
  }
  // States first: every read below is then at least as new as the versionstamp the commit
  // checks, so a change by another process in between fails the check. Cached entries are
  // taken now: another batch may clear the cache while this one awaits its reads.
  const states = new Map<string, CachedUserState>();
  const uncached: string[] = [];
  for (const userId of userIds) {
    const cached = cache.get(userId);
    if (cached) states.set(userId, cached);
    else uncached.push(userId);
  }
  const stateEntries = await reads.getMany(uncached.map(kvKeys.userState));
  const [alarmEntries, idemEntries] = await Promise.all([
    reads.getMany(alarmKeys),
    reads.getMany(idemKeys),
  ]);
  stateEntries.forEach((entry, i) => {
    const state = fromStoredUserState(entry.value as StoredUserState | null);
    states.set(uncached[i], { state, versionstamp: entry.versionstamp });
    cache.set(uncached[i], state, entry.versionstamp);
  });
  const view: BatchView = { users: new Map(), alarms: new Map(), idempotency: new Map() };
  for (const entry of alarmEntries) {
    view.alarms.set(
      alarmViewKey(entry.key[1] as string, kvKeys.idOf(entry.key)),
      entry.value ? decodeAlarm(entry.value) : null,
    );
  }
  for (const entry of idemEntries) {
    view.idempotency.set(idempotencyViewKey(entry.key), {
      record: entry.value ? decodeJson<IdempotencyRecord>(entry.value) : null,
      versionstamp: entry.versionstamp,
    });
  }
  const lists: Promise<void>[] = [];
  for (const userId of userIds) {
    const { state, versionstamp } = states.get(userId)!;
    const user: { -readonly [K in keyof UserView]: UserView[K] } = {
      state,
      versionstamp,
      oldest: [],
      created: [],
    };
    view.users.set(userId, user);
    // Creates past the cap drop the oldest: read as many as may go, and a few spare.
    const excess = state.total + (creates.get(userId) ?? 0) - maxAlarmsPerUser;
    if (excess > 0) {
      const limit = Math.min(excess + (removals.get(userId) ?? 0) + 4, 1000);
      lists.push(reads.oldest(userId, limit).then((alarms) => void (user.oldest = alarms)));
    }
    if (readAllFrom.has(userId)) {
      const before = readAllFrom.get(userId)!;
      lists.push(
        unreadListing(reads, userId, state, before).then((l) => void (user.unreadListing = l)),
      );
    }
    if (erasures.has(userId)) {
      const perPass = erasePassSize(userId);
      lists.push(
        Promise.all([reads.oldest(userId, perPass + 1), reads.pushSubscriptionsOf(userId)])
          .then(([alarms, subscriptions]) => {
            user.erasing = {
              alarms: alarms.slice(0, perPass),
              more: alarms.length > perPass,
              subscriptions,
            };
          }),
      );
    }
    if (recounts.has(userId)) {
      lists.push(reads.oldest(userId).then((alarms) => void (user.all = alarms)));
    }
  }
  await Promise.all(lists);
  return view;
}

/**
 * One read-all pass's listing: the user's live unread alarms, scanned newest first (where unread
 * ones gather) from below `before`. It stops at a pass's worth or once it has found as many as
 * the state counts, and reads nothing when the state counts none.
 */
async function unreadListing(
  reads: KvAlarmReads,
  userId: string,
  state: UserState,
  before: string | null,
): Promise<UnreadListing> {
  const alarms: Alarm[] = [];
  let more = false;
  let last = before;
  if (state.unread > 0) {
    for await (const alarm of reads.newestFirst(userId, before)) {
      last = alarm.id;
      if (alarm.readAt !== null) continue;
      alarms.push(alarm);
      if (alarms.length === READ_ALL_PER_PASS) {
        more = true;
        break;
      }
      if (alarms.length >= state.unread) break;
    }
  }
  return { alarms, more, last };
}
