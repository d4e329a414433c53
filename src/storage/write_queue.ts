/**
 * The in-process queue every write goes through, leaving as group commits: while a batch
 * commits, new writes queue up, and the next batch takes all that fit one atomic commit.
 *
 * Up to `maxInFlight` batches run at once (while one commits, the next reads and plans). Two
 * batches never share a user or an idempotency key, so each user's writes commit in the order
 * they came and every plan starts from states no other batch is changing.
 */
export interface WriteQueue<W> {
  /** Queues `write` last and starts a batch if one may start. */
  push(write: W): void;
  /** Puts `write` first again without starting a batch: used while its own batch is in flight. */
  pushFront(write: W): void;
  readonly batchesInFlight: number;
  /** Resolves once no batch is in flight. */
  drain(): Promise<void>;
}

export interface WriteQueueOptions<W> {
  userOf(write: W): string;
  /** A key no two batches in flight may share, or null. */
  exclusiveKeyOf(write: W): string | null;
  /** Whether the write must be a batch of its own. */
  alone(write: W): boolean;
  maxBatch: number;
  maxInFlight: number;
  /** Commits a leading part of `batch`; returns the writes it left, in order. */
  commit(batch: W[]): Promise<W[]>;
}

export function createWriteQueue<W>(options: WriteQueueOptions<W>): WriteQueue<W> {
  const queue: W[] = [];
  const inFlight = new Set<Promise<void>>();
  const busyUsers = new Set<string>();
  const busyKeys = new Set<string>();

  function pump() {
    while (inFlight.size < options.maxInFlight && queue.length > 0) {
      const batch = takeBatch();
      if (batch.length === 0) return;
      const users = new Set(batch.map(options.userOf));
      const keys = batch.map(options.exclusiveKeyOf).filter((k): k is string => k !== null);
      for (const u of users) busyUsers.add(u);
      for (const k of keys) busyKeys.add(k);
      const running: Promise<void> = options.commit(batch).then((leftover) => {
        // Leftovers go first again: their users were busy, so nothing of theirs overtook them.
        queue.unshift(...leftover);
      }).finally(() => {
        for (const u of users) busyUsers.delete(u);
        for (const k of keys) busyKeys.delete(k);
        inFlight.delete(running);
        pump();
      });
      inFlight.add(running);
    }
  }

  /**
   * Queued writes, in order, whose user and key no batch in flight holds. Once a user's write is
   * skipped, all its later writes are too, so each user's writes stay in order.
   */
  function takeBatch(): W[] {
    const taken: W[] = [];
    const rest: W[] = [];
    const skipped = new Set<string>();
    let i = 0;
    for (; i < queue.length && taken.length < options.maxBatch; i++) {
      const write = queue[i];
      const userId = options.userOf(write);
      const key = options.exclusiveKeyOf(write);
      const alone = options.alone(write);
      if (
        busyUsers.has(userId) || skipped.has(userId) || (key !== null && busyKeys.has(key)) ||
        (alone && taken.length > 0)
      ) {
        skipped.add(userId);
        rest.push(write);
        continue;
      }
      taken.push(write);
      if (alone) {
        i++;
        break;
      }
    }
    if (taken.length > 0) queue.splice(0, i, ...rest);
    return taken;
  }

  return {
    push(write) {
      queue.push(write);
      pump();
    },
    pushFront(write) {
      queue.unshift(write);
    },
    get batchesInFlight() {
      return inFlight.size;
    },
    async drain() {
      while (inFlight.size > 0) await Promise.all(inFlight);
    },
  };
}
