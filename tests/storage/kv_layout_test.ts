import assert from "node:assert/strict";
import type { Alarm } from "../../src/domain/alarm.ts";
import { createUlidGenerator } from "../../src/domain/ulid.ts";
import { createKvAlarmStore } from "../../src/storage/kv_alarm_store.ts";
import { kvKeys } from "../../src/storage/kv_keys.ts";
import { ensureKvLayout, KV_LAYOUT_VERSION } from "../../src/storage/kv_layout.ts";
import { createTestClock, DAY, newItem, START } from "./alarm_store_contract.ts";

const encoder = new TextEncoder();
const RETENTION_MS = 30 * DAY;

/**
 * A KV file as an older alarmd wrote it. Layout 1: alarms under ["a"], unread entries under
 * ["u"], user states under ["h"]. Layout 2: all under ["U", user], with an unread index under "n".
 * Kim has three alarms, the first read; Lee has one, unread.
 */
async function writeOldLayout(
  path: string,
  layout: 1 | 2,
): Promise<{ kim: Alarm[]; lee: Alarm[] }> {
  const kv = await Deno.openKv(path);
  const ids = createUlidGenerator();
  const make = (userId: string, n: number, read: boolean, after: string | null): Alarm => ({
    id: ids.next(START + n * 1000, after),
    userId,
    type: "comment",
    data: { n },
    createdAt: new Date(START + n * 1000).toISOString(),
    readAt: read ? new Date(START + 9000).toISOString() : null,
    notification: null,
  });
  const kim: Alarm[] = [];
  for (let n = 0; n < 3; n++) kim.push(make("kim", n, n === 0, kim.at(-1)?.id ?? null));
  const lee = [make("lee", 5, false, null)];
  const atomic = kv.atomic();
  const [alarmKey, unreadKey, headKey] = layout === 1
    ? [
      (a: Alarm) => ["a", a.userId, a.id],
      (a: Alarm) => ["u", a.userId, a.id],
      (u: string) => ["h", u],
    ]
    : [
      (a: Alarm) => ["U", a.userId, "a", a.id],
      (a: Alarm) => ["U", a.userId, "n", a.id],
      (u: string) => ["U", u, "h"],
    ];
  for (const alarm of [...kim, ...lee]) {
    // Stored as alarmd wrote them then: alarms had no notification field.
    const { notification: _, ...stored } = alarm;
    atomic.set(alarmKey(alarm), encoder.encode(JSON.stringify(stored)));
    if (alarm.readAt === null) atomic.set(unreadKey(alarm), 1);
    atomic.set(kvKeys.expiry(alarm.id, alarm.userId), null);
  }
  atomic.set(headKey("kim"), { last: kim[2].id, floor: null, total: 3, unread: 2 });
  atomic.set(headKey("lee"), { last: lee[0].id, floor: null, total: 1, unread: 1 });
  if (layout === 2) atomic.set(kvKeys.layoutVersion, 2);
  assert.ok((await atomic.commit()).ok);
  kv.close();
  return { kim, lee };
}

