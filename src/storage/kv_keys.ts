/**
 * Every Deno KV key alarmd writes, in one place. Prefixes are one letter because an atomic
 * commit may hold at most 80 KiB of keys, and every alarm writes two of them.
 *
 * | key                          | value                    | written by                    |
 * |------------------------------|--------------------------|-------------------------------|
 * | ["U", userId, "a", alarmId]  | alarm JSON (UTF-8 bytes) | create, read, delete, sweep   |
 * | ["U", userId, "h"]           | user state (V8)          | every change of the user      |
 * | ["t", alarmId, userId]       | empty bytes (retention)  | create, delete, sweep         |
 * | ["i", scope, "one", key]     | idempotency record bytes | create with Idempotency-Key   |
 * | ["i", scope, "batch", key, n]| idempotency record bytes | batch with Idempotency-Key    |
 * | ["p"]                        | probe bytes              | readiness probe               |
 * | ["b"]                        | 32 random bytes          | kv_bus_key.ts, once           |
 * | ["v"]                        | layout version           | kv_layout.ts, once            |
 * | ["w"]                        | 1 (writer claim)         | a claim; shared-mode commits  |
 * | ["U", userId, "s", subId]    | push subscription        | push registration             |
 * | ["e", endpoint]              | [userId, subId]          | push registration (owner)     |
 * | ["o", dueAt, alarmId, userId]| outbox record bytes      | create with a push due; sends |
 * | ["oa"], ["or"]               | KvU64 counters           | outbox adds / removals        |
 * | ["d"]                        | dispatcher lease         | the instance that sends       |
 * | ["k", "current"], ["k", pub] | VAPID key pairs          | kv_vapid_keys.ts              |
 *
 * A user's keys sit side by side under ["U", userId]: a create writes the newest alarm and the
 * user's state right after it, so SQLite mostly dirties one page per alarm instead of several
 * far apart. Unread alarms have no index: the per-user cap bounds the scan that finds them. The
 * retention index lets the sweeper find expired alarms without visiting every user; its keys
 * follow time, so SQLite appends them to the same few pages. docs/storage.md has the figures.
 *
 * The user's state is the user's optimistic lock: every commit that changes a user's alarms
 * sets it, so processes sharing one KV never interleave half-updates. ["w"] is the writer claim
 * (writer_claim.ts).
 */
export const kvKeys = {
  alarm: (userId: string, id: string): Deno.KvKey => ["U", userId, "a", id],
  alarmsOf: (userId: string): Deno.KvKey => ["U", userId, "a"],
  /** The alarm id of an alarm key: always the last part. */
  idOf: (key: Deno.KvKey): string => key[key.length - 1] as string,
  expiry: (id: string, userId: string): Deno.KvKey => ["t", id, userId],
  expiryAll: ["t"] as Deno.KvKey,
  userState: (userId: string): Deno.KvKey => ["U", userId, "h"],
  idempotency: (scope: string, key: string, index: number | null): Deno.KvKey =>
    index === null ? ["i", scope, "one", key] : ["i", scope, "batch", key, index],
  probe: ["p"] as Deno.KvKey,
  /** The HMAC key that signs what crosses Redis: one per deployment (every instance shares KV). */
  busKey: ["b"] as Deno.KvKey,
  layoutVersion: ["v"] as Deno.KvKey,
  writerClaim: ["w"] as Deno.KvKey,
  pushSubscription: (userId: string, id: string): Deno.KvKey => ["U", userId, "s", id],
  pushSubscriptionsOf: (userId: string): Deno.KvKey => ["U", userId, "s"],
  pushEndpoint: (endpoint: string): Deno.KvKey => ["e", endpoint],
  /** Ordered by when the push is next due, so the sender lists what is due from the start. */
  outbox: (
    dueAt: number,
    alarmId: string,
    userId: string,
  ): Deno.KvKey => ["o", dueAt, alarmId, userId],
  outboxAll: ["o"] as Deno.KvKey,
  outboxAdded: ["oa"] as Deno.KvKey,
  outboxRemoved: ["or"] as Deno.KvKey,
  pushDispatcher: ["d"] as Deno.KvKey,
  vapidCurrent: ["k", "current"] as Deno.KvKey,
  vapidKey: (publicKey: string): Deno.KvKey => ["k", publicKey],
};

/**
 * Upper bound of a key's encoded size, for budgeting an atomic commit: a string costs its UTF-8
 * bytes, one more per NUL byte (escaped), a type tag and a terminator. Counted without encoding:
 * this runs for every key of every commit.
 */
export function keyByteLength(key: Deno.KvKey): number {
  let n = 0;
  for (const part of key) {
    if (typeof part !== "string") {
      n += 10;
      continue;
    }
    n += 2;
    for (let i = 0; i < part.length; i++) {
      const c = part.charCodeAt(i);
      if (c === 0) n += 2;
      else if (c < 0x80) n += 1;
      else if (c < 0x800) n += 2;
      else if (c >= 0xd800 && c <= 0xdbff) {
        // A surrogate pair is 4 bytes; a lone surrogate (3 bytes) is over-counted, which is safe.
        n += 4;
        i++;
      } else n += 3;
    }
  }
  return n;
}
