/** The write queue with a fake commit: which writes go together, in which order, how many at once. */
import assert from "node:assert/strict";
import { createWriteQueue } from "../../src/storage/write_queue.ts";

interface W {
  user: string;
  n: number;
  key?: string;
  alone?: boolean;
}

/** A queue whose commits wait until the test releases them; `take` is how many a commit keeps. */
function harness(options: { maxBatch?: number; maxInFlight?: number; take?: number } = {}) {
  const batches: W[][] = [];
  const pending: (() => void)[] = [];
  const queue = createWriteQueue<W>({
    userOf: (w) => w.user,
    exclusiveKeyOf: (w) => w.key ?? null,
    alone: (w) => w.alone === true,
    maxBatch: options.maxBatch ?? 100,
    maxInFlight: options.maxInFlight ?? 2,
    commit(batch) {
      batches.push(batch);
      return new Promise((resolve) => {
        pending.push(() => resolve(batch.slice(options.take ?? batch.length)));
      });
    },
  });
  const release = async () => {
    pending.shift()!();
    await new Promise((r) => setTimeout(r, 0));
  };
  const names = () => batches.map((b) => b.map((w) => `${w.user}${w.n}`).join(","));
  return { queue, batches, release, names };
}

Deno.test("while batches commit, writes gather into the next; a user busy in flight waits, keeping its order", async () => {
  const { queue, release, names } = harness({ maxInFlight: 2 });
  queue.push({ user: "a", n: 1 });
  queue.push({ user: "b", n: 1 });
  assert.equal(queue.batchesInFlight, 2);
  for (const [user, n] of [["a", 2], ["c", 1], ["b", 2], ["d", 1]] as const) {
    queue.push({ user, n });
  }
  assert.deepEqual(names(), ["a1", "b1"], "both places are taken: the rest waits");
  await release();
  assert.deepEqual(names(), ["a1", "b1", "a2,c1,d1"], "b is still in flight, so b2 waits");
  await release();
  assert.deepEqual(names(), ["a1", "b1", "a2,c1,d1", "b2"]);
  await release();
  await release();
  assert.equal(queue.batchesInFlight, 0);
});

Deno.test("no two batches in flight share an idempotency key", async () => {
  const { queue, release, names } = harness();
  queue.push({ user: "a", n: 1, key: "k" });
  queue.push({ user: "b", n: 1, key: "k" });
  queue.push({ user: "c", n: 1 });
  assert.deepEqual(names(), ["a1", "c1"]);
  await release();
  assert.deepEqual(names(), ["a1", "c1", "b1"]);
  await release();
  await release();
});

Deno.test("a write that must commit alone gets a batch of its own; other users' writes pass it", async () => {
  const { queue, release, names } = harness({ maxInFlight: 1 });
  queue.push({ user: "a", n: 1 });
  queue.push({ user: "b", n: 1 });
  queue.push({ user: "c", n: 1, alone: true });
  queue.push({ user: "d", n: 1 });
  await release();
  await release();
  await release();
  assert.deepEqual(names(), ["a1", "b1,d1", "c1"]);
});

Deno.test("what a commit leaves goes first again, before writes queued meanwhile", async () => {
  const { queue, release, names } = harness({ maxInFlight: 1, take: 1 });
  queue.push({ user: "a", n: 1 });
  queue.push({ user: "b", n: 1 });
  queue.push({ user: "c", n: 1 });
  await release();
  queue.push({ user: "d", n: 1 });
  await release();
  await release();
  await release();
  assert.deepEqual(names(), ["a1", "b1,c1", "c1,d1", "d1"]);
});

Deno.test("a batch holds at most maxBatch writes, and drain waits for every batch in flight", async () => {
  const { queue, release, batches } = harness({ maxBatch: 3, maxInFlight: 1 });
  for (let n = 0; n < 7; n++) queue.push({ user: `u${n}`, n });
  let drained = false;
  const drain = queue.drain().then(() => (drained = true));
  await release();
  assert.equal(drained, false);
  await release();
  await release();
  await drain;
  assert.deepEqual(batches.map((b) => b.length), [1, 3, 3]);
});
