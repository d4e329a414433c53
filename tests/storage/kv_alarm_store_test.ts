import assert from "node:assert/strict";
import type { Alarm } from "../../src/domain/alarm.ts";
import { NotFoundError, UnavailableError } from "../../src/domain/errors.ts";
import type { AlarmChange, AlarmStore, CreateOutcome } from "../../src/domain/ports.ts";
import { createKvAlarmStore } from "../../src/storage/kv_alarm_store.ts";
import { kvKeys } from "../../src/storage/kv_keys.ts";
import {
  alarmStoreContract,
  assertIncreasing,
  CALL_TIMEOUT_MS,
  createMany,
  createTestClock,
  DAY,
  idsOf,
  listAll,
  MINUTE,
  newItem,
  recordChanges,
  within,
} from "./alarm_store_contract.ts";

async function tempKvPath() {
  const dir = await Deno.makeTempDir({ prefix: "alarmd-kv-test-" });
  return { dir, path: `${dir}/alarms.kv` };
}

/**
 * Closes the stores, then their KV handles, then removes the directory. A store stuck in its write
 * loop gets a few seconds, then loses its KV, which ends the loop with UnavailableError.
 */
async function shutdown(stores: AlarmStore[], kvs: Deno.Kv[], dir: string) {
  try {
    await within(Promise.all(stores.map((s) => s.close())), 2_000, "store.close()")
      .catch(() => {});
  } finally {
    for (const kv of kvs) {
      try {
        kv.close();
      } catch {
        // The test closed it already.
      }
    }
    await Promise.all(stores.map((s) => s.close()));
    await Deno.remove(dir, { recursive: true });
  }
}

const defaultOptions = () => ({
  clock: createTestClock(),
  retentionMs: 30 * DAY,
  maxAlarmsPerUser: 1000,
});

alarmStoreContract("KvAlarmStore", async (options) => {
  const { dir, path } = await tempKvPath();
  const kv = await Deno.openKv(path);
  const store = createKvAlarmStore(kv, options);
  return { store, close: () => shutdown([store], [kv], dir) };
});

// As the server runs it: reads on a second connection, alongside commits on the first.
alarmStoreContract("KvAlarmStore with a read connection", async (options) => {
  const { dir, path } = await tempKvPath();
  const kv = await Deno.openKv(path);
  const readKv = await Deno.openKv(path);
  const store = createKvAlarmStore(kv, { ...options, readKv });
  return { store, close: () => shutdown([store], [kv, readKv], dir) };
});

interface KvHooks {
  /** Runs before a `getMany` reaches KV; may hold it back. */
  beforeGetMany?(keys: Deno.KvKey[]): Promise<void> | void;
  /** Runs once a `getMany` has read from KV. */
  afterGetMany?(keys: Deno.KvKey[]): void;
  /** When it returns true, atomic commits fail as a broken disk would make them. */
  failCommits?(): boolean;
}

/** The same KV handle, with hooks around reads and commits. */
function hookedKv(kv: Deno.Kv, hooks: KvHooks): Deno.Kv {
  const bound = <T extends object>(target: T, prop: string | symbol) => {
    const value = Reflect.get(target, prop, target);
    return typeof value === "function" ? value.bind(target) : value;
  };
  return new Proxy(kv, {
    get(target, prop) {
      if (prop === "getMany") {
        return async (keys: Deno.KvKey[], options?: { consistency?: Deno.KvConsistencyLevel }) => {
          await hooks.beforeGetMany?.(keys);
          const entries = await target.getMany(keys, options);
          hooks.afterGetMany?.(keys);
          return entries;
        };
      }
      if (prop === "atomic") {
        return () =>
          new Proxy(target.atomic(), {
            get(op, opProp) {
              if (opProp === "commit" && hooks.failCommits?.()) {
                return () => Promise.reject(new Error("simulated: disk I/O error"));
              }
              return bound(op, opProp);
            },
          });
      }
      return bound(target, prop);
    },
  });
}

const sameKey = (a: Deno.KvKey, b: Deno.KvKey) => JSON.stringify(a) === JSON.stringify(b);
const isUserState = (k: Deno.KvKey) => sameKey(k, kvKeys.userState(String(k[1])));
const isAlarm = (k: Deno.KvKey) => sameKey(k, kvKeys.alarm(String(k[1]), kvKeys.idOf(k)));

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

// ---- two processes on one KV file ---------------------------------------------------------------

