/**
 * The write planners on plain data: no KV, no clock, no queue. Each test builds the snapshot a
 * batch would have read and checks the mutations, the user's next state, the announced changes
 * and the caller's outcome.
 */
import assert from "node:assert/strict";
import type { Alarm } from "../../src/domain/alarm.ts";
import { IdempotencyConflictError, NotFoundError } from "../../src/domain/errors.ts";
import { NO_USER_STATE } from "../../src/domain/inbox_rules.ts";
import type { IdempotencyRef, UserState } from "../../src/domain/ports.ts";
import { KV_COMMIT_LIMITS } from "../../src/storage/commit_budget.ts";
import { kvKeys } from "../../src/storage/kv_keys.ts";
import { decodeJson, type IdempotencyRecord } from "../../src/storage/kv_records.ts";
import { planBatch } from "../../src/storage/plan_batch.ts";
import {
  alarmViewKey,
  type BatchView,
  idempotencyViewKey,
  type PlanContext,
  type UserView,
} from "../../src/storage/write_plan.ts";
import {
  planCreate,
  planDelete,
  planExpire,
  planRead,
  planReadAll,
  planRecount,
} from "../../src/storage/write_planners.ts";

const NOW = Date.parse("2026-12-01T12:00:00.000Z");
const DAY = 24 * 3600_000;

function context(overrides: Partial<PlanContext> = {}): PlanContext {
  let n = 100;
  return {
    now: NOW,
    retentionMs: 30 * DAY,
    expiryMarginMs: DAY,
    idempotencyTtlMs: DAY,
    maxAlarmsPerUser: 1000,
    pushTtlMs: DAY,
    nextId: (_now, lastId) => {
      const id = `ID${String(n++).padStart(4, "0")}`;
      assert.ok(lastId === null || id > lastId, "ids increase");
      return id;
    },
    ...overrides,
  };
}

function alarm(id: string, userId = "kim", fields: Partial<Alarm> = {}): Alarm {
  return {
    id,
    userId,
    type: "comment",
    data: { n: id },
    createdAt: new Date(NOW - DAY).toISOString(),
    readAt: null,
    notification: null,
    ...fields,
  };
}

function view(
  users: Record<string, Partial<UserView>>,
  alarms: Alarm[] = [],
  idempotency: [Deno.KvKey, IdempotencyRecord][] = [],
): BatchView {
  return {
    users: new Map(
      Object.entries(users).map(([id, user]) => [id, {
        state: NO_USER_STATE,
        versionstamp: null,
        oldest: [],
        created: [],
        ...user,
      }]),
    ),
    alarms: new Map(alarms.map((a) => [alarmViewKey(a.userId, a.id), a])),
    idempotency: new Map(
      idempotency.map(([key, record]) => [idempotencyViewKey(key), { record, versionstamp: "1" }]),
    ),
  };
}

const state = (s: Partial<UserState>): UserState => ({ ...NO_USER_STATE, ...s });
const keysOf = (step: { mutations: readonly { key: Deno.KvKey; value?: unknown }[] }) =>
  step.mutations.map((m) => `${m.value === undefined ? "del" : "set"} ${m.key.join("/")}`);

Deno.test("create: a first alarm is stored with its retention entry and counted unread", () => {
  const item = { alarm: { userId: "kim", type: "comment", data: { post: 7 } } };
  const step = planCreate(item, view({ kim: {} }), context());
  assert.deepEqual(keysOf(step), ["set U/kim/a/ID0100", "set t/ID0100/kim"]);
  assert.deepEqual(step.state, state({ lastId: "ID0100", total: 1, unread: 1 }));
  const stored = decodeJson<Alarm>(step.mutations[0].value);
  assert.deepEqual(stored, {
    id: "ID0100",
    userId: "kim",
    type: "comment",
    data: { post: 7 },
    createdAt: "2026-12-01T12:00:00.000Z",
    readAt: null,
    notification: null,
  });
  assert.equal(step.mutations[0].expireIn, 31 * DAY, "retention plus the margin");
  assert.deepEqual(step.changes, [{ kind: "created", alarm: stored, prevId: null }]);
  assert.deepEqual(step.outcome, { kind: "resolve", value: { alarm: stored, replayed: false } });
});

