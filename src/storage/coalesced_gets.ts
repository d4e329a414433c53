/** Deno KV's most keys in one `getMany`. */
export const KEYS_PER_READ = 10;

/**
 * Point reads that share operations: the first caller reads at once; callers that arrive while
 * reads are in flight wait for them to end and then go together, ten keys an operation. Deno KV
 * runs a handle's operations one at a time, so when many streams connect at once each would
 * otherwise wait behind a read of its own. At low load nothing waits, as in the write queue.
 */
export function createCoalescedGets(reader: Deno.Kv) {
  type Waiter = {
    key: Deno.KvKey;
    resolve: (entry: Deno.KvEntryMaybe<unknown>) => void;
    reject: (error: unknown) => void;
  };
  let queued: Waiter[] = [];
  let inFlight = false;

  async function flush() {
    inFlight = true;
    while (queued.length > 0) {
      const batch = queued;
      queued = [];
      const reads: Promise<void>[] = [];
      for (let i = 0; i < batch.length; i += KEYS_PER_READ) {
        const part = batch.slice(i, i + KEYS_PER_READ);
        reads.push(
          reader.getMany(part.map((w) => w.key)).then(
            (entries) => part.forEach((w, n) => w.resolve(entries[n])),
            (error) => part.forEach((w) => w.reject(error)),
          ),
        );
      }
      await Promise.all(reads);
    }
    inFlight = false;
  }

  return function get<T>(key: Deno.KvKey): Promise<Deno.KvEntryMaybe<T>> {
    return new Promise((resolve, reject) => {
      queued.push({ key, resolve: resolve as Waiter["resolve"], reject });
      if (!inFlight) void flush();
    });
  };
}