/** Two stores on one KV file, each with its own handle, as two processes hold it. */
async function twoProcesses(wrapB: (kv: Deno.Kv) => Deno.Kv = (kv) => kv) {
  const { dir, path } = await tempKvPath();
  const kvA = await Deno.openKv(path);
  const kvB = await Deno.openKv(path);
  const options = defaultOptions();
  const a = createKvAlarmStore(kvA, options);
  const b = createKvAlarmStore(wrapB(kvB), options);
  return { a, b, clock: options.clock, close: () => shutdown([a, b], [kvA, kvB], dir) };
}

Deno.test("KvAlarmStore: two processes creating for the same users store each alarm once, in id order", async () => {
  const { dir, path } = await tempKvPath();
  const kvA = await Deno.openKv(path);
  const kvB = await Deno.openKv(path);
  const kvReader = await Deno.openKv(path);
  const storageErrors: string[] = [];
  const options = { ...defaultOptions(), onError: (e: unknown) => storageErrors.push(String(e)) };
  const a = createKvAlarmStore(kvA, options);
  const b = createKvAlarmStore(kvB, options);
  const reader = createKvAlarmStore(kvReader, options);
  try {
    const users = ["ana", "bo", "cy"];
    const heardA = recordChanges(a);
    const heardB = recordChanges(b);

    // A reader polls listAfter while both write: what it sees must only ever grow at the top.
    const seen = new Map(users.map((u) => [u, [] as string[]]));
    const catchUp = async (userId: string) => {
      const got = seen.get(userId)!;
      for (;;) {
        const page = await reader.listAfter(userId, got.at(-1) ?? null, 1000);
        if (page.length === 0) return;
        for (const alarm of page) got.push(alarm.id);
      }
    };
    let writing = true;
    const poller = (async () => {
      while (writing) for (const u of users) await catchUp(u);
    })();

    const callsPerWorker = 25;
    const itemsPerCall = (w: number, i: number) => 1 + ((w + i) % 3);
    const worker = async (store: AlarmStore, w: number) => {
      const out: CreateOutcome[] = [];
      for (let i = 0; i < callsPerWorker; i++) {
        const n = itemsPerCall(w, i);
        const items = Array.from({ length: n }, (_, k) => newItem(users[(w + i + k) % 3], w));
        out.push(...await store.create(items));
      }
      return out;
    };
    const settled = await Promise.allSettled(
      [0, 1, 2, 3].flatMap((w) => [worker(a, w), worker(b, w + 4)]),
    );
    writing = false;
    await poller;
    const failures = settled.flatMap((r) => r.status === "rejected" ? [String(r.reason)] : []);
    assert.deepEqual(failures, [], `writers failed; storage said: ${[...new Set(storageErrors)]}`);
    const outcomes = settled.flatMap((r) => r.status === "fulfilled" ? r.value : []);
    let expected = 0;
    for (let w = 0; w < 8; w++) {
      for (let i = 0; i < callsPerWorker; i++) expected += itemsPerCall(w, i);
    }
    assert.equal(outcomes.length, expected);
    for (const userId of users) {
      await catchUp(userId);
      const mine = outcomes.filter((o) => o.alarm.userId === userId).map((o) => o.alarm.id).sort();
      assert.equal(new Set(mine).size, mine.length, `${userId}: every id assigned once`);
      assert.deepEqual(idsOf(await listAll(reader, userId)).reverse(), mine, `${userId} stored`);
      assertIncreasing(seen.get(userId)!, `${userId} as the reader saw them appear`);
      assert.deepEqual(seen.get(userId), mine, `${userId}: no older id appeared after a newer one`);
      // Each commit saw the previous one: the prevIds chain the ids in order, across processes.
      const created = [...heardA.changes, ...heardB.changes]
        .flatMap((c) => c.kind === "created" && c.alarm.userId === userId ? [c] : [])
        .sort((x, y) => (x.alarm.id < y.alarm.id ? -1 : 1));
      assert.deepEqual(idsOf(created.map((c) => c.alarm)), mine, "each creation reported once");
      created.forEach((c, i) => assert.equal(c.prevId, i === 0 ? null : mine[i - 1]));
      assert.deepEqual(await reader.userState(userId), {
        lastId: mine.at(-1),
        prevId: mine.at(-2),
        floorId: null,
        total: mine.length,
        unread: mine.length,
      });
    }

    // Both processes now read and delete the same alarms at once.
    heardA.changes.length = 0;
    heardB.changes.length = 0;
    const reads: Promise<{ changed: boolean }>[] = [];
    const deletes: Promise<unknown>[] = [];
    const readThenDelete: Promise<unknown>[] = [];
    const stored = new Map<string, string[]>();
    for (const userId of users) {
      const ids = seen.get(userId)!;
      stored.set(userId, ids);
      for (let i = 0; i < 10; i++) {
        reads.push(a.markRead(userId, ids[i]), b.markRead(userId, ids[i]));
      }
      for (let i = 10; i < 20; i++) {
        deletes.push(a.delete(userId, ids[i]), b.delete(userId, ids[i]));
      }
      for (let i = 20; i < 25; i++) {
        readThenDelete.push(a.markRead(userId, ids[i]), b.delete(userId, ids[i]));
      }
    }
    const [readResults, deleteResults, mixedResults] = await Promise.all([
      Promise.all(reads),
      Promise.allSettled(deletes),
      Promise.allSettled(readThenDelete),
    ]);
    for (let i = 0; i < readResults.length; i += 2) {
      assert.equal(
        [readResults[i], readResults[i + 1]].filter((r) => r.changed).length,
        1,
        "one of two concurrent reads of an alarm changes it",
      );
    }
    for (let i = 0; i < deleteResults.length; i += 2) {
      const pair = [deleteResults[i], deleteResults[i + 1]];
      assert.equal(pair.filter((r) => r.status === "fulfilled").length, 1, "one delete succeeds");
      const failed = pair.find((r) => r.status === "rejected");
      assert.ok(failed?.status === "rejected" && failed.reason instanceof NotFoundError);
    }
    for (const r of mixedResults) {
      if (r.status === "rejected") assert.ok(r.reason instanceof NotFoundError, String(r.reason));
    }
    const reported = [...heardA.changes, ...heardB.changes];
    for (const userId of users) {
      const ids = stored.get(userId)!;
      const readIds = reported.flatMap((c) =>
        c.kind === "read" && c.userId === userId ? c.ids : []
      );
      for (const id of ids.slice(0, 10)) {
        assert.equal(readIds.filter((x) => x === id).length, 1, "each read reported once");
      }
      const deleted = reported.flatMap((c) =>
        c.kind === "deleted" && c.userId === userId ? c.ids : []
      );
      assert.deepEqual([...deleted].sort(), ids.slice(10, 25), "each delete reported once");
      const remaining = await listAll(reader, userId);
      assert.equal(remaining.length, ids.length - 15);
      const state = await reader.userState(userId);
      assert.equal(state.total, remaining.length, `${userId} total equals a recount`);
      assert.equal(state.unread, remaining.filter((x) => x.readAt === null).length);
      assert.equal(state.unread, ids.length - 25);
    }
  } finally {
    await shutdown([a, b, reader], [kvA, kvB, kvReader], dir);
  }
});

