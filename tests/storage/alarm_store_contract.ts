/**
 * The AlarmStore contract (src/domain/ports.ts) as one test suite. Every adapter runs it:
 * `alarmStoreContract("KvAlarmStore", open)` registers one `Deno.test` per promise, each on a
 * fresh store opened with a fake clock.
 */
import assert from "node:assert/strict";
import type { Alarm } from "../../src/domain/alarm.ts";
import { ALARM_LIMITS, dataByteLength } from "../../src/domain/alarm.ts";
import {
  IdempotencyConflictError,
  NotFoundError,
  UnavailableError,
} from "../../src/domain/errors.ts";
import type {
  AlarmChange,
  AlarmStore,
  Clock,
  CreateItem,
  CreateOutcome,
  IdempotencyRef,
} from "../../src/domain/ports.ts";
import { isUlid } from "../../src/domain/ulid.ts";
import { createFakeClock } from "../helpers/fake_clock.ts";

export interface StoreOptions {
  readonly clock: Clock;
  readonly retentionMs: number;
  readonly maxAlarmsPerUser: number;
}

export interface OpenedStore {
  readonly store: AlarmStore;
  close(): Promise<void>;
}

export type OpenStore = (opts: StoreOptions) => Promise<OpenedStore>;

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;
/** Fake time starts here in every case, so ids and timestamps do not depend on the wall clock. */
export const START = Date.UTC(2026, 0, 15, 12, 0, 0);

const DEFAULTS = { retentionMs: 30 * DAY, maxAlarmsPerUser: 1000 };
/** A whole case gives up after this long, so a hung store fails its case instead of the run. */
const CASE_TIMEOUT_MS = 20_000;
/** One call that might loop forever (markAllRead works in passes) fails after this long. */
export const CALL_TIMEOUT_MS = 4_000;

/** The fake clock of one case; `stepBack` moves `now()` backwards, as a corrected wall clock may. */
export interface TestClock extends Clock {
  tick(ms: number): void;
  stepBack(ms: number): void;
}

export function createTestClock(start = START): TestClock {
  const fake = createFakeClock(start);
  let offset = 0;
  return {
    ...fake,
    now: () => fake.now() + offset,
    stepBack: (ms) => void (offset -= ms),
  };
}

/** Rejects when `promise` has not settled within `ms`; always clears its timer. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export function newItem(
  userId: string,
  n = 0,
  idempotency?: IdempotencyRef,
): CreateItem {
  const alarm = { userId, type: "test.alarm", data: { n } };
  return idempotency ? { alarm, idempotency } : { alarm };
}

function idem(
  key: string,
  fingerprint: string,
  index: number | null = null,
  scope = "publisher-1",
): IdempotencyRef {
  return { scope, key, index, fingerprint };
}

/** Creates `count` alarms for `userId` in one call, returns them in item order. */
export async function createMany(store: AlarmStore, userId: string, count: number) {
  const items = Array.from({ length: count }, (_, n) => newItem(userId, n));
  return (await store.create(items)).map((o) => o.alarm);
}

export const idsOf = (alarms: readonly { id: string }[]) => alarms.map((a) => a.id);
const alarmsOf = (outcomes: readonly CreateOutcome[]) => outcomes.map((o) => o.alarm);

/** Every alarm of the user, newest first, by following `nextBefore` (pages of 97). */
export async function listAll(store: AlarmStore, userId: string, unreadOnly = false) {
  const out: Alarm[] = [];
  let before: string | undefined;
  for (;;) {
    const page = await store.list(userId, { limit: 97, before, unreadOnly });
    out.push(...page.items);
    if (page.nextBefore === null) break;
    assert.equal(page.nextBefore, page.items.at(-1)?.id, "nextBefore is the page's last id");
    before = page.nextBefore;
  }
  assertDecreasing(idsOf(out));
  return out;
}

export function assertIncreasing(ids: readonly string[], what = "ids") {
  for (let i = 1; i < ids.length; i++) {
    assert.ok(ids[i - 1] < ids[i], `${what}: ${ids[i - 1]} then ${ids[i]} do not increase`);
  }
}

function assertDecreasing(ids: readonly string[]) {
  for (let i = 1; i < ids.length; i++) {
    assert.ok(ids[i - 1] > ids[i], `${ids[i - 1]} then ${ids[i]} are not newest first`);
  }
}

const sorted = (ids: readonly string[]) => [...ids].sort();

/** Records every change the store reports. */
export function recordChanges(store: AlarmStore) {
  const changes: AlarmChange[] = [];
  const stop = store.onChange((change) => changes.push(change));
  return { changes, stop };
}

/** Ids named by `deleted` changes of `userId`, in report order. */
function deletedIds(changes: readonly AlarmChange[], userId: string): string[] {
  return changes.flatMap((c) => c.kind === "deleted" && c.userId === userId ? c.ids : []);
}

/** `data` whose serialized JSON is exactly `bytes` UTF-8 bytes, multi-byte characters included. */
function dataOfSize(n: number, bytes: number): Record<string, unknown> {
  const unit = "ß€x"; // 6 UTF-8 bytes, nothing JSON escapes
  const room = bytes - dataByteLength({ n, text: "" });
  const data = { n, text: unit.repeat(Math.floor(room / 6)) + "y".repeat(room % 6) };
  assert.equal(dataByteLength(data), bytes);
  return data;
}

/** A user id of exactly 128 UTF-16 code units, most of them 3-byte UTF-8, ending in `tail`. */
function longUserId(tail: string): string {
  let id = "🔔 ünïcødé-用户-";
  while (id.length < 127) id += "日";
  id += tail;
  assert.equal(id.length, ALARM_LIMITS.userIdMax);
  return id;
}

interface Ctx {
  store: AlarmStore;
  clock: TestClock;
  options: StoreOptions;
}

