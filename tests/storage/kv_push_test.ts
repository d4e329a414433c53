/** The push adapters on a real KV file: subscriptions, the outbox, the VAPID keys. */
import assert from "node:assert/strict";
import type { VapidKeys } from "../../src/domain/push.ts";
import { createKvPushOutbox } from "../../src/storage/kv_push_outbox.ts";
import { createKvPushSubscriptions } from "../../src/storage/kv_push_subscriptions.ts";
import { kvKeys } from "../../src/storage/kv_keys.ts";
import { encodeJson } from "../../src/storage/kv_records.ts";
import { loadVapidKeys } from "../../src/storage/kv_vapid_keys.ts";

async function withKv(run: (kv: Deno.Kv, path: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "alarmd-push-kv-" });
  const kv = await Deno.openKv(`${dir}/push.kv`);
  try {
    await run(kv, `${dir}/push.kv`);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const clock = { now: () => Date.parse("2026-12-01T00:00:00Z") };
const sub = (n: number) => ({
  endpoint: `https://fcm.googleapis.com/fcm/send/${n}`,
  keys: { p256dh: `key-${n}`, auth: `auth-${n}` },
});

Deno.test("a subscription registers once per endpoint; again it answers the same record with fresh keys", () =>
  withKv(async (kv) => {
    const subs = createKvPushSubscriptions(kv, clock);
    const first = await subs.register("kim", sub(1), "VAPID1", 10);
    assert.equal(first.created, true);
    assert.equal(first.record.userId, "kim");
    const again = await subs.register(
      "kim",
      { ...sub(1), keys: { p256dh: "new", auth: "new" } },
      "VAPID2",
      10,
    );
    assert.equal(again.created, false);
    assert.equal(again.record.id, first.record.id);
    assert.deepEqual(again.record.keys, { p256dh: "new", auth: "new" });
    assert.equal(again.record.vapidPublicKey, "VAPID2");
    assert.deepEqual((await subs.list("kim")).map((s) => s.id), [first.record.id]);
  }));

Deno.test("an endpoint registered by another user moves to them: the first user no longer has it", () =>
  withKv(async (kv) => {
    const subs = createKvPushSubscriptions(kv, clock);
    await subs.register("kim", sub(1), "V", 10);
    const moved = await subs.register("lee", sub(1), "V", 10);
    assert.equal(moved.created, true);
    assert.deepEqual(await subs.list("kim"), []);
    assert.deepEqual((await subs.list("lee")).map((s) => s.endpoint), [sub(1).endpoint]);
  }));

Deno.test("past the per-user maximum the oldest subscription is replaced, endpoint and all", () =>
  withKv(async (kv) => {
    const subs = createKvPushSubscriptions(kv, clock);
    for (let n = 1; n <= 4; n++) await subs.register("kim", sub(n), "V", 3);
    assert.deepEqual(
      (await subs.list("kim")).map((s) => s.endpoint),
      [2, 3, 4].map((n) => sub(n).endpoint),
    );
    assert.equal((await kv.get(kvKeys.pushEndpoint(sub(1).endpoint))).value, null);
  }));

Deno.test("delete answers whether the user had it; forget leaves a re-registered endpoint alone", () =>
  withKv(async (kv) => {
    const subs = createKvPushSubscriptions(kv, clock);
    const { record } = await subs.register("kim", sub(1), "V", 10);
    assert.equal(await subs.delete("lee", record.id), false);
    assert.equal(await subs.delete("kim", record.id), true);
    assert.equal(await subs.delete("kim", record.id), false);
    const again = await subs.register("kim", sub(1), "V", 10);
    await subs.forget(record);
    assert.equal(
      (await subs.list("kim")).length,
      1,
      "the old record's forget does not hit the new one",
    );
    await subs.forget(again.record);
    assert.deepEqual(await subs.list("kim"), []);
  }));

Deno.test("the outbox lists what is due oldest first, settles retries to later, and counts what left", () =>
  withKv(async (kv) => {
    let now = 1_000;
    const outbox = createKvPushOutbox(kv, { now: () => now }, 60_000);
    const add = (dueAt: number, id: string) =>
      kv.atomic()
        .set(kvKeys.outbox(dueAt, id, "kim"), encodeJson({ expiresAt: 100_000, attempts: 0 }))
        .sum(kvKeys.outboxAdded, 1n)
        .commit();
    await add(900, "A2");
    await add(800, "A1");
    await add(5_000, "A3");
    assert.deepEqual((await outbox.due(now, 10)).map((e) => e.alarmId), ["A1", "A2"]);
    assert.deepEqual(await outbox.stats(), { pending: 3, oldestDueAt: 800 });
    const [a1, a2] = await outbox.due(now, 10);
    await outbox.settle([a1], [{ entry: a2, dueAt: 3_000, remaining: ["s1"] }]);
    assert.deepEqual(await outbox.due(now, 10), []);
    now = 3_000;
    const [retry] = await outbox.due(now, 10);
    assert.deepEqual(retry, {
      alarmId: "A2",
      userId: "kim",
      dueAt: 3_000,
      expiresAt: 100_000,
      attempts: 1,
      remaining: ["s1"],
    });
    assert.equal((await outbox.stats()).pending, 2);
    assert.equal(await outbox.dropOldest(5), 2);
    assert.deepEqual(await outbox.stats(), { pending: 0, oldestDueAt: null });
  }));

Deno.test("one instance holds the sender lease until it lapses", () =>
  withKv(async (kv) => {
    let now = 0;
    const outbox = createKvPushOutbox(kv, { now: () => now }, 0);
    assert.equal(await outbox.lease("a", 15_000), true);
    assert.equal(await outbox.lease("b", 15_000), false);
    assert.equal(await outbox.lease("a", 15_000), true, "the holder renews");
    now = 15_001;
    assert.equal(await outbox.lease("b", 15_000), true, "a lapsed lease is taken over");
    assert.equal(await outbox.lease("a", 15_000), false);
  }));

Deno.test("VAPID keys: generated once for instances starting together, kept across restarts, and earlier pairs still found", () =>
  withKv(async (kv, path) => {
    let generated = 0;
    const generate = (): Promise<VapidKeys> => {
      generated++;
      return Promise.resolve({ publicKey: `PUB${generated}`, privateKey: `PRIV${generated}` });
    };
    const other = await Deno.openKv(path);
    try {
      const [a, b] = await Promise.all([
        loadVapidKeys(kv, null, generate),
        loadVapidKeys(other, null, generate),
      ]);
      assert.deepEqual(a.current, b.current, "both instances sign with one key");
    } finally {
      other.close();
    }
    const first = (await loadVapidKeys(kv, null, generate)).current;
    const configured = { publicKey: "CONFIGURED", privateKey: "SECRET" };
    const rotated = await loadVapidKeys(kv, configured, generate);
    assert.deepEqual(rotated.current, configured);
    assert.deepEqual(
      await rotated.pairOf(first.publicKey),
      first,
      "subscriptions made before still sign",
    );
    assert.equal(await rotated.pairOf("UNKNOWN"), null);
  }));