Deno.test("KvAlarmStore: two processes never give the same id to two users, even with lagging clocks", async () => {
  const { a, b, clock, close } = await twoProcesses();
  try {
    const [first] = await createMany(a, "ana", 1);
    // The clock is corrected backwards (both processes share it here); ids must still be new.
    clock.stepBack(MINUTE);
    const [forBo] = await createMany(a, "bo", 1);
    const [forAna] = await createMany(b, "ana", 1);
    assert.ok(forAna.id > first.id, "ana's ids increase across processes");
    const ids = [first.id, forBo.id, forAna.id];
    assert.equal(new Set(ids).size, 3, `alarm ids are unique across processes: ${ids}`);
  } finally {
    await close();
  }
});

/**
 * Process B starts a change of alarm X and has read X, but its read of the user's state is late;
 * meanwhile process A changes X. B must notice (and re-read X) instead of applying its change to
 * the stale X under the new state.
 */
async function raceOnOneAlarm<T>(
  mutate: (store: AlarmStore, alarm: Alarm) => Promise<T>,
  check: (
    results: { a: PromiseSettledResult<T>; b: PromiseSettledResult<T> },
    store: AlarmStore,
    alarm: Alarm,
    changes: AlarmChange[],
  ) => Promise<void>,
) {
  const stateRead = deferred();
  const alarmRead = deferred();
  let gated = false;
  const { a, b, close } = await twoProcesses((kvB) =>
    hookedKv(kvB, {
      beforeGetMany: (keys) => {
        if (gated && keys.some(isUserState)) return stateRead.promise;
      },
      afterGetMany: (keys) => {
        if (gated && keys.some(isAlarm)) alarmRead.resolve();
      },
    })
  );
  try {
    const [alarm] = await createMany(a, "ana", 3);
    const heardA = recordChanges(a);
    const heardB = recordChanges(b);
    gated = true;
    const fromB = mutate(b, alarm);
    fromB.catch(() => {});
    // An adapter that reads state and alarm together never signals; then just give it a moment.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([alarmRead.promise, new Promise((r) => (timer = setTimeout(r, 300)))]);
    clearTimeout(timer);
    const [fromA] = await Promise.allSettled([mutate(a, alarm)]);
    gated = false;
    stateRead.resolve();
    const [settledB] = await Promise.allSettled([within(fromB, CALL_TIMEOUT_MS, "B's call")]);
    await check({ a: fromA, b: settledB }, a, alarm, [...heardA.changes, ...heardB.changes]);
  } finally {
    stateRead.resolve();
    await close();
  }
}