export function alarmStoreContract(name: string, open: OpenStore): void {
  function test(
    behaviour: string,
    body: (ctx: Ctx) => Promise<void>,
    overrides: Partial<Omit<StoreOptions, "clock">> = {},
  ) {
    Deno.test(`${name}: ${behaviour}`, async () => {
      const clock = createTestClock();
      const options: StoreOptions = { ...DEFAULTS, ...overrides, clock };
      const handle = await open(options);
      try {
        await within(body({ store: handle.store, clock, options }), CASE_TIMEOUT_MS, behaviour);
      } finally {
        await handle.close();
      }
    });
  }

  // ---- create -------------------------------------------------------------------------------

  test("create assigns new ids that increase per user in item and call order", async ({ store, clock }) => {
    const first = await store.create([
      newItem("ana", 1),
      newItem("bo", 1),
      newItem("ana", 2),
      newItem("ana", 3),
    ]);
    const second = await store.create([newItem("ana", 4)]);
    const third = await store.create([newItem("bo", 2), newItem("ana", 5)]);
    for (const outcome of [...first, ...second, ...third]) assert.equal(outcome.replayed, false);
    assert.equal(first.length, 4);
    const ana = [first[0], first[2], first[3], second[0], third[1]].map((o) => o.alarm);
    const bo = [first[1], third[0]].map((o) => o.alarm);
    assertIncreasing(idsOf(ana), "ana");
    assertIncreasing(idsOf(bo), "bo");
    const all = idsOf([...ana, ...bo]);
    assert.equal(new Set(all).size, all.length, "ids are unique");
    for (const id of all) assert.ok(isUlid(id), `${id} is a ULID`);
    assert.deepEqual(first[2].alarm, {
      id: first[2].alarm.id,
      userId: "ana",
      type: "test.alarm",
      data: { n: 2 },
      createdAt: new Date(clock.now()).toISOString(),
      readAt: null,
      notification: null,
    });
    assert.deepEqual(ana.map((a) => a.data), [{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }, { n: 5 }]);
  });

  test("create keeps a user's ids increasing when the clock steps back", async ({ store, clock }) => {
    const [a1] = await createMany(store, "ana", 1);
    clock.stepBack(10 * MINUTE);
    const [a2] = await createMany(store, "ana", 1);
    clock.stepBack(HOUR);
    const [a3, a4] = await createMany(store, "ana", 2);
    assertIncreasing(idsOf([a1, a2, a3, a4]));
    assert.deepEqual(idsOf(await store.listAfter("ana", a1.id, 10)), idsOf([a2, a3, a4]));
    assert.equal((await store.userState("ana")).lastId, a4.id);
  });

  test("create stores every item durably before resolving", async ({ store }) => {
    const created = alarmsOf(await store.create([newItem("ana", 1), newItem("bo", 2)]));
    assert.deepEqual(await store.get("ana", created[0].id), created[0]);
    assert.deepEqual(await store.get("bo", created[1].id), created[1]);
  });

  // ---- get ----------------------------------------------------------------------------------

  test("get returns null for an unknown id and for another user's alarm", async ({ store }) => {
    const [alarm] = await createMany(store, "ana", 1);
    assert.deepEqual(await store.get("ana", alarm.id), alarm);
    assert.equal(await store.get("bo", alarm.id), null);
    assert.equal(await store.get("ana", "01ARZ3NDEKTSV4RRFFQ69G5FAV"), null);
    assert.equal(await store.get("ana", "not-an-id"), null);
    assert.equal(await store.get("nobody", alarm.id), null);
  });

  // ---- list ---------------------------------------------------------------------------------

  test("list returns newest first and pages through older alarms with before", async ({ store }) => {
    const ana = await createMany(store, "ana", 7);
    await createMany(store, "bo", 2);
    const ids = idsOf(ana);
    const page1 = await store.list("ana", { limit: 3 });
    assert.deepEqual(idsOf(page1.items), [ids[6], ids[5], ids[4]]);
    assert.equal(page1.nextBefore, ids[4]);
    const page2 = await store.list("ana", { limit: 3, before: page1.nextBefore! });
    assert.deepEqual(idsOf(page2.items), [ids[3], ids[2], ids[1]]);
    assert.equal(page2.nextBefore, ids[1]);
    const page3 = await store.list("ana", { limit: 3, before: page2.nextBefore! });
    assert.deepEqual(page3, { items: [ana[0]], nextBefore: null });
    assert.deepEqual(page1.items[0], ana[6]);
  });

  test("list gives nextBefore null when the page ends with the oldest alarm", async ({ store }) => {
    const ana = await createMany(store, "ana", 6);
    const ids = idsOf(ana);
    const exact = await store.list("ana", { limit: 6 });
    assert.deepEqual(idsOf(exact.items), [...ids].reverse());
    assert.equal(exact.nextBefore, null);
    const page1 = await store.list("ana", { limit: 3 });
    const page2 = await store.list("ana", { limit: 3, before: page1.nextBefore! });
    assert.deepEqual(idsOf(page2.items), [ids[2], ids[1], ids[0]]);
    assert.equal(page2.nextBefore, null);
    assert.deepEqual(await store.list("ana", { limit: 3, before: ids[0] }), {
      items: [],
      nextBefore: null,
    });
    assert.deepEqual(await store.list("nobody", { limit: 10 }), { items: [], nextBefore: null });
  });

  test("list pages stay stable when alarms are inserted between pages", async ({ store }) => {
    const initial = idsOf(await createMany(store, "ana", 10));
    const page1 = await store.list("ana", { limit: 4 });
    const insertedA = idsOf(await createMany(store, "ana", 3));
    const page2 = await store.list("ana", { limit: 4, before: page1.nextBefore! });
    const insertedB = idsOf(await createMany(store, "ana", 2));
    const page3 = await store.list("ana", { limit: 4, before: page2.nextBefore! });
    assert.equal(page3.nextBefore, null);
    const seen = idsOf([...page1.items, ...page2.items, ...page3.items]);
    assert.deepEqual(seen, [...initial].reverse(), "every older alarm once, none missed");
    for (const id of [...insertedA, ...insertedB]) {
      assert.ok(!idsOf(page2.items).includes(id) && !idsOf(page3.items).includes(id));
    }
    const top = await store.list("ana", { limit: 5 });
    assert.deepEqual(idsOf(top.items), [...insertedA, ...insertedB].reverse());
  });

  test("list with unreadOnly returns only unread alarms, newest first, in pages", async ({ store }) => {
    const ana = await createMany(store, "ana", 9);
    await createMany(store, "bo", 3);
    const ids = idsOf(ana);
    for (const i of [1, 4, 5, 8]) assert.equal((await store.markRead("ana", ids[i])).changed, true);
    const page1 = await store.list("ana", { limit: 2, unreadOnly: true });
    assert.deepEqual(idsOf(page1.items), [ids[7], ids[6]]);
    assert.equal(page1.nextBefore, ids[6]);
    const page2 = await store.list("ana", { limit: 2, before: ids[6], unreadOnly: true });
    assert.deepEqual(idsOf(page2.items), [ids[3], ids[2]]);
    assert.equal(page2.nextBefore, ids[2]);
    const page3 = await store.list("ana", { limit: 2, before: ids[2], unreadOnly: true });
    assert.deepEqual(idsOf(page3.items), [ids[0]]);
    assert.equal(page3.nextBefore, null);
    for (const a of [...page1.items, ...page2.items, ...page3.items]) assert.equal(a.readAt, null);
    const whole = await store.list("ana", { limit: 5, unreadOnly: true });
    assert.deepEqual(idsOf(whole.items), [ids[7], ids[6], ids[3], ids[2], ids[0]]);
    assert.equal(whole.nextBefore, null);
    const everything = await store.list("ana", { limit: 20 });
    assert.equal(everything.items.length, 9, "read alarms still listed without unreadOnly");
    assert.notEqual(everything.items.find((a) => a.id === ids[8])?.readAt, null);
  });

  // ---- listAfter ----------------------------------------------------------------------------

  test("listAfter with null returns the user's alarms from the oldest, up to limit", async ({ store }) => {
    const ana = await createMany(store, "ana", 5);
    await createMany(store, "bo", 2);
    assert.deepEqual(await store.listAfter("ana", null, 3), ana.slice(0, 3));
    assert.deepEqual(await store.listAfter("ana", null, 100), ana);
    assert.deepEqual(await store.listAfter("nobody", null, 10), []);
  });

  test("listAfter returns alarms strictly newer than the id, oldest first", async ({ store }) => {
    const ana = idsOf(await createMany(store, "ana", 3));
    await createMany(store, "bo", 2);
    ana.push(...idsOf(await createMany(store, "ana", 2)));
    assert.deepEqual(idsOf(await store.listAfter("ana", ana[1], 10)), ana.slice(2));
    assert.deepEqual(idsOf(await store.listAfter("ana", ana[1], 2)), [ana[2], ana[3]]);
    assert.deepEqual(await store.listAfter("ana", ana[4], 10), []);
    await store.delete("ana", ana[2]);
    assert.deepEqual(
      idsOf(await store.listAfter("ana", ana[2], 10)),
      [ana[3], ana[4]],
      "an id that was since deleted still works as a position",
    );
    assert.deepEqual(idsOf(await store.listAfter("ana", ana[1], 10)), [ana[3], ana[4]]);
  });

  test("listAfter skips any number of expired alarms to reach unexpired ones", async ({
    store,
    clock,
    options,
  }) => {
    await createMany(store, "ana", 1100);
    clock.tick(options.retentionMs + 1);
    const [fresh] = await createMany(store, "ana", 1);
    assert.deepEqual(idsOf(await store.listAfter("ana", null, 5)), [fresh.id]);
  }, { retentionMs: HOUR, maxAlarmsPerUser: 5000 });

  // ---- userState ----------------------------------------------------------------------------

  test("userState is zeros and nulls for a user never seen", async ({ store }) => {
    await createMany(store, "ana", 1);
    assert.deepEqual(await store.userState("nobody"), {
      lastId: null,
      prevId: null,
      floorId: null,
      total: 0,
      unread: 0,
    });
  });

  test("userState counts total and unread exactly and keeps lastId after deletes", async ({ store }) => {
    const ids = idsOf(await createMany(store, "ana", 5));
    await createMany(store, "bo", 2);
    const state = (total: number, unread: number) => ({
      lastId: ids[4],
      prevId: ids[3],
      floorId: null,
      total,
      unread,
    });
    assert.deepEqual(await store.userState("ana"), state(5, 5));
    assert.deepEqual(await store.markRead("ana", ids[0]), { changed: true, unread: 4 });
    assert.deepEqual(await store.markRead("ana", ids[1]), { changed: true, unread: 3 });
    assert.deepEqual(await store.markRead("ana", ids[0]), { changed: false, unread: 3 });
    assert.deepEqual(await store.userState("ana"), state(5, 3));
    assert.deepEqual(await store.delete("ana", ids[1]), { unread: 3 }, "deleting a read alarm");
    assert.deepEqual(await store.userState("ana"), state(4, 3));
    assert.deepEqual(await store.delete("ana", ids[2]), { unread: 2 }, "deleting an unread one");
    assert.deepEqual(await store.delete("ana", ids[4]), { unread: 1 }, "deleting the newest");
    await assert.rejects(store.delete("ana", ids[4]), NotFoundError);
    await assert.rejects(store.markRead("ana", ids[2]), NotFoundError);
    assert.deepEqual(await store.userState("ana"), state(2, 1));
    assert.equal((await store.userState("bo")).total, 2);
  });

  // ---- markRead -----------------------------------------------------------------------------

  test("markRead sets readAt once: changed true, then false", async ({ store, clock }) => {
    const [a, b] = await createMany(store, "ana", 2);
    clock.tick(5_000);
    const readAt = new Date(clock.now()).toISOString();
    assert.deepEqual(await store.markRead("ana", a.id), { changed: true, unread: 1 });
    assert.deepEqual(await store.get("ana", a.id), { ...a, readAt });
    clock.tick(5_000);
    assert.deepEqual(await store.markRead("ana", a.id), { changed: false, unread: 1 });
    assert.equal((await store.get("ana", a.id))?.readAt, readAt, "readAt is set only once");
    assert.equal((await store.get("ana", b.id))?.readAt, null);
  });

  test("markRead rejects with NotFoundError for an unknown id and another user's alarm", async ({ store }) => {
    const [mine] = await createMany(store, "ana", 1);
    const [theirs] = await createMany(store, "bo", 1);
    await assert.rejects(store.markRead("ana", "01ARZ3NDEKTSV4RRFFQ69G5FAV"), NotFoundError);
    await assert.rejects(store.markRead("ana", theirs.id), NotFoundError);
    await assert.rejects(store.markRead("nobody", mine.id), NotFoundError);
    assert.equal((await store.get("bo", theirs.id))?.readAt, null);
    assert.equal((await store.userState("bo")).unread, 1);
    assert.equal((await store.userState("ana")).unread, 1);
  });

  // ---- markAllRead --------------------------------------------------------------------------

  test("markAllRead returns exactly the ids it changed", async ({ store }) => {
    const ids = idsOf(await createMany(store, "ana", 5));
    const bo = await createMany(store, "bo", 2);
    await store.markRead("ana", ids[1]);
    await store.markRead("ana", ids[3]);
    const { changes } = recordChanges(store);
    const result = await within(store.markAllRead("ana"), CALL_TIMEOUT_MS, "markAllRead");
    assert.deepEqual({ ids: sorted(result.ids), unread: result.unread }, {
      ids: [ids[0], ids[2], ids[4]],
      unread: 0,
    });
    const reported = changes.flatMap((c) => c.kind === "read" ? c.ids : []);
    assert.deepEqual(sorted(reported), [ids[0], ids[2], ids[4]], "read changes name the same ids");
    const last = changes.at(-1);
    assert.ok(
      last?.kind === "read" && last.userId === "ana" && last.unread === 0,
      "unread 0 after",
    );
    for (const id of ids) assert.notEqual((await store.get("ana", id))?.readAt, null);
    assert.equal((await store.userState("ana")).unread, 0);
    assert.equal((await store.userState("bo")).unread, 2, "other users keep their unread");
    assert.equal((await store.get("bo", bo[0].id))?.readAt, null);
    const again = await within(store.markAllRead("ana"), CALL_TIMEOUT_MS, "markAllRead");
    assert.deepEqual(again, { ids: [], unread: 0 });
  });

  test("markAllRead marks more than 200 unread alarms and returns every id", async ({ store }) => {
    const ids = idsOf(await createMany(store, "ana", 460));
    for (const id of ids.slice(0, 10)) await store.markRead("ana", id);
    const result = await within(store.markAllRead("ana"), CALL_TIMEOUT_MS, "markAllRead");
    assert.equal(result.unread, 0);
    assert.equal(new Set(result.ids).size, result.ids.length, "no id reported twice");
    assert.deepEqual(sorted(result.ids), ids.slice(10));
    assert.equal((await store.userState("ana")).unread, 0);
    assert.deepEqual(await listAll(store, "ana", true), []);
  });

  test("unread alarms among many read ones are listed and marked, whatever their order", async ({ store }) => {
    // 650 alarms: every third one left unread (217), so passes of 200 and pages of 97 both end
    // among read alarms.
    const ids = idsOf(await createMany(store, "ana", 650));
    const unread = ids.filter((_, i) => i % 3 === 0);
    for (const id of ids.filter((_, i) => i % 3 !== 0)) await store.markRead("ana", id);
    assert.deepEqual(idsOf(await listAll(store, "ana", true)), [...unread].reverse());
    const result = await within(store.markAllRead("ana"), CALL_TIMEOUT_MS, "markAllRead");
    assert.deepEqual({ ids: sorted(result.ids), unread: result.unread }, {
      ids: unread,
      unread: 0,
    });
    assert.deepEqual(await listAll(store, "ana", true), []);
    assert.equal((await store.userState("ana")).unread, 0);
  });

  test(
    "markAllRead changes the alarms still kept while 250 expired ones await the sweeper",
    async ({
      store,
      clock,
      options,
    }) => {
      await createMany(store, "ana", 250);
      clock.tick(options.retentionMs + 1);
      const fresh = idsOf(await createMany(store, "ana", 2));
      const result = await within(store.markAllRead("ana"), CALL_TIMEOUT_MS, "markAllRead");
      assert.deepEqual(sorted(result.ids), fresh);
      for (const id of fresh) assert.notEqual((await store.get("ana", id))?.readAt, null);
      assert.deepEqual(await store.list("ana", { limit: 10, unreadOnly: true }), {
        items: [],
        nextBefore: null,
      });
    },
    { retentionMs: HOUR },
  );

  // ---- delete -------------------------------------------------------------------------------

  test("delete removes the alarm and rejects with NotFoundError the second time", async ({ store }) => {
    const [a, b] = await createMany(store, "ana", 2);
    const [theirs] = await createMany(store, "bo", 1);
    assert.deepEqual(await store.delete("ana", a.id), { unread: 1 });
    assert.equal(await store.get("ana", a.id), null);
    assert.deepEqual(idsOf(await listAll(store, "ana")), [b.id]);
    await assert.rejects(store.delete("ana", a.id), NotFoundError);
    await assert.rejects(store.delete("ana", a.id), NotFoundError);
    await assert.rejects(store.delete("ana", theirs.id), NotFoundError);
    await assert.rejects(store.delete("ana", "01ARZ3NDEKTSV4RRFFQ69G5FAV"), NotFoundError);
    assert.deepEqual(await store.get("bo", theirs.id), theirs);
    assert.equal((await store.userState("ana")).total, 1);
    assert.equal((await store.userState("bo")).total, 1);
  });

  // ---- idempotency --------------------------------------------------------------------------

  test("a retry with the same idempotency key and body replays the alarm and stores nothing", async ({ store }) => {
    const [first] = await store.create([newItem("ana", 1, idem("k1", "fp-a"))]);
    assert.equal(first.replayed, false);
    const { changes } = recordChanges(store);
    const [retry] = await store.create([newItem("ana", 1, idem("k1", "fp-a"))]);
    assert.deepEqual(retry, { alarm: first.alarm, replayed: true });
    assert.deepEqual(changes, [], "a replay is no change");
    assert.deepEqual(await store.userState("ana"), {
      lastId: first.alarm.id,
      prevId: null,
      floorId: null,
      total: 1,
      unread: 1,
    });
    assert.deepEqual(await listAll(store, "ana"), [first.alarm]);
  });

  test("the same idempotency key with another body rejects with IdempotencyConflictError", async ({ store }) => {
    const [first] = await store.create([newItem("ana", 1, idem("k1", "fp-a"))]);
    const batch = await store.create([
      newItem("ana", 2, idem("kb", "fp-b", 0)),
      newItem("ana", 3, idem("kb", "fp-b", 1)),
    ]);
    const { changes } = recordChanges(store);
    await assert.rejects(
      store.create([newItem("ana", 9, idem("k1", "fp-other"))]),
      IdempotencyConflictError,
    );
    await assert.rejects(
      store.create([
        newItem("ana", 2, idem("kb", "fp-b", 0)),
        newItem("ana", 3, idem("kb", "fp-changed", 1)),
      ]),
      IdempotencyConflictError,
    );
    assert.deepEqual(changes, [], "nothing committed");
    assert.deepEqual(await store.userState("ana"), {
      lastId: batch[1].alarm.id,
      prevId: batch[0].alarm.id,
      floorId: null,
      total: 3,
      unread: 3,
    });
    assert.deepEqual(idsOf(await listAll(store, "ana")), [
      batch[1].alarm.id,
      batch[0].alarm.id,
      first.alarm.id,
    ]);
  });

  test("batch positions, single creates and scopes under one key are independent records", async ({ store }) => {
    const batch = await store.create([
      newItem("ana", 0, idem("key", "fp", 0)),
      newItem("ana", 1, idem("key", "fp", 1)),
    ]);
    const [single] = await store.create([newItem("ana", 2, idem("key", "fp"))]);
    const [otherScope] = await store.create([
      newItem("ana", 3, idem("key", "fp", null, "publisher-2")),
    ]);
    const all = [...batch, single, otherScope];
    for (const o of all) assert.equal(o.replayed, false);
    assert.equal(new Set(all.map((o) => o.alarm.id)).size, 4);
    const retried = await store.create([
      newItem("ana", 0, idem("key", "fp", 0)),
      newItem("ana", 1, idem("key", "fp", 1)),
    ]);
    assert.deepEqual(retried, batch.map((o) => ({ alarm: o.alarm, replayed: true })));
    const [singleAgain] = await store.create([newItem("ana", 2, idem("key", "fp"))]);
    assert.deepEqual(singleAgain, { alarm: single.alarm, replayed: true });
    assert.equal((await store.userState("ana")).total, 4);
  });

  test("an idempotency record older than 24 hours no longer answers", async ({ store, clock }) => {
    const [first] = await store.create([newItem("ana", 1, idem("k1", "fp-a"))]);
    clock.tick(DAY - 1);
    const [stillKept] = await store.create([newItem("ana", 1, idem("k1", "fp-a"))]);
    assert.deepEqual(stillKept, { alarm: first.alarm, replayed: true });
    clock.tick(2);
    const [fresh] = await store.create([newItem("ana", 1, idem("k1", "fp-a"))]);
    assert.equal(fresh.replayed, false);
    assert.notEqual(fresh.alarm.id, first.alarm.id);
    const [retry] = await store.create([newItem("ana", 1, idem("k1", "fp-a"))]);
    assert.deepEqual(retry, { alarm: fresh.alarm, replayed: true }, "the new record answers");
    clock.tick(DAY + 1);
    const [otherBody] = await store.create([newItem("ana", 7, idem("k1", "fp-b"))]);
    assert.equal(otherBody.replayed, false, "an expired record is no conflict");
    assert.equal((await store.userState("ana")).total, 3);
  });

  test("concurrent creates with one idempotency key store one alarm", async ({ store }) => {
    const { changes } = recordChanges(store);
    const outcomes = (await Promise.all([
      store.create([newItem("ana", 1, idem("k1", "fp-a"))]),
      store.create([newItem("ana", 1, idem("k1", "fp-a"))]),
      store.create([newItem("ana", 1, idem("k1", "fp-a"))]),
    ])).flat();
    assert.equal(outcomes.filter((o) => !o.replayed).length, 1);
    assert.equal(new Set(outcomes.map((o) => o.alarm.id)).size, 1);
    assert.equal(changes.length, 1);
    const settled = await Promise.allSettled([
      store.create([newItem("bo", 1, idem("k2", "fp-a"))]),
      store.create([newItem("bo", 2, idem("k2", "fp-b"))]),
    ]);
    const fulfilled = settled.filter((s) => s.status === "fulfilled");
    const rejected = settled.filter((s) => s.status === "rejected");
    assert.equal(fulfilled.length, 1);
    assert.equal(rejected.length, 1);
    assert.ok(rejected[0].reason instanceof IdempotencyConflictError, String(rejected[0].reason));
    assert.equal((await store.userState("ana")).total, 1);
    assert.equal((await store.userState("bo")).total, 1);
  });

  // ---- per-user cap -------------------------------------------------------------------------

  test("create beyond the per-user cap drops the oldest, raises floorId, reports deleted", async ({
    store,
    options,
  }) => {
    const ana = idsOf(await createMany(store, "ana", 5));
    const bo = idsOf(await createMany(store, "bo", 2));
    await store.markRead("ana", ana[0]);
    const { changes } = recordChanges(store);
    const [sixth] = idsOf(await createMany(store, "ana", 1));
    assert.deepEqual(await store.userState("ana"), {
      lastId: sixth,
      prevId: ana[4],
      floorId: ana[0],
      total: 5,
      unread: 5,
    });
    const [seventh] = idsOf(await createMany(store, "ana", 1));
    assert.deepEqual(await store.userState("ana"), {
      lastId: seventh,
      prevId: sixth,
      floorId: ana[1],
      total: options.maxAlarmsPerUser,
      unread: 5,
    });
    assert.deepEqual(deletedIds(changes, "ana"), [ana[0], ana[1]]);
    const deleted = changes.filter((c) => c.kind === "deleted");
    assert.deepEqual(deleted.map((c) => c.kind === "deleted" && c.unread), [5, 5]);
    assert.deepEqual(
      idsOf(await listAll(store, "ana")),
      [seventh, sixth, ...ana.slice(2)].sort()
        .reverse(),
    );
    assert.equal(await store.get("ana", ana[0]), null);
    assert.equal(await store.get("ana", ana[1]), null);
    assert.deepEqual(await store.userState("bo"), {
      lastId: bo[1],
      prevId: bo[0],
      floorId: null,
      total: 2,
      unread: 2,
    });
  }, { maxAlarmsPerUser: 5 });

  test("one create call with more items than the cap keeps only the newest", async ({
    store,
  }) => {
    const old = idsOf(await createMany(store, "ana", 2));
    const { changes } = recordChanges(store);
    const created = idsOf(await createMany(store, "ana", 12));
    assert.equal(created.length, 12);
    assertIncreasing(created);
    const kept = created.slice(7);
    const dropped = [...old, ...created.slice(0, 7)];
    assert.deepEqual(idsOf(await listAll(store, "ana")), [...kept].reverse());
    assert.deepEqual(idsOf(await store.listAfter("ana", null, 100)), kept);
    assert.deepEqual(await store.userState("ana"), {
      lastId: created[11],
      prevId: created[10],
      floorId: created[6],
      total: 5,
      unread: 5,
    });
    assert.deepEqual(sorted(deletedIds(changes, "ana")), dropped);
    for (const id of dropped) assert.equal(await store.get("ana", id), null);
    for (const id of created.slice(0, 7)) {
      const createdAt = changes.findIndex((c) => c.kind === "created" && c.alarm.id === id);
      const deletedAt = changes.findIndex((c) => c.kind === "deleted" && c.ids.includes(id));
      assert.ok(createdAt >= 0 && createdAt < deletedAt, `${id} reported created, then deleted`);
    }
  }, { maxAlarmsPerUser: 5 });

  // ---- retention ----------------------------------------------------------------------------

  test("alarms past retention are hidden from get, list and listAfter", async ({
    store,
    clock,
  }) => {
    const old = idsOf(await createMany(store, "ana", 3));
    await store.markRead("ana", old[1]);
    clock.tick(30 * MINUTE);
    const fresh = await createMany(store, "ana", 2);
    clock.tick(30 * MINUTE + 1);
    for (const id of old) assert.equal(await store.get("ana", id), null);
    assert.deepEqual(await store.get("ana", fresh[0].id), fresh[0]);
    assert.deepEqual(await store.list("ana", { limit: 10 }), {
      items: [fresh[1], fresh[0]],
      nextBefore: null,
    });
    assert.deepEqual(await store.list("ana", { limit: 1, before: fresh[0].id }), {
      items: [],
      nextBefore: null,
    });
    assert.deepEqual(idsOf((await store.list("ana", { limit: 10, unreadOnly: true })).items), [
      fresh[1].id,
      fresh[0].id,
    ]);
    assert.deepEqual(await store.listAfter("ana", null, 10), fresh);
    assert.deepEqual(await store.listAfter("ana", old[0], 10), fresh);
  }, { retentionMs: HOUR });

  test("sweepExpired removes alarms past retention, counts them, raises floorId", async ({
    store,
    clock,
  }) => {
    const old = idsOf(await createMany(store, "ana", 3));
    const bo = idsOf(await createMany(store, "bo", 2));
    await store.markRead("ana", old[1]);
    clock.tick(30 * MINUTE);
    const fresh = await createMany(store, "ana", 2);
    await store.markRead("ana", fresh[0].id);
    clock.tick(30 * MINUTE + 1);
    const { changes } = recordChanges(store);
    assert.equal(await store.sweepExpired(), 5);
    assert.deepEqual(sorted(deletedIds(changes, "ana")), old);
    assert.deepEqual(sorted(deletedIds(changes, "bo")), bo);
    const unreadAfter = (userId: string) =>
      changes.flatMap((c) => (c.kind === "deleted" && c.userId === userId ? [c.unread] : [])).at(
        -1,
      );
    assert.equal(unreadAfter("ana"), 1);
    assert.equal(unreadAfter("bo"), 0);
    assert.deepEqual(await store.userState("ana"), {
      lastId: fresh[1].id,
      prevId: fresh[0].id,
      floorId: old[2],
      total: 2,
      unread: 1,
    });
    assert.deepEqual(await store.userState("bo"), {
      lastId: bo[1],
      prevId: bo[0],
      floorId: bo[1],
      total: 0,
      unread: 0,
    });
    assert.equal(await store.sweepExpired(), 0, "nothing left to sweep");
    assert.equal(changes.length, changes.filter((c) => c.kind === "deleted").length);
    assert.deepEqual(idsOf(await listAll(store, "ana")), [fresh[1].id, fresh[0].id]);
    assert.deepEqual(idsOf(await store.listAfter("ana", null, 10)), idsOf(fresh));
  }, { retentionMs: HOUR });

  test("sweepExpired removes an alarm as soon as it reaches retention", async ({
    store,
    clock,
    options,
  }) => {
    const [alarm] = await createMany(store, "ana", 1);
    clock.tick(options.retentionMs);
    assert.equal(await store.get("ana", alarm.id), null, "expired at exactly retention");
    assert.equal(await store.sweepExpired(), 1);
    assert.deepEqual(await store.userState("ana"), {
      lastId: alarm.id,
      prevId: null,
      floorId: alarm.id,
      total: 0,
      unread: 0,
    });
  }, { retentionMs: HOUR });

  test("sweepExpired returns 0 and changes nothing while nothing is past retention", async ({
    store,
    clock,
    options,
  }) => {
    const ids = idsOf(await createMany(store, "ana", 2));
    clock.tick(options.retentionMs - 1);
    const { changes } = recordChanges(store);
    assert.equal(await store.sweepExpired(), 0);
    assert.deepEqual(changes, []);
    assert.deepEqual(await store.userState("ana"), {
      lastId: ids[1],
      prevId: ids[0],
      floorId: null,
      total: 2,
      unread: 2,
    });
  }, { retentionMs: HOUR });

  // ---- onChange -----------------------------------------------------------------------------

  test("onChange reports every committed change once, in commit order, before the call resolves", async ({ store }) => {
    const base = idsOf(await createMany(store, "ana", 6));
    const { changes } = recordChanges(store);
    /** The number of changes heard when each call resolved. */
    const heardAt: number[] = [];
    const track = <T>(n: number, p: Promise<T>) =>
      p.then((v) => {
        heardAt[n] = changes.length;
        return v;
      });
    const [c1, r0, c2, d1, r0again, r2, c3, d2] = await Promise.all([
      track(0, store.create([newItem("ana", 10)])),
      track(1, store.markRead("ana", base[0])),
      track(2, store.create([newItem("ana", 11), newItem("bo", 1)])),
      track(3, store.delete("ana", base[1])),
      track(4, store.markRead("ana", base[0])),
      track(5, store.markRead("ana", base[2])),
      track(6, store.create([newItem("ana", 12)])),
      track(7, store.delete("ana", base[2])),
    ]);
    assert.equal([r0, r0again].filter((r) => r.changed).length, 1, "one of two reads changes");
    assert.equal(changes.length, 8, JSON.stringify(changes));
    const indexOf = (match: (c: AlarmChange) => boolean) => {
      const found = changes.flatMap((c, i) => (match(c) ? [i] : []));
      assert.equal(found.length, 1, "reported exactly once");
      return found[0];
    };
    const createdAt = (id: string) => indexOf((c) => c.kind === "created" && c.alarm.id === id);
    const removal = (kind: "read" | "deleted", id: string) =>
      indexOf((c) => c.kind === kind && c.ids.length === 1 && c.ids[0] === id);
    const expectations: [number, number[]][] = [
      [0, [createdAt(c1[0].alarm.id)]],
      [1, r0.changed ? [removal("read", base[0])] : []],
      [2, [createdAt(c2[0].alarm.id), createdAt(c2[1].alarm.id)]],
      [3, [removal("deleted", base[1])]],
      [4, r0again.changed ? [removal("read", base[0])] : []],
      [5, [removal("read", base[2])]],
      [6, [createdAt(c3[0].alarm.id)]],
      [7, [removal("deleted", base[2])]],
    ];
    for (const [call, positions] of expectations) {
      for (const at of positions) {
        assert.ok(at < heardAt[call], `change of call ${call} was heard before it resolved`);
      }
    }
    // Replaying the changes in report order must give each reported unread count and prevId.
    let unread = 6;
    const readIds = new Set<string>();
    const lastId: Record<string, string | null> = { ana: base[5], bo: null };
    for (const change of changes) {
      if (change.kind === "created") {
        const user = change.alarm.userId;
        assert.equal(change.prevId, lastId[user], "prevId is the lastId before it");
        assert.ok(lastId[user] === null || change.alarm.id > lastId[user]!);
        lastId[user] = change.alarm.id;
        if (user === "ana") unread++;
        continue;
      }
      assert.ok(change.kind !== "erased");
      assert.equal(change.userId, "ana");
      for (const id of change.ids) {
        if (change.kind === "read") {
          readIds.add(id);
          unread--;
        } else if (!readIds.has(id)) unread--;
      }
      assert.equal(change.unread, unread, `${change.kind} reports the unread count after it`);
    }
    assert.equal((await store.userState("ana")).unread, unread);
    const unreadOf = (change: AlarmChange) =>
      change.kind === "created" || change.kind === "erased" ? -1 : change.unread;
    assert.equal(r2.unread, unreadOf(changes[removal("read", base[2])]));
    assert.equal(d1.unread, unreadOf(changes[removal("deleted", base[1])]));
    assert.equal(d2.unread, unreadOf(changes[removal("deleted", base[2])]));
  });

  test("created changes carry the user's previous lastId as prevId", async ({ store }) => {
    const { changes } = recordChanges(store);
    const [a1] = await createMany(store, "ana", 1);
    const [b1] = await createMany(store, "bo", 1);
    const [a2] = await createMany(store, "ana", 1);
    const mixed = alarmsOf(
      await store.create([newItem("ana", 3), newItem("bo", 2), newItem("ana", 4)]),
    );
    await store.delete("ana", mixed[2].id);
    const [a5] = await createMany(store, "ana", 1);
    const prev = (id: string) => {
      const change = changes.find((c) => c.kind === "created" && c.alarm.id === id);
      assert.ok(change?.kind === "created", `created change for ${id}`);
      return change.prevId;
    };
    assert.equal(prev(a1.id), null);
    assert.equal(prev(b1.id), null);
    assert.equal(prev(a2.id), a1.id);
    assert.equal(prev(mixed[0].id), a2.id);
    assert.equal(prev(mixed[1].id), b1.id);
    assert.equal(prev(mixed[2].id), mixed[0].id);
    assert.equal(prev(a5.id), mixed[2].id, "lastId may name a deleted alarm");
    const created = changes.find((c) => c.kind === "created" && c.alarm.id === a2.id);
    assert.deepEqual(created?.kind === "created" && created.alarm, a2);
  });

  test("3,000 concurrent creates over 30 users: each user's changes chain by prevId in id order", async ({ store }) => {
    const { changes } = recordChanges(store);
    const users = Array.from({ length: 30 }, (_, i) => `chain-${i}`);
    const results = await Promise.all(
      Array.from({ length: 3000 }, (_, i) => store.create([newItem(users[(i * 7) % 30], i)])),
    );
    const created = alarmsOf(results.flat());
    const last = new Map<string, string | null>();
    for (const change of changes) {
      if (change.kind !== "created") continue;
      const { alarm, prevId } = change;
      const before = last.get(alarm.userId) ?? null;
      assert.equal(prevId, before, `${alarm.userId}: each change names the one before it`);
      assert.ok(before === null || alarm.id > before, "ids increase in the order changes come");
      last.set(alarm.userId, alarm.id);
    }
    assert.equal(changes.filter((c) => c.kind === "created").length, 3000);
    for (const user of users) {
      const state = await store.userState(user);
      assert.equal(state.total, 100);
      assert.equal(state.lastId, last.get(user));
      const mine = created.filter((a) => a.userId === user).map((a) => a.id).sort();
      assert.equal(mine.at(-1), state.lastId);
    }
  });

  test("onChange reports nothing for calls that change nothing, and stops after unsubscribe", async ({ store }) => {
    const [a] = await store.create([newItem("ana", 1, idem("k", "fp"))]);
    await store.markRead("ana", a.alarm.id);
    const heard: AlarmChange[] = [];
    const stop = store.onChange((c) => heard.push(c));
    const other = recordChanges(store);
    await store.markRead("ana", a.alarm.id);
    await assert.rejects(store.markRead("ana", "01ARZ3NDEKTSV4RRFFQ69G5FAV"), NotFoundError);
    await assert.rejects(store.delete("ana", "01ARZ3NDEKTSV4RRFFQ69G5FAV"), NotFoundError);
    await store.create([newItem("ana", 1, idem("k", "fp"))]);
    await within(store.markAllRead("ana"), CALL_TIMEOUT_MS, "markAllRead");
    assert.deepEqual(heard, []);
    stop();
    const [b] = await createMany(store, "ana", 1);
    assert.deepEqual(heard, [], "an unsubscribed listener hears nothing");
    assert.deepEqual(other.changes, [{ kind: "created", alarm: b, prevId: a.alarm.id }]);
    other.stop();
  });

  test("read and deleted changes name the ids and the unread count after them", async ({ store }) => {
    const [a, b, c] = idsOf(await createMany(store, "ana", 3));
    const { changes } = recordChanges(store);
    await store.markRead("ana", a);
    await store.delete("ana", b);
    await store.delete("ana", a);
    assert.deepEqual(changes, [
      { kind: "read", userId: "ana", ids: [a], unread: 2 },
      { kind: "deleted", userId: "ana", ids: [b], unread: 1 },
      { kind: "deleted", userId: "ana", ids: [a], unread: 1 },
    ]);
    assert.equal((await store.userState("ana")).unread, 1);
    assert.equal((await store.get("ana", c))?.readAt, null);
  });

  // ---- concurrency and size -----------------------------------------------------------------

  test("200 parallel creates, reads and deletes on one user leave counters equal to a recount", async ({ store }) => {
    const base = idsOf(await createMany(store, "ana", 100));
    const creates: Promise<CreateOutcome[]>[] = [];
    const reads: Promise<unknown>[] = [];
    const deletes: Promise<unknown>[] = [];
    for (let i = 0; i < 200; i++) {
      creates.push(store.create([newItem("ana", 1000 + i)]));
      if (i < 60) reads.push(store.markRead("ana", base[i]));
      if (i >= 40 && i < 90) deletes.push(store.delete("ana", base[i]));
      if (i % 10 === 0 && i < 60) reads.push(store.markRead("ana", base[i]));
    }
    const [created, readResults] = await Promise.all([
      Promise.all(creates),
      Promise.allSettled(reads),
      Promise.all(deletes),
    ]);
    for (const r of readResults) {
      if (r.status === "rejected") assert.ok(r.reason instanceof NotFoundError, String(r.reason));
    }
    const newIds = created.flat().map((o) => o.alarm.id);
    assert.equal(new Set(newIds).size, 200);
    const stored = await listAll(store, "ana");
    assert.equal(stored.length, 100 + 200 - 50);
    const state = await store.userState("ana");
    assert.equal(state.total, stored.length, "total equals a recount");
    assert.equal(state.unread, stored.filter((a) => a.readAt === null).length, "unread too");
    assert.equal(state.unread, 10 + 200);
    assert.equal(state.lastId, sorted(newIds).at(-1));
    assert.equal((await listAll(store, "ana", true)).length, state.unread);
  });

  test("one create call of 500 alarms with 8 KiB data each stores them all", async ({ store }) => {
    const items: CreateItem[] = Array.from({ length: ALARM_LIMITS.batchMax }, (_, n) => ({
      alarm: { userId: "ana", type: "bulk", data: dataOfSize(n, ALARM_LIMITS.dataMaxBytes) },
    }));
    const { changes } = recordChanges(store);
    const outcomes = await store.create(items);
    assert.equal(outcomes.length, 500);
    const ids = outcomes.map((o) => o.alarm.id);
    assertIncreasing(ids);
    assert.equal(changes.length, 500);
    const stored = await store.listAfter("ana", null, 1000);
    assert.deepEqual(idsOf(stored), ids);
    stored.forEach((alarm, n) => assert.deepEqual(alarm.data, items[n].alarm.data));
    assert.deepEqual(await store.userState("ana"), {
      lastId: ids[499],
      prevId: ids[498],
      floorId: null,
      total: 500,
      unread: 500,
    });
  });

  test("user ids of 128 characters with unicode work for every call", async ({ store }) => {
    const user = longUserId("A");
    const sibling = longUserId("B");
    const scope = longUserId("P");
    const key = "κλειδί-".padEnd(ALARM_LIMITS.idempotencyKeyMax, "ключ");
    const items = Array.from(
      { length: 150 },
      (_, n) => newItem(user, n, idem(key, "fp", n, scope)),
    );
    const created = alarmsOf(await store.create(items));
    const theirs = await createMany(store, sibling, 3);
    assertIncreasing(idsOf(created));
    const replayed = await store.create(items.slice(0, 2));
    assert.deepEqual(replayed, created.slice(0, 2).map((alarm) => ({ alarm, replayed: true })));
    assert.deepEqual(idsOf(await listAll(store, user)), idsOf(created).reverse());
    assert.deepEqual(await store.listAfter(user, created[147].id, 10), created.slice(148));
    assert.deepEqual(await store.get(user, created[0].id), created[0]);
    assert.equal(await store.get(sibling, created[0].id), null);
    assert.deepEqual(await store.markRead(user, created[0].id), { changed: true, unread: 149 });
    assert.deepEqual(await store.delete(user, created[1].id), { unread: 148 });
    await assert.rejects(store.delete(sibling, created[2].id), NotFoundError);
    assert.deepEqual(await store.userState(user), {
      lastId: created[149].id,
      prevId: created[148].id,
      floorId: null,
      total: 149,
      unread: 148,
    });
    assert.deepEqual(await store.userState(sibling), {
      lastId: theirs[2].id,
      prevId: theirs[1].id,
      floorId: null,
      total: 3,
      unread: 3,
    });
  });

  // ---- lifecycle ----------------------------------------------------------------------------

  test("close finishes queued writes, then refuses new ones", async ({ store }) => {
    const [a, b] = await createMany(store, "ana", 2);
    const pending: Promise<unknown>[] = [
      store.create([newItem("ana", 3)]),
      store.create([newItem("bo", 1), newItem("ana", 4)]),
      store.markRead("ana", a.id),
      store.delete("ana", b.id),
    ];
    await store.close();
    const settled = await Promise.allSettled(pending);
    assert.deepEqual(settled.map((s) => s.status), Array(4).fill("fulfilled"));
    await assert.rejects(store.create([newItem("ana", 5)]), UnavailableError);
    await assert.rejects(store.markRead("ana", a.id), UnavailableError);
    await assert.rejects(store.delete("ana", a.id), UnavailableError);
  });

  test("ping resolves while storage is readable and writable", async ({ store }) => {
    await store.ping();
    await createMany(store, "ana", 1);
    await store.ping();
  });

  test("erase removes every alarm and the user's state, reports erased, and the user starts afresh", async ({ store }) => {
    const mine = await createMany(store, "ana", 1000);
    await store.markRead("ana", mine[3].id);
    await createMany(store, "bo", 2);
    const { changes } = recordChanges(store);
    await within(store.erase("ana"), CALL_TIMEOUT_MS, "erase of 1,000 alarms");
    assert.deepEqual(await listAll(store, "ana"), []);
    assert.equal(await store.get("ana", mine[0].id), null);
    assert.deepEqual(await store.listAfter("ana", null, 10), []);
    assert.deepEqual(await store.userState("ana"), {
      lastId: null,
      prevId: null,
      floorId: null,
      total: 0,
      unread: 0,
    });
    assert.deepEqual(changes.filter((c) => c.kind === "erased"), [{
      kind: "erased",
      userId: "ana",
    }]);
    assert.equal((await listAll(store, "bo")).length, 2, "other users keep theirs");
    const [fresh] = await store.create([newItem("ana", 1)]);
    assert.deepEqual(changes.at(-1), { kind: "created", alarm: fresh.alarm, prevId: null });
    assert.deepEqual(await store.userState("ana"), {
      lastId: fresh.alarm.id,
      prevId: null,
      floorId: null,
      total: 1,
      unread: 1,
    });
    await store.erase("nobody");
    await store.erase("ana");
    await store.erase("ana");
    assert.deepEqual(await listAll(store, "ana"), [], "erasing again is harmless");
  });

  test("writes queued behind an erase commit after it, in order", async ({ store }) => {
    await createMany(store, "ana", 5);
    const erased = store.erase("ana");
    const [after] = await store.create([newItem("ana", 9)]);
    await erased;
    assert.deepEqual(idsOf(await listAll(store, "ana")), [after.alarm.id]);
  });
}