Deno.test("create: past the per-user cap the oldest alarms go and the floor rises to the newest dropped", () => {
  const old = [alarm("ID0001"), alarm("ID0002", "kim", { readAt: "2026-11-30T00:00:00.000Z" })];
  const user = { state: state({ lastId: "ID0002", total: 2, unread: 1 }), oldest: old };
  const item = { alarm: { userId: "kim", type: "t", data: {} } };
  const step = planCreate(item, view({ kim: user }, old), context({ maxAlarmsPerUser: 1 }));
  assert.deepEqual(keysOf(step), [
    "set U/kim/a/ID0100",
    "set t/ID0100/kim",
    "del U/kim/a/ID0001",
    "del t/ID0001/kim",
    "del U/kim/a/ID0002",
    "del t/ID0002/kim",
  ]);
  assert.deepEqual(
    step.state,
    state({ lastId: "ID0100", prevId: "ID0002", floorId: "ID0002", total: 1, unread: 1 }),
  );
  assert.deepEqual(step.changes[1], {
    kind: "deleted",
    userId: "kim",
    ids: ["ID0001", "ID0002"],
    unread: 1,
  });
});

Deno.test("create: an idempotency record replays the same request, refuses another body, and is ignored once expired", () => {
  const ref: IdempotencyRef = { scope: "app", key: "k1", index: null, fingerprint: "fp-1" };
  const key = kvKeys.idempotency("app", "k1", null);
  const stored = alarm("ID0009");
  const record = (fp: string, expiresAt = NOW + 1): IdempotencyRecord => ({
    fp,
    alarm: stored,
    expiresAt,
  });
  const item = { alarm: { userId: "kim", type: "t", data: {} }, idempotency: ref };

  const replay = planCreate(item, view({ kim: {} }, [], [[key, record("fp-1")]]), context());
  assert.deepEqual(replay.mutations, []);
  assert.equal(replay.writesState, false);
  assert.deepEqual(replay.outcome, { kind: "resolve", value: { alarm: stored, replayed: true } });

  const conflict = planCreate(item, view({ kim: {} }, [], [[key, record("fp-2")]]), context());
  assert.equal(conflict.outcome.kind, "reject");
  assert.ok(
    conflict.outcome.kind === "reject" &&
      conflict.outcome.error instanceof IdempotencyConflictError,
  );

  const expired = planCreate(item, view({ kim: {} }, [], [[key, record("fp-2", NOW)]]), context());
  assert.deepEqual(keysOf(expired), ["set U/kim/a/ID0100", "set t/ID0100/kim", "set i/app/one/k1"]);
  assert.equal(expired.idempotency?.versionstamp, "1", "the commit checks the record it replaces");
});

Deno.test("read: marks an unread alarm once, answers an already read one unchanged, and refuses unknown or expired ids", () => {
  const unread = alarm("ID0001");
  const read = alarm("ID0002", "kim", { readAt: "2026-11-30T00:00:00.000Z" });
  const old = alarm("ID0003", "kim", { createdAt: new Date(NOW - 31 * DAY).toISOString() });
  const v = view({ kim: { state: state({ total: 3, unread: 2 }) } }, [unread, read, old]);
  const step = planRead("kim", "ID0001", v, context());
  assert.equal(decodeJson<Alarm>(step.mutations[0].value).readAt, "2026-12-01T12:00:00.000Z");
  assert.equal(step.mutations[0].expireIn, 30 * DAY, "its lifetime still ends where it did");
  assert.deepEqual(step.state, state({ total: 3, unread: 1 }));
  assert.deepEqual(step.outcome, { kind: "resolve", value: { changed: true, unread: 1 } });
  assert.deepEqual(step.changes, [{ kind: "read", userId: "kim", ids: ["ID0001"], unread: 1 }]);

  const again = planRead("kim", "ID0002", v, context());
  assert.deepEqual(again.mutations, []);
  assert.deepEqual(again.outcome, { kind: "resolve", value: { changed: false, unread: 2 } });
  for (const id of ["ID0003", "ID0404"]) {
    const missing = planRead("kim", id, v, context());
    assert.ok(missing.outcome.kind === "reject" && missing.outcome.error instanceof NotFoundError);
  }
});