Deno.test("KvAlarmStore: a delete racing another process's delete of the alarm succeeds once", async () => {
  await raceOnOneAlarm(
    (store, alarm) => store.delete("ana", alarm.id),
    async (r, store, x, seen) => {
      assert.equal(r.a.status, "fulfilled", "the first process deletes it");
      assert.ok(
        r.b.status === "rejected" && r.b.reason instanceof NotFoundError,
        `the second process finds it gone, got ${
          r.b.status === "fulfilled" ? "success" : r.b.reason
        }`,
      );
      assert.deepEqual(seen.map((c) => c.kind === "deleted" && c.ids), [[x.id]], "deleted once");
      const remaining = await listAll(store, "ana");
      assert.equal(remaining.length, 2);
      assert.deepEqual(await store.userState("ana"), {
        lastId: remaining[0].id,
        prevId: remaining[1].id,
        floorId: null,
        total: 2,
        unread: 2,
      });
    },
  );
});

Deno.test("KvAlarmStore: a markRead racing another process's markRead counts the alarm once", async () => {
  await raceOnOneAlarm(
    (store, alarm) => store.markRead("ana", alarm.id),
    async (r, store, x, seen) => {
      assert.ok(r.a.status === "fulfilled" && r.b.status === "fulfilled");
      assert.deepEqual([r.a.value.changed, r.b.value.changed], [true, false]);
      assert.deepEqual([r.a.value.unread, r.b.value.unread], [2, 2]);
      assert.deepEqual(seen.map((c) => c.kind === "read" && c.ids), [[x.id]], "read once");
      const remaining = await listAll(store, "ana");
      assert.equal((await store.userState("ana")).unread, 2);
      assert.equal(remaining.filter((y) => y.readAt === null).length, 2);
    },
  );
});

// ---- durability -------------------------------------------------------------------------------

Deno.test("KvAlarmStore: alarms, counters and queued writes survive closing and reopening the KV file", async () => {
  const { dir, path } = await tempKvPath();
  const options = { ...defaultOptions(), maxAlarmsPerUser: 4 };
  let kv = await Deno.openKv(path);
  let store = createKvAlarmStore(kv, options);
  try {
    const first = idsOf(await createMany(store, "ana", 5));
    await store.markRead("ana", first[1]);
    await store.delete("ana", first[2]);
    const queued = [
      store.create([newItem("ana", 9)]),
      store.create([newItem("bo", 1)]),
      store.markRead("ana", first[3]),
    ] as const;
    await store.close();
    kv.close();
    const [[ana9], [bo1], read3] = await Promise.all(queued);
    assert.equal(read3.changed, true);

    kv = await Deno.openKv(path);
    store = createKvAlarmStore(kv, options);
    assert.deepEqual(idsOf(await listAll(store, "ana")), [
      ana9.alarm.id,
      first[4],
      first[3],
      first[1],
    ]);
    assert.deepEqual(await store.userState("ana"), {
      lastId: ana9.alarm.id,
      prevId: first[4],
      floorId: first[0],
      total: 4,
      unread: 2,
    });
    assert.notEqual((await store.get("ana", first[1]))?.readAt, null);
    assert.deepEqual(await store.get("bo", bo1.alarm.id), bo1.alarm);
    const { changes } = recordChanges(store);
    const [next] = await createMany(store, "ana", 1);
    assert.ok(next.id > ana9.alarm.id, "ids keep increasing after a restart");
    assert.deepEqual(changes[0], { kind: "created", alarm: next, prevId: ana9.alarm.id });
  } finally {
    await shutdown([store], [kv], dir);
  }
});

