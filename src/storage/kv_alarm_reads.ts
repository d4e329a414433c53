import type { Alarm } from "../domain/alarm.ts";
import { isExpired } from "../domain/alarm.ts";
import { firstLiveId } from "../domain/inbox_rules.ts";
import type { Clock, ListPage, ListQuery, UserState } from "../domain/ports.ts";
import { incrementUlid } from "../domain/ulid.ts";
import { createCoalescedGets, KEYS_PER_READ } from "./coalesced_gets.ts";
import { kvKeys } from "./kv_keys.ts";
import { decodeAlarm, fromStoredUserState, type StoredUserState } from "./kv_records.ts";

/** The store's reads, on their own KV handle so that they never wait behind a commit. */
export type KvAlarmReads = ReturnType<typeof createKvAlarmReads>;

export function createKvAlarmReads(reader: Deno.Kv, clock: Clock, retentionMs: number) {
  const expired = (alarm: Alarm) => isExpired(alarm, clock.now(), retentionMs);
  const liveFrom = () => firstLiveId(clock.now(), retentionMs);
  const getCoalesced = createCoalescedGets(reader);

  /** Many keys at once, in Deno KV's largest chunks. */
  async function getMany(keys: Deno.KvKey[]): Promise<Deno.KvEntryMaybe<unknown>[]> {
    const chunks: Promise<Deno.KvEntryMaybe<unknown>[]>[] = [];
    for (let i = 0; i < keys.length; i += KEYS_PER_READ) {
      chunks.push(reader.getMany(keys.slice(i, i + KEYS_PER_READ)));
    }
    return (await Promise.all(chunks)).flat();
  }

  async function userState(userId: string): Promise<UserState> {
    // Every connect reads one: a storm of reconnects shares operations.
    return fromStoredUserState(
      (await getCoalesced<StoredUserState>(kvKeys.userState(userId))).value,
    );
  }

  /** The user's stored alarms oldest first, expired ones included (up to `limit`). */
  async function oldest(userId: string, limit?: number): Promise<Alarm[]> {
    const out: Alarm[] = [];
    for await (
      const row of reader.list<Uint8Array>({ prefix: kvKeys.alarmsOf(userId) }, { limit })
    ) {
      out.push(decodeAlarm(row.value));
    }
    return out;
  }

  /** A user's alarms still within retention, newest first, below `before` when given. */
  async function* newestFirst(userId: string, before: string | null, batchSize = 500) {
    const prefix = kvKeys.alarmsOf(userId);
    const live = liveFrom();
    if (before !== null && before <= live) return;
    const start = [...prefix, live];
    const selector: Deno.KvListSelector = before
      ? { start, end: [...prefix, before] }
      : { prefix, start };
    for await (const entry of reader.list<Uint8Array>(selector, { reverse: true, batchSize })) {
      const alarm = decodeAlarm(entry.value);
      // Newest first: once one is expired, every older one is too.
      if (expired(alarm)) return;
      yield alarm;
    }
  }

  /** The user's push subscriptions, and whether each endpoint's owner record is still theirs. */
  async function pushSubscriptionsOf(userId: string) {
    const subs: { id: string; endpoint: string; owned: boolean }[] = [];
    const selector = { prefix: kvKeys.pushSubscriptionsOf(userId) };
    for await (const row of reader.list<{ id: string; endpoint: string }>(selector)) {
      subs.push({ id: row.value.id, endpoint: row.value.endpoint, owned: false });
    }
    const owners = await getMany(subs.map((s) => kvKeys.pushEndpoint(s.endpoint)));
    owners.forEach((owner, i) => {
      const value = owner.value as { userId: string; id: string } | null;
      subs[i].owned = value?.userId === userId && value.id === subs[i].id;
    });
    return subs;
  }

  return {
    getMany,
    userState,
    oldest,
    newestFirst,
    pushSubscriptionsOf,

    async get(userId: string, id: string): Promise<Alarm | null> {
      // Streams one alarm behind read it here, many at once in a reconnect storm.
      const entry = await getCoalesced<Uint8Array>(kvKeys.alarm(userId, id));
      if (!entry.value) return null;
      const alarm = decodeAlarm(entry.value);
      return expired(alarm) ? null : alarm;
    },

    async list(userId: string, query: ListQuery): Promise<ListPage> {
      const items: Alarm[] = [];
      const want = query.limit + 1;
      // Unread ones are found by scanning: at most the per-user cap, newest (mostly unread)
      // first, and not at all when the state counts none (the inbox's usual case).
      if (query.unreadOnly && (await userState(userId)).unread === 0) {
        return { items, nextBefore: null };
      }
      const batchSize = Math.min(query.unreadOnly ? 4 * want : want, 500);
      for await (const alarm of newestFirst(userId, query.before ?? null, batchSize)) {
        if (query.unreadOnly && alarm.readAt !== null) continue;
        items.push(alarm);
        if (items.length >= want) break;
      }
      const page = items.slice(0, query.limit);
      return {
        items: page,
        nextBefore: items.length > query.limit ? page[page.length - 1].id : null,
      };
    },

    async listAfter(userId: string, afterId: string | null, limit: number): Promise<Alarm[]> {
      const prefix = kvKeys.alarmsOf(userId);
      // Skip what retention has ended without reading it, however much awaits the sweeper.
      const live = liveFrom();
      const from = afterId && incrementUlid(afterId) > live ? incrementUlid(afterId) : live;
      const out: Alarm[] = [];
      const selector = { prefix, start: [...prefix, from] };
      const batchSize = Math.min(limit + 1, 1000);
      for await (const entry of reader.list<Uint8Array>(selector, { batchSize })) {
        const alarm = decodeAlarm(entry.value);
        if (expired(alarm)) continue;
        out.push(alarm);
        if (out.length >= limit) break;
      }
      return out;
    },

    /** Up to `limit` retention-index entries below the first live id, grouped by user. */
    async expiredIds(limit: number): Promise<{ byUser: Map<string, string[]>; rows: number }> {
      const selector = { prefix: kvKeys.expiryAll, end: [...kvKeys.expiryAll, liveFrom()] };
      const byUser = new Map<string, string[]>();
      let rows = 0;
      for await (const row of reader.list<unknown>(selector, { limit })) {
        const [, id, userId] = row.key as [string, string, string];
        const ids = byUser.get(userId) ?? [];
        ids.push(id);
        byUser.set(userId, ids);
        rows++;
      }
      return { byUser, rows };
    },
  };
}
