import assert from "node:assert/strict";
import type { Alarm } from "../../src/domain/alarm.ts";
import {
  afterCreate,
  afterDelete,
  afterDrop,
  afterRead,
  firstLiveId,
  NO_USER_STATE,
  overCap,
  recounted,
} from "../../src/domain/inbox_rules.ts";
import { createUlidGenerator, ulidTimeOf } from "../../src/domain/ulid.ts";

const alarm = (id: string, readAt: string | null = null): Alarm => ({
  id,
  userId: "kim",
  type: "t",
  data: {},
  createdAt: "2026-12-01T00:00:00.000Z",
  readAt,
  notification: null,
});

Deno.test("counters follow creates, reads and deletes; a delete of a read alarm leaves unread alone", () => {
  let state = afterCreate(NO_USER_STATE, "A1");
  state = afterCreate(state, "A2");
  const ids = { lastId: "A2", prevId: "A1", floorId: null };
  assert.deepEqual(state, { ...ids, total: 2, unread: 2 });
  state = afterRead(state, 1);
  assert.deepEqual(state, { ...ids, total: 2, unread: 1 });
  state = afterDelete(state, alarm("A1", "2026-12-01T01:00:00.000Z"));
  assert.deepEqual(state, { ...ids, total: 1, unread: 1 });
  state = afterDelete(state, alarm("A2"));
  assert.deepEqual(state, { ...ids, total: 0, unread: 0 });
});

Deno.test("a drop raises the floor to the newest id dropped, never lowers it, and counts only what was stored", () => {
  const start = { lastId: "A9", prevId: "A8", floorId: "A3", total: 4, unread: 2 };
  assert.deepEqual(afterDrop(start, "A5", alarm("A5")), {
    ...start,
    floorId: "A5",
    total: 3,
    unread: 1,
  });
  assert.deepEqual(afterDrop(start, "A2", alarm("A2")), { ...start, total: 3, unread: 1 });
  assert.deepEqual(afterDrop(start, "A7", null), { ...start, floorId: "A7" });
});

Deno.test("past the cap, the oldest alarms go, as many as the excess and no more than were given", () => {
  const oldest = [alarm("A1"), alarm("A2"), alarm("A3")];
  const state = { lastId: "A9", prevId: "A8", floorId: null, total: 12, unread: 0 };
  assert.deepEqual(overCap(state, 10, oldest).map((a) => a.id), ["A1", "A2"]);
  assert.deepEqual(overCap(state, 12, oldest), []);
  assert.deepEqual(overCap(state, 5, oldest).map((a) => a.id), ["A1", "A2", "A3"]);
});

Deno.test("a recount counts every stored alarm and its unread ones, keeping ids and floor", () => {
  const state = { lastId: "A9", prevId: "A8", floorId: "A1", total: 7, unread: 7 };
  assert.deepEqual(recounted(state, [alarm("A2"), alarm("A3", "2026-12-02T00:00:00.000Z")]), {
    lastId: "A9",
    prevId: "A8",
    floorId: "A1",
    total: 2,
    unread: 1,
  });
});

Deno.test("the first live id hides exactly the alarms past retention", () => {
  const retention = 1000;
  const now = 1_800_000_000_000;
  const ids = createUlidGenerator();
  const expired = ids.next(now - retention, null);
  const live = ids.next(now - retention + 1, null);
  const floor = firstLiveId(now, retention);
  assert.ok(expired < floor, "created exactly at the end of retention: expired");
  assert.ok(live >= floor, "one millisecond younger: live");
  assert.equal(ulidTimeOf(floor), now - retention + 1);
});