// ---- storage failures -------------------------------------------------------------------------

Deno.test("KvAlarmStore: every call rejects with UnavailableError once the KV is closed", async () => {
  const { dir, path } = await tempKvPath();
  const kv = await Deno.openKv(path);
  const store = createKvAlarmStore(kv, defaultOptions());
  try {
    const [a] = await createMany(store, "ana", 1);
    kv.close();
    const idem = { scope: "p", key: "k", index: null, fingerprint: "fp" };
    const calls: [string, () => Promise<unknown>][] = [
      ["create for a known user", () => store.create([newItem("ana", 2)])],
      ["create for a new user", () => store.create([newItem("new-user", 1)])],
      ["create with an idempotency key", () => store.create([newItem("ana", 3, idem)])],
      ["markRead", () => store.markRead("ana", a.id)],
      ["markAllRead", () => within(store.markAllRead("ana"), CALL_TIMEOUT_MS, "markAllRead")],
      ["delete", () => store.delete("ana", a.id)],
      ["get", () => store.get("ana", a.id)],
      ["list", () => store.list("ana", { limit: 10 })],
      ["list unread", () => store.list("ana", { limit: 10, unreadOnly: true })],
      ["listAfter", () => store.listAfter("ana", null, 10)],
      ["userState", () => store.userState("ana")],
      ["sweepExpired", () => store.sweepExpired()],
      ["ping", () => store.ping()],
    ];
    for (const [what, call] of calls) {
      await assert.rejects(call, (error: unknown) => {
        assert.ok(error instanceof UnavailableError, `${what}: ${error}`);
        return true;
      });
    }
  } finally {
    await shutdown([store], [kv], dir);
  }
});

Deno.test("KvAlarmStore: a failed commit rejects with UnavailableError, stores nothing, fails ping until a commit succeeds, and the store recovers", async () => {
  const { dir, path } = await tempKvPath();
  const kv = await Deno.openKv(path);
  let failing = false;
  const errors: unknown[] = [];
  const store = createKvAlarmStore(hookedKv(kv, { failCommits: () => failing }), {
    ...defaultOptions(),
    onError: (error) => errors.push(error),
  });
  try {
    const [a] = await createMany(store, "ana", 1);
    const { changes } = recordChanges(store);
    const idem = { scope: "p", key: "k", index: null, fingerprint: "fp" };
    failing = true;
    await assert.rejects(store.create([newItem("ana", 2), newItem("bo", 1)]), UnavailableError);
    await assert.rejects(store.create([newItem("ana", 3, idem)]), UnavailableError);
    await assert.rejects(store.markRead("ana", a.id), UnavailableError);
    await assert.rejects(store.delete("ana", a.id), UnavailableError);
    assert.deepEqual(changes, [], "a failed commit is no change");
    assert.ok(errors.length > 0, "the failure reached onError");
    // The last commit failed and the probe fails too.
    await assert.rejects(store.ping(), UnavailableError);
    failing = false;
    // Probes are rate-limited: until the next one is due, pings repeat the failed one's verdict.
    await assert.rejects(store.ping(), UnavailableError);
    assert.deepEqual(await listAll(store, "ana"), [a]);
    assert.deepEqual(await store.userState("ana"), {
      lastId: a.id,
      prevId: null,
      floorId: null,
      total: 1,
      unread: 1,
    });
    assert.deepEqual(await store.userState("bo"), {
      lastId: null,
      prevId: null,
      floorId: null,
      total: 0,
      unread: 0,
    });
    const [retry] = await store.create([newItem("ana", 3, idem)]);
    assert.equal(retry.replayed, false, "the failed commit left no idempotency record");
    assert.deepEqual(changes, [{ kind: "created", alarm: retry.alarm, prevId: a.id }]);
    await store.ping();
    assert.deepEqual(await store.markRead("ana", a.id), { changed: true, unread: 1 });
  } finally {
    await shutdown([store], [kv], dir);
  }
});