Deno.test("read-all: a pass marks what its listing found and continues below it, the last pass answers every id", () => {
  const listed = [alarm("ID0005"), alarm("ID0004")];
  const user = {
    state: state({ total: 5, unread: 4 }),
    unreadListing: { alarms: listed, more: true, last: "ID0004" },
  };
  const first = planReadAll("kim", [], view({ kim: user }), context());
  assert.deepEqual(keysOf(first), ["set U/kim/a/ID0005", "set U/kim/a/ID0004"]);
  assert.deepEqual(first.state, state({ total: 5, unread: 2 }));
  assert.deepEqual(first.outcome, {
    kind: "continue",
    ids: ["ID0005", "ID0004"],
    before: "ID0004",
  });

  const lastUser = {
    ...user,
    state: state({ total: 5, unread: 2 }),
    unreadListing: { alarms: [alarm("ID0002"), alarm("ID0001")], more: false, last: "ID0001" },
  };
  const last = planReadAll("kim", ["ID0005", "ID0004"], view({ kim: lastUser }), context());
  assert.deepEqual(last.outcome, {
    kind: "resolve",
    value: { ids: ["ID0005", "ID0004", "ID0002", "ID0001"], unread: 0 },
  });

  const nothing = planReadAll(
    "kim",
    [],
    view({ kim: { unreadListing: { alarms: [], more: false, last: null } } }),
    context(),
  );
  assert.equal(nothing.writesState, false, "nothing to mark writes nothing");
  assert.deepEqual(nothing.changes, []);
});

Deno.test("delete: removes the alarm and its retention entry, and counts it out", () => {
  const v = view({ kim: { state: state({ total: 2, unread: 1 }) } }, [alarm("ID0001")]);
  const step = planDelete("kim", "ID0001", v, context());
  assert.deepEqual(keysOf(step), ["del U/kim/a/ID0001", "del t/ID0001/kim"]);
  assert.deepEqual(step.state, state({ total: 1, unread: 0 }));
  assert.deepEqual(step.outcome, { kind: "resolve", value: { unread: 0 } });
  const missing = planDelete("kim", "ID0002", v, context());
  assert.ok(missing.outcome.kind === "reject" && missing.outcome.error instanceof NotFoundError);
});

Deno.test("expire: drops what is stored, raises the floor past every id, and asks for a recount when KV got there first", () => {
  const v = view({ kim: { state: state({ floorId: "ID0001", total: 3, unread: 2 }) } }, [
    alarm("ID0002"),
  ]);
  const step = planExpire("kim", ["ID0002", "ID0003"], v);
  assert.deepEqual(keysOf(step), ["del U/kim/a/ID0002", "del t/ID0002/kim", "del t/ID0003/kim"]);
  assert.deepEqual(step.state, state({ floorId: "ID0003", total: 2, unread: 1 }));
  assert.deepEqual(step.changes, [{ kind: "deleted", userId: "kim", ids: ["ID0002"], unread: 1 }]);
  assert.deepEqual(step.outcome, { kind: "resolve", value: 1, recount: true });
});

Deno.test("recount: counters come from every stored alarm", () => {
  const all = [alarm("ID0001"), alarm("ID0002", "kim", { readAt: "2026-11-30T00:00:00.000Z" })];
  const step = planRecount(
    "kim",
    view({ kim: { state: state({ lastId: "ID0002", total: 9, unread: 9 }), all } }),
  );
  assert.deepEqual(step.state, state({ lastId: "ID0002", total: 2, unread: 1 }));
  assert.equal(step.writesState, true);
});

