/** Coalesced point reads: who reads at once, who waits, how waiting reads share operations. */
import assert from "node:assert/strict";
import { createCoalescedGets } from "../../src/storage/coalesced_gets.ts";

/** A reader whose `getMany` calls wait until the test releases them (or fails them). */
function fakeReader() {
  const calls: string[][] = [];
  const pending: { keys: Deno.KvKey[]; resolve: () => void; reject: (e: unknown) => void }[] = [];
  const reader = {
    getMany(keys: Deno.KvKey[]) {
      calls.push(keys.map((k) => String(k[1])));
      return new Promise((resolve, reject) => {
        const entries = keys.map((key) => ({
          key,
          value: `v:${String(key[1])}`,
          versionstamp: "1",
        }));
        pending.push({ keys, resolve: () => resolve(entries), reject });
      });
    },
  } as unknown as Deno.Kv;
  const settle = async (how: "resolve" | "reject" = "resolve") => {
    const next = pending.shift()!;
    if (how === "resolve") next.resolve();
    else next.reject(new Error("storage down"));
    await new Promise((r) => setTimeout(r, 0));
  };
  return { reader, calls, pending, settle };
}

Deno.test("a read with nothing in flight goes at once, alone", async () => {
  const { reader, calls, settle } = fakeReader();
  const get = createCoalescedGets(reader);
  const entry = get(["U", "a", "h"]);
  assert.deepEqual(calls, [["a"]]);
  await settle();
  assert.equal((await entry).value, "v:a");
});

Deno.test("reads that arrive while one is in flight go together when it ends, ten keys an operation", async () => {
  const { reader, calls, pending, settle } = fakeReader();
  const get = createCoalescedGets(reader);
  const first = get(["U", "first", "h"]);
  const users = Array.from({ length: 25 }, (_, i) => `u${i}`);
  const waiting = users.map((u) => get(["U", u, "h"]));
  assert.equal(calls.length, 1, "nothing more is read while the first read is in flight");
  await settle();
  assert.equal((await first).value, "v:first");
  assert.deepEqual(calls.slice(1).map((c) => c.length), [10, 10, 5]);
  assert.deepEqual(calls.slice(1).flat(), users, "in the order they were asked");
  while (pending.length > 0) await settle();
  const entries = await Promise.all(waiting);
  assert.deepEqual(entries.map((e) => e.value), users.map((u) => `v:${u}`));
});

Deno.test("a failed operation fails only its own keys; later reads go on", async () => {
  const { reader, calls, pending, settle } = fakeReader();
  const get = createCoalescedGets(reader);
  const first = get(["U", "first", "h"]);
  const failing = Array.from(
    { length: 10 },
    (_, i) => get(["U", `f${i}`, "h"]).then(() => "read", (e: Error) => e.message),
  );
  const fine = get(["U", "fine", "h"]);
  await settle();
  await first;
  assert.equal(pending.length, 2);
  await settle("reject");
  assert.deepEqual(await Promise.all(failing), Array(10).fill("storage down"));
  await settle();
  assert.equal((await fine).value, "v:fine");
  const later = get(["U", "later", "h"]);
  assert.deepEqual(calls.at(-1), ["later"], "with nothing in flight, a read goes at once again");
  await settle();
  assert.equal((await later).value, "v:later");
});

Deno.test("on a real KV file, coalesced reads answer each key with its own entry", async () => {
  const path = await Deno.makeTempFile({ suffix: ".kv" });
  const kv = await Deno.openKv(path);
  try {
    for (let i = 0; i < 30; i++) await kv.set(["U", `u${i}`, "h"], { n: i });
    const get = createCoalescedGets(kv);
    const keys = Array.from({ length: 35 }, (_, i) => ["U", `u${i}`, "h"]);
    const entries = await Promise.all(keys.map((key) => get<{ n: number }>(key)));
    entries.forEach((entry, i) => {
      assert.deepEqual(entry.key, keys[i]);
      assert.deepEqual(entry.value, i < 30 ? { n: i } : null);
    });
  } finally {
    kv.close();
    await Deno.remove(path);
  }
});