Deno.test("KvAlarmStore: ping writes nothing while commits succeed, and after a failed commit probes at most once per interval", async () => {
  const { dir, path } = await tempKvPath();
  const kv = await Deno.openKv(path);
  let failing = false;
  let writes = 0;
  const commits: number[] = [];
  const counted = new Proxy(hookedKv(kv, { failCommits: () => failing }), {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (prop === "set" || prop === "delete" || prop === "atomic") {
        return (...args: unknown[]) => {
          writes++;
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const options = defaultOptions();
  const store = createKvAlarmStore(counted, {
    ...options,
    onError: () => {},
    onCommit: (_ms, changes) => commits.push(changes),
  });
  try {
    await createMany(store, "ana", 1);
    writes = 0;
    for (let i = 0; i < 1000; i++) await store.ping();
    await Promise.all(Array.from({ length: 1000 }, () => store.ping()));
    assert.equal(writes, 0, "healthy: readiness polls cost no writes");

    failing = true;
    await assert.rejects(store.create([newItem("ana", 2)]), UnavailableError);
    writes = 0;
    const verdicts = await Promise.allSettled(Array.from({ length: 1000 }, () => store.ping()));
    assert.ok(verdicts.every((v) => v.status === "rejected"), "the probe fails as commits do");
    assert.equal(writes, 1, "one probe for a thousand pings");

    failing = false;
    commits.length = 0;
    options.clock.tick(4_999);
    await assert.rejects(store.ping(), UnavailableError);
    assert.equal(writes, 1, "no second probe within the interval");
    options.clock.tick(1);
    for (let i = 0; i < 100; i++) await store.ping();
    assert.equal(writes, 2, "one more probe once the interval passed; it succeeded");
    assert.deepEqual(commits, [0], "the probe is reported as a commit of no changes");
  } finally {
    await shutdown([store], [kv], dir);
  }
});

Deno.test("KvAlarmStore: a writer alone notices another process's write through the writer claim and keeps counters exact", async () => {
  const { a, b, close } = await twoProcesses();
  try {
    // A writes alone and caches kim's state; B then changes kim behind A's back.
    const [first] = await a.create([newItem("kim"), newItem("kim")]);
    const [fromB] = await b.create([newItem("kim")]);
    await b.markRead("kim", first.alarm.id);
    // A's cached state for kim is stale now: its commit must notice and re-read.
    const [third] = await a.create([newItem("kim")]);
    await a.delete("kim", fromB.alarm.id);
    assert.ok(third.alarm.id > fromB.alarm.id, "ids keep increasing in commit order");
    const state = await a.userState("kim");
    const page = await a.list("kim", { limit: 100 });
    assert.equal(state.total, page.items.length);
    assert.equal(state.unread, page.items.filter((x) => x.readAt === null).length);
    assert.equal(state.total, 3);
    assert.equal(state.unread, 2);
    assert.equal(state.lastId, third.alarm.id);
    // And B, which A has since written behind, sees the same truth.
    const [fourth] = await b.create([newItem("kim")]);
    assert.ok(fourth.alarm.id > third.alarm.id);
    assert.equal((await b.userState("kim")).total, 4);
  } finally {
    await close();
  }
});

Deno.test("KvAlarmStore: erase leaves no key of the user: alarms, state, retention entries, push subscriptions", async () => {
  const { dir, path } = await tempKvPath();
  const kv = await Deno.openKv(path);
  const store = createKvAlarmStore(kv, defaultOptions());
  try {
    await createMany(store, "ana", 700);
    await createMany(store, "bo", 3);
    const sub = {
      id: "S1",
      userId: "ana",
      endpoint: "https://fcm.googleapis.com/x",
      keys: { p256dh: "p", auth: "a" },
    };
    const moved = { ...sub, id: "S2", endpoint: "https://fcm.googleapis.com/y" };
    await kv.atomic()
      .set(kvKeys.pushSubscription("ana", "S1"), sub)
      .set(kvKeys.pushEndpoint(sub.endpoint), { userId: "ana", id: "S1" })
      .set(kvKeys.pushSubscription("ana", "S2"), moved)
      // This endpoint has moved on to bo: erasing ana must leave bo's ownership alone.
      .set(kvKeys.pushEndpoint(moved.endpoint), { userId: "bo", id: "B1" })
      .commit();
    await store.erase("ana");
    const left: Deno.KvKey[] = [];
    for await (const row of kv.list({ prefix: [] })) {
      if (row.key.includes("ana")) left.push(row.key);
    }
    assert.deepEqual(left, []);
    assert.equal((await kv.get(kvKeys.pushEndpoint(sub.endpoint))).value, null);
    assert.deepEqual((await kv.get(kvKeys.pushEndpoint(moved.endpoint))).value, {
      userId: "bo",
      id: "B1",
    });
    assert.equal((await listAll(store, "bo")).length, 3);
  } finally {
    await shutdown([store], [kv], dir);
  }
});
