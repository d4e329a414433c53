import { isBusy } from "./kv_retry.ts";
import { kvKeys } from "./kv_keys.ts";

export const BUS_KEY_BYTES = 32;
/** SQLite's write lock held by another process is waited out this many times, then an error. */
const BUSY_RETRIES = 100;

/**
 * The key that signs what crosses Redis. Every instance of a deployment shares the KV store, so
 * the key lives there: the first instance generates it, with a check that nobody stored one
 * meanwhile, and every instance then uses whatever was stored, so instances starting together
 * agree on one key.
 */
export async function loadBusKey(kv: Deno.Kv): Promise<Uint8Array> {
  for (let attempt = 0;; attempt++) {
    const stored = await kv.get<Uint8Array>(kvKeys.busKey);
    if (stored.versionstamp !== null) return checked(stored.value);
    const fresh = crypto.getRandomValues(new Uint8Array(BUS_KEY_BYTES));
    try {
      // A failed check means another instance stored its key first: the next read finds it.
      await kv.atomic().check({ key: kvKeys.busKey, versionstamp: null }).set(kvKeys.busKey, fresh)
        .commit();
    } catch (error) {
      if (!isBusy(error) || attempt >= BUSY_RETRIES) throw error;
      await new Promise((r) => setTimeout(r, Math.random() * 10));
    }
  }
}

function checked(value: unknown): Uint8Array {
  if (value instanceof Uint8Array && value.byteLength === BUS_KEY_BYTES) return value;
  throw new Error(
    `KV key ${JSON.stringify(kvKeys.busKey)} does not hold a ${BUS_KEY_BYTES}-byte Redis bus ` +
      "key; delete it (with every instance stopped) to have a new one generated",
  );
}