async function withFile(fn: (path: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "alarmd-layout-test-" });
  try {
    await fn(`${dir}/alarms.kv`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function countUnder(kv: Deno.Kv, prefix: Deno.KvKey) {
  let n = 0;
  for await (const _ of kv.list({ prefix })) n++;
  return n;
}

const layoutOptions = { now: () => START + 60_000, retentionMs: RETENTION_MS };

for (const layout of [1, 2] as const) {
  Deno.test(`KV layout: a layout-${layout} file is moved over and the store reads and extends it as before`, async () => {
    await withFile(async (path) => {
      const { kim, lee } = await writeOldLayout(path, layout);
      const kv = await Deno.openKv(path);
      try {
        // Layout 1's alarms and user states move; the unread entries of either layout are dropped.
        assert.deepEqual(
          await ensureKvLayout(kv, layoutOptions),
          layout === 1 ? { moved: 4 + 2, dropped: 3 } : { moved: 0, dropped: 3 },
        );
        for (const old of [["a"], ["u"], ["h"]]) assert.equal(await countUnder(kv, old), 0);
        assert.equal(
          await countUnder(kv, ["U"]),
          4 + 2,
          "alarms and user states, no unread entries",
        );
        assert.equal(await countUnder(kv, ["t"]), 4, "the retention index stays");
        assert.equal((await kv.get(kvKeys.layoutVersion)).value, KV_LAYOUT_VERSION);

        const clock = createTestClock(START + 60_000);
        const store = createKvAlarmStore(kv, {
          clock,
          retentionMs: RETENTION_MS,
          maxAlarmsPerUser: 3,
        });
        assert.deepEqual(await store.listAfter("kim", null, 10), kim);
        assert.deepEqual(await store.listAfter("lee", null, 10), lee);
        assert.deepEqual(await store.userState("kim"), {
          lastId: kim[2].id,
          prevId: null, // not kept by earlier layouts: a resuming stream lists a page
          floorId: null,
          total: 3,
          unread: 2,
        });
        const unread = await store.list("kim", { limit: 10, unreadOnly: true });
        assert.deepEqual(unread.items.map((a) => a.id), [kim[2].id, kim[1].id]);

        // A new alarm follows the moved user state: later id, and the cap drops the oldest moved one.
        const [{ alarm }] = await store.create([newItem("kim")]);
        assert.ok(alarm.id > kim[2].id);
        assert.deepEqual(
          (await store.listAfter("kim", null, 10)).map((a) => a.id),
          [kim[1].id, kim[2].id, alarm.id],
        );
        assert.equal((await store.userState("kim")).unread, 3);
        assert.deepEqual(await store.markRead("kim", kim[1].id), { changed: true, unread: 2 });
        assert.deepEqual(
          (await store.list("kim", { limit: 10, unreadOnly: true })).items.map((a) => a.id),
          [alarm.id, kim[2].id],
        );
        assert.deepEqual(await store.markAllRead("kim"), { ids: [alarm.id, kim[2].id], unread: 0 });
        assert.deepEqual((await store.list("kim", { limit: 10, unreadOnly: true })).items, []);
        await store.close();
        assert.deepEqual(await ensureKvLayout(kv, layoutOptions), { moved: 0, dropped: 0 });
      } finally {
        kv.close();
      }
    });
  });
}

Deno.test("KV layout: a current file and a new file are stamped once and nothing moves", async () => {
  await withFile(async (path) => {
    const kv = await Deno.openKv(path);
    try {
      assert.deepEqual(await ensureKvLayout(kv, layoutOptions), { moved: 0, dropped: 0 });
      const stamped = await kv.get(kvKeys.layoutVersion);
      assert.equal(stamped.value, KV_LAYOUT_VERSION);
      assert.deepEqual(await ensureKvLayout(kv, layoutOptions), { moved: 0, dropped: 0 });
      assert.equal((await kv.get(kvKeys.layoutVersion)).versionstamp, stamped.versionstamp);
    } finally {
      kv.close();
    }
  });
});

Deno.test("KV layout: two processes upgrading one file together move each key exactly once", async () => {
  await withFile(async (path) => {
    const { kim } = await writeOldLayout(path, 1);
    const a = await Deno.openKv(path);
    const b = await Deno.openKv(path);
    try {
      const [ra, rb] = await Promise.all([
        ensureKvLayout(a, layoutOptions),
        ensureKvLayout(b, layoutOptions),
      ]);
      assert.equal(ra.moved + rb.moved, 6);
      assert.equal(ra.dropped + rb.dropped, 3);
      assert.equal(await countUnder(a, ["U"]), 6);
      const head = (await a.get(kvKeys.userState("kim"))).value;
      assert.deepEqual(head, { last: kim[2].id, floor: null, total: 3, unread: 2 });
    } finally {
      a.close();
      b.close();
    }
  });
});

Deno.test("KV layout: a file from a newer alarmd is refused with the reason, untouched", async () => {
  await withFile(async (path) => {
    const kv = await Deno.openKv(path);
    try {
      await kv.set(kvKeys.layoutVersion, KV_LAYOUT_VERSION + 1);
      await kv.set(["h", "kim"], { last: null, floor: null, total: 0, unread: 0 });
      await assert.rejects(
        ensureKvLayout(kv, layoutOptions),
        new RegExp(`key layout ${KV_LAYOUT_VERSION + 1}, newer than this alarmd's`),
      );
      assert.equal(await countUnder(kv, ["h"]), 1);
    } finally {
      kv.close();
    }
  });
});
