import { ulidTimeOf } from "../domain/ulid.ts";
import { DEFAULT_EXPIRY_MARGIN_MS, isBusy } from "./kv_alarm_store.ts";
import { kvKeys } from "./kv_keys.ts";

/** The key layout this alarmd writes (kv_keys.ts); stored at ["v"] once a file is on it. */
export const KV_LAYOUT_VERSION = 2;

export interface KvLayoutOptions {
  readonly now: () => number;
  /** With the margin, the `expireIn` backstop given to moved alarms, as the store gives new ones. */
  readonly retentionMs: number;
  readonly expiryMarginMs?: number;
}

/** Layout 1's per-user prefixes, each with where its keys go now. */
const LAYOUT_1: { prefix: Deno.KvKey; to: (key: Deno.KvKey) => Deno.KvKey; expires: boolean }[] = [
  { prefix: ["a"], to: (k) => kvKeys.alarm(k[1] as string, k[2] as string), expires: true },
  { prefix: ["u"], to: (k) => kvKeys.unread(k[1] as string, k[2] as string), expires: true },
  { prefix: ["h"], to: (k) => kvKeys.head(k[1] as string), expires: false },
];

/** Per atomic: Deno KV allows 100 checks, 1000 mutations and 800 KiB. */
const ROWS_PER_COMMIT = 100;
const BYTES_PER_COMMIT = 512 * 1024;

/**
 * Brings a KV file to the current key layout before any store writes to it: a new file is
 * stamped, a layout-1 file has its keys moved, and a file from a newer alarmd is refused (its
 * keys would be misread). Every move is checked against the key's versionstamp, so processes or
 * workers starting together on one file move each key once, and a crash part-way leaves a file
 * the next start finishes. Other instances must be stopped while an old file is upgraded: one
 * still on layout 1 would keep writing where nobody reads.
 */
export async function ensureKvLayout(
  kv: Deno.Kv,
  options: KvLayoutOptions,
): Promise<{ moved: number }> {
  const version = (await kv.get<number>(kvKeys.layoutVersion)).value;
  if (version === KV_LAYOUT_VERSION) return { moved: 0 };
  if (version !== null && version > KV_LAYOUT_VERSION) {
    throw new Error(
      `the KV file uses key layout ${version}, newer than this alarmd's ${KV_LAYOUT_VERSION}: ` +
        "run the alarmd version that wrote it, or a newer one",
    );
  }
  const lifetimeMs = options.retentionMs + (options.expiryMarginMs ?? DEFAULT_EXPIRY_MARGIN_MS);
  let moved = 0;
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
        const expireIn = expires
          ? Math.max(1, ulidTimeOf(kvKeys.idOf(row.key)) + lifetimeMs - options.now())
          : undefined;
        atomic
          .check(row)
          .set(to(row.key), row.value, expireIn === undefined ? undefined : { expireIn })
          .delete(row.key);
      }
      // A failed check means another process moved (or changed) those keys first: list again.
      if ((await commitUnlessBusy(atomic))?.ok) moved += taken;
    }
  }
  while (
    (await commitUnlessBusy(
      kv.atomic()
        .check({ key: kvKeys.layoutVersion, versionstamp: null })
        .set(kvKeys.layoutVersion, KV_LAYOUT_VERSION),
    )) === null
  );
  return { moved };
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
