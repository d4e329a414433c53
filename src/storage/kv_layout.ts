import { ulidTimeOf } from "../domain/ulid.ts";
import { DEFAULT_EXPIRY_MARGIN_MS } from "./kv_records.ts";
import { isBusy } from "./kv_retry.ts";
import { keyByteLength, kvKeys } from "./kv_keys.ts";

/** The key layout this alarmd writes (kv_keys.ts); stored at ["v"] once a file is on it. */
export const KV_LAYOUT_VERSION = 3;

export interface KvLayoutOptions {
  readonly now: () => number;
  /** With the margin, the `expireIn` backstop given to moved alarms, as the store gives new ones. */
  readonly retentionMs: number;
  readonly expiryMarginMs?: number;
}

/** Layout 1's per-user prefixes, each with where its keys go now (null: dropped). */
const LAYOUT_1: {
  prefix: Deno.KvKey;
  to: ((key: Deno.KvKey) => Deno.KvKey) | null;
  expires: boolean;
}[] = [
  { prefix: ["a"], to: (k) => kvKeys.alarm(k[1] as string, k[2] as string), expires: true },
  { prefix: ["u"], to: null, expires: false },
  { prefix: ["h"], to: (k) => kvKeys.userState(k[1] as string), expires: false },
];

/** Layout 2's unread index, ["U", userId, "n", alarmId]: layout 3 finds unread alarms by scan. */
const isLayout2Unread = (key: Deno.KvKey) => key.length === 4 && key[2] === "n";

/** Per atomic: Deno KV allows 100 checks, 1000 mutations and 800 KiB (80 KiB of keys). */
const ROWS_PER_COMMIT = 100;
const BYTES_PER_COMMIT = 512 * 1024;
const DELETES_PER_COMMIT = 500;
const DELETE_KEY_BYTES_PER_COMMIT = 64 * 1024;

/**
 * Brings a KV file to the current key layout before any store writes to it: a new file is
 * stamped, an older file has its keys moved or dropped, and a file from a newer alarmd is
 * refused (its keys would be misread). Every move is checked against the key's versionstamp, so
 * processes or workers starting together on one file move each key once, and a crash part-way
 * leaves a file the next start finishes. Other instances must be stopped while an old file is
 * upgraded: one still on an older layout would keep writing where nobody reads.
 */
export async function ensureKvLayout(
  kv: Deno.Kv,
  options: KvLayoutOptions,
): Promise<{ moved: number; dropped: number }> {
  const stamp = await kv.get<number>(kvKeys.layoutVersion);
  const version = stamp.value;
  if (version === KV_LAYOUT_VERSION) return { moved: 0, dropped: 0 };
  if (version !== null && version > KV_LAYOUT_VERSION) {
    throw new Error(
      `the KV file uses key layout ${version}, newer than this alarmd's ${KV_LAYOUT_VERSION}: ` +
        "run the alarmd version that wrote it, or a newer one",
    );
  }
  let moved = 0;
  let dropped = 0;
  if (version === null) ({ moved, dropped } = await moveLayout1(kv, options));
  // A layout-1 file that an alarmd of layout 2 began to move may hold unread entries too.
  dropped += await dropLayout2Unread(kv);
  // Fails only when another process stamped the file first, which leaves it done all the same.
  while (
    (await commitUnlessBusy(
      kv.atomic().check(stamp).set(kvKeys.layoutVersion, KV_LAYOUT_VERSION),
    )) === null
  );
  return { moved, dropped };
}

async function moveLayout1(kv: Deno.Kv, options: KvLayoutOptions) {
  const lifetimeMs = options.retentionMs + (options.expiryMarginMs ?? DEFAULT_EXPIRY_MARGIN_MS);
  let moved = 0;
  let dropped = 0;
  for (const { prefix, to, expires } of LAYOUT_1) {
    for (;;) {
      const rows: Deno.KvEntry<unknown>[] = [];
      for await (const row of kv.list({ prefix }, { limit: ROWS_PER_COMMIT })) rows.push(row);
      if (rows.length === 0) break;
      const atomic = kv.atomic();
      let bytes = 0;
      let taken = 0;
      for (const row of rows) {
        const size = row.value instanceof Uint8Array ? row.value.byteLength : 64;
        if (taken > 0 && bytes + size > BYTES_PER_COMMIT) break;
        bytes += size + 128;
        taken++;
        atomic.check(row).delete(row.key);
        if (to === null) continue;
        const expireIn = expires
          ? Math.max(1, ulidTimeOf(kvKeys.idOf(row.key)) + lifetimeMs - options.now())
          : undefined;
        atomic.set(to(row.key), row.value, expireIn === undefined ? undefined : { expireIn });
      }
      // A failed check means another process moved (or changed) those keys first: list again.
      if ((await commitUnlessBusy(atomic))?.ok) {
        if (to === null) dropped += taken;
        else moved += taken;
      }
    }
  }
  return { moved, dropped };
}

/**
 * Deletes layout 2's unread entries, found by one pass over the users' keys (they sit among each
 * user's alarms). Deletes need no check: nothing else writes these keys any more, and a key two
 * processes both delete is gone all the same.
 */
async function dropLayout2Unread(kv: Deno.Kv): Promise<number> {
  let dropped = 0;
  let keys: Deno.KvKey[] = [];
  let keyBytes = 0;
  const flush = async () => {
    const deleteAll = () => keys.reduce((atomic, key) => atomic.delete(key), kv.atomic());
    while ((await commitUnlessBusy(deleteAll())) === null);
    dropped += keys.length;
    keys = [];
    keyBytes = 0;
  };
  for await (const row of kv.list({ prefix: ["U"] }, { batchSize: 1000 })) {
    if (!isLayout2Unread(row.key)) continue;
    keys.push(row.key);
    keyBytes += keyByteLength(row.key);
    if (keys.length >= DELETES_PER_COMMIT || keyBytes >= DELETE_KEY_BYTES_PER_COMMIT) await flush();
  }
  if (keys.length > 0) await flush();
  return dropped;
}

/** Null when another connection held SQLite's write lock: the caller reads again and retries. */
async function commitUnlessBusy(
  atomic: Deno.AtomicOperation,
): Promise<Deno.KvCommitResult | Deno.KvCommitError | null> {
  try {
    return await atomic.commit();
  } catch (error) {
    if (!isBusy(error)) throw error;
    await new Promise((r) => setTimeout(r, Math.random() * 10));
    return null;
  }
}