Deno.test("a batch: each write sees the ones before it, and each user's state is written once at the end", () => {
  const items = [1, 2].map(() => ({
    kind: "create" as const,
    item: { alarm: { userId: "kim", type: "t", data: {} } },
  }));
  const plan = planBatch(items, view({ kim: {} }), context(), "claim-7");
  assert.equal(plan.included, 2);
  assert.deepEqual(plan.checks, [{ key: kvKeys.writerClaim, versionstamp: "claim-7" }]);
  assert.deepEqual(plan.changes.map((c) => c.kind === "created" && [c.alarm.id, c.prevId]), [
    ["ID0100", null],
    ["ID0101", "ID0100"],
  ]);
  const stateWrites = plan.mutations.filter((m) => m.key.join("/") === "U/kim/h");
  assert.deepEqual(stateWrites.map((m) => m.value), [{
    last: "ID0101",
    prev: "ID0100",
    floor: null,
    total: 2,
    unread: 2,
  }]);
  assert.ok(
    !plan.mutations.some((m) => m.key[0] === "w"),
    "a claim holder does not touch the claim",
  );
});

Deno.test("a batch in shared mode checks every user's state and idempotency record, and changes the claim key", () => {
  const ref: IdempotencyRef = { scope: "app", key: "k", index: 0, fingerprint: "fp" };
  const writes = [
    {
      kind: "create" as const,
      item: { alarm: { userId: "kim", type: "t", data: {} }, idempotency: ref },
    },
    { kind: "create" as const, item: { alarm: { userId: "lee", type: "t", data: {} } } },
  ];
  const v = view({ kim: { versionstamp: "5" }, lee: {} });
  const plan = planBatch(writes, v, context(), null);
  assert.deepEqual(plan.checks, [
    { key: kvKeys.userState("kim"), versionstamp: "5" },
    { key: kvKeys.idempotency("app", "k", 0), versionstamp: null },
    { key: kvKeys.userState("lee"), versionstamp: null },
  ]);
  assert.deepEqual(plan.mutations.at(-1), {
    key: kvKeys.writerClaim,
    value: 1,
    expireIn: undefined,
    bytes: 64,
  });
});

Deno.test("a batch ends at the commit's limits and leaves the rest, in order, for the next", () => {
  const big = { blob: "x".repeat(7000) };
  const users: Record<string, Partial<UserView>> = {};
  const writes = Array.from({ length: 300 }, (_, i) => {
    users[`u${i}`] = {};
    return { kind: "create" as const, item: { alarm: { userId: `u${i}`, type: "t", data: big } } };
  });
  const plan = planBatch(writes, view(users), context(), null);
  assert.ok(plan.included > 1 && plan.included < 300, `included ${plan.included}`);
  assert.ok(plan.checks.length <= KV_COMMIT_LIMITS.checks);
  assert.ok(plan.mutations.length <= KV_COMMIT_LIMITS.mutations);
  const bytes = plan.mutations.reduce((n, m) => n + m.bytes, 0);
  assert.ok(bytes <= KV_COMMIT_LIMITS.totalBytes, `${bytes} bytes`);
  assert.equal(plan.outcomes.length, plan.included);
});

Deno.test("create with a due push records it in the outbox in the alarm's own commit, once per alarm", () => {
  const notification = { title: "Kim commented", url: "/posts/7" };
  const pushed = { alarm: { userId: "kim", type: "t", data: {}, notification }, push: true };
  const step = planCreate(pushed, view({ kim: {} }), context());
  assert.deepEqual(keysOf(step), [
    "set U/kim/a/ID0100",
    "set t/ID0100/kim",
    `set o/${NOW}/ID0100/kim`,
  ]);
  assert.deepEqual(decodeJson(step.mutations[2].value), { expiresAt: NOW + DAY, attempts: 0 });
  assert.deepEqual(decodeJson<Alarm>(step.mutations[0].value).notification, notification);
  assert.equal(step.pushesQueued, 1);

  const notDue = planCreate({ ...pushed, push: false }, view({ kim: {} }), context());
  assert.equal(notDue.mutations.length, 2, "no push due: no outbox record");

  const writes = [1, 2, 3].map(() => ({ kind: "create" as const, item: pushed }));
  const plan = planBatch(writes, view({ kim: {} }), context(), "claim");
  const counters = plan.mutations.filter((m) => m.sum !== undefined);
  assert.deepEqual(
    counters,
    [{ key: kvKeys.outboxAdded, sum: 3n, bytes: 16 }],
    "one counter sum per commit",
  );
});
