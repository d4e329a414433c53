/**
 * Every Deno KV key alarmd writes, in one place. Prefixes are one letter because an atomic
 * commit may hold at most 80 KiB of keys, and every alarm writes three of them.
 *
 * | key                          | value                    | written by                    |
 * |------------------------------|--------------------------|-------------------------------|
 * | ["a", userId, alarmId]       | alarm JSON (UTF-8 bytes) | create, read, delete, sweep   |
 * | ["u", userId, alarmId]       | 1 (unread index)         | create, read, delete, sweep   |
 * | ["t", alarmId, userId]       | null (retention index)   | create, delete, sweep         |
 * | ["h", userId]                | HeadValue                | every change of the user      |
 * | ["i", scope, "one", key]     | idempotency record bytes | create with Idempotency-Key   |
 * | ["i", scope, "batch", key, n]| idempotency record bytes | batch with Idempotency-Key    |
 * | ["p"]                        | probe bytes              | readiness probe               |
 * | ["w"]                        | 1 (writer epoch)         | every commit                  |
 *
 * ["h", userId] is the user's optimistic lock: every commit that changes a user's alarms sets
 * it, so processes sharing one KV never interleave half-updates. ["w"] is set by every commit
 * of every process: while a process is the only writer it checks ["w"] alone (one check per
 * commit, however many users), and falls back to checking each user's head once it sees
 * another writer.
 */
export const kvKeys = {
  alarm: (userId: string, id: string): Deno.KvKey => ["a", userId, id],
  alarmsOf: (userId: string): Deno.KvKey => ["a", userId],
  unread: (userId: string, id: string): Deno.KvKey => ["u", userId, id],
  unreadOf: (userId: string): Deno.KvKey => ["u", userId],
  expiry: (id: string, userId: string): Deno.KvKey => ["t", id, userId],
  expiryAll: ["t"] as Deno.KvKey,
  head: (userId: string): Deno.KvKey => ["h", userId],
  idempotency: (scope: string, key: string, index: number | null): Deno.KvKey =>
    index === null ? ["i", scope, "one", key] : ["i", scope, "batch", key, index],
  probe: ["p"] as Deno.KvKey,
  writerEpoch: ["w"] as Deno.KvKey,
};

const encoder = new TextEncoder();

/**
 * Upper bound of a key's encoded size, for budgeting an atomic commit: a string costs its UTF-8
 * bytes, one more per NUL byte (escaped), a type tag and a terminator.
 */
export function keyByteLength(key: Deno.KvKey): number {
  let n = 0;
  for (const part of key) {
    if (typeof part !== "string") {
      n += 10;
      continue;
    }
    const bytes = encoder.encode(part);
    n += bytes.byteLength + 2;
    for (const b of bytes) if (b === 0) n++;
  }
  return n;
}
