/**
 * A user's inbox actions (api.md: Alarms): unread-count, mark read, read-all and delete, alone
 * and racing each other, with unread-count always equal to the unread alarms listed.
 */
import assert from "node:assert/strict";
import { startTestServer } from "../helpers/test_server.ts";
import {
  assertAlarmShape,
  createBatchOk,
  createOk,
  expectError,
  expectNoContent,
  listAll,
  markRead,
  remove,
  unreadCount,
} from "../helpers/api_client.ts";

Deno.test("unread-count counts the caller's unread alarms", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  const kim = await server.userToken("kim");
  assert.equal(await unreadCount(server, kim), 0);
  const a = await createOk(server, publisher, { userId: "kim", type: "t" });
  await createOk(server, publisher, { userId: "kim", type: "t" });
  await createOk(server, publisher, { userId: "lee", type: "t" });
  assert.equal(await unreadCount(server, kim), 2);
  await expectNoContent(await markRead(server, kim, a.id));
  assert.equal(await unreadCount(server, kim), 1);
  assert.equal(await unreadCount(server, await server.userToken("lee")), 1);
});

Deno.test("marking an alarm read answers 204, sets readAt once and is idempotent", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  const kim = await server.userToken("kim");
  const alarm = await createOk(server, publisher, { userId: "kim", type: "t" });
  const other = await createOk(server, publisher, { userId: "kim", type: "t" });

  const before = Date.now();
  await expectNoContent(await markRead(server, kim, alarm.id));
  const [, readOne] = await listAll(server, kim);
  assert.equal(readOne.id, alarm.id);
  assertAlarmShape(readOne);
  assert.notEqual(readOne.readAt, null);
  assert.ok(Date.parse(readOne.readAt!) >= before - 1000);
  assert.deepEqual({ ...readOne, readAt: null }, alarm);

  await new Promise((r) => setTimeout(r, 5));
  await expectNoContent(await markRead(server, kim, alarm.id));
  const [stillOther, again] = await listAll(server, kim);
  assert.equal(again.readAt, readOne.readAt, "readAt changed on the second read");
  assert.deepEqual(stillOther, other);
  assert.equal(await unreadCount(server, kim), 1);
});

Deno.test("read-all answers 204 and leaves nothing unread, also past 200 unread alarms", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  const kim = await server.userToken("kim");
  await expectNoContent(
    await server.fetch("/api/v1/users/alarms/read-all", { method: "POST", token: kim }),
  );
  await createBatchOk(
    server,
    publisher,
    Array.from({ length: 450 }, () => ({ userId: "kim", type: "t" })),
  );
  await createOk(server, publisher, { userId: "lee", type: "t" });
  assert.equal(await unreadCount(server, kim), 450);

  await expectNoContent(
    await server.fetch("/api/v1/users/alarms/read-all", { method: "POST", token: kim }),
  );
  assert.equal(await unreadCount(server, kim), 0);
  const all = await listAll(server, kim);
  assert.equal(all.length, 450);
  for (const alarm of all) assert.notEqual(alarm.readAt, null, alarm.id);
  assert.deepEqual(await listAll(server, kim, { unread: "true" }), []);
  assert.equal(await unreadCount(server, await server.userToken("lee")), 1, "lee untouched");

  await expectNoContent(
    await server.fetch("/api/v1/users/alarms/read-all", { method: "POST", token: kim }),
  );
  assert.equal(await unreadCount(server, kim), 0);
});

Deno.test("delete answers 204, the alarm is gone, and a second delete is 404", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  const kim = await server.userToken("kim");
  const keep = await createOk(server, publisher, { userId: "kim", type: "t" });
  const gone = await createOk(server, publisher, { userId: "kim", type: "t" });
  const readThenGone = await createOk(server, publisher, { userId: "kim", type: "t" });
  await expectNoContent(await markRead(server, kim, readThenGone.id));
  assert.equal(await unreadCount(server, kim), 2);

  await expectNoContent(await remove(server, kim, gone.id));
  assert.equal(await unreadCount(server, kim), 1);
  await expectNoContent(await remove(server, kim, readThenGone.id));
  assert.equal(await unreadCount(server, kim), 1);
  assert.deepEqual(await listAll(server, kim), [keep]);

  await expectError(await remove(server, kim, gone.id), 404, "not_found");
  await expectError(await markRead(server, kim, gone.id), 404, "not_found");
  assert.equal(await unreadCount(server, kim), 1);
});

Deno.test("an unknown or malformed id is 404 not_found for read and delete", async () => {
  await using server = await startTestServer();
  const alarm = await createOk(server, await server.publisherToken(), { userId: "kim", type: "t" });
  const kim = await server.userToken("kim");
  const unknown = alarm.id.slice(0, -1) + (alarm.id.endsWith("Z") ? "Y" : "Z");
  for (
    const id of [unknown, "01J00000000000000000000000", "nope", alarm.id.toLowerCase(), "%20", "I"]
  ) {
    await expectError(await markRead(server, kim, id), 404, "not_found");
    await expectError(await remove(server, kim, id), 404, "not_found");
  }
  assert.deepEqual(await listAll(server, kim), [alarm]);
});

Deno.test("an over-long alarm id is 404 not_found like any other unknown id", async () => {
  await using server = await startTestServer();
  const kim = await server.userToken("kim");
  for (const id of ["A".repeat(65), "0".repeat(200)]) {
    await expectError(await markRead(server, kim, id), 404, "not_found");
    await expectError(await remove(server, kim, id), 404, "not_found");
  }
});

// ---------------------------------------------------------------------------------------------
// concurrency

Deno.test("parallel creates, mark-reads and deletes keep unread-count equal to the unread alarms listed", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  const kim = await server.userToken("kim");
  const existing = await Promise.all(
    Array.from(
      { length: 30 },
      (_, i) => createOk(server, publisher, { userId: "kim", type: `e${i}` }),
    ),
  );

  const createdIds: string[] = [];
  const readOk = new Set<string>();
  const deletedOk = new Set<string>();
  const record = async (
    res: Promise<Response>,
    id: string,
    into: Set<string>,
    may404: boolean,
  ) => {
    const r = await res;
    if (r.status === 204) {
      await expectNoContent(r);
      into.add(id);
    } else {
      assert.ok(may404, `unexpected ${r.status} for ${id}`);
      await expectError(r, 404, "not_found");
    }
  };

  const work: Promise<unknown>[] = [];
  for (let i = 0; i < 150; i++) {
    work.push((async () => {
      const alarm = await createOk(server, publisher, {
        userId: "kim",
        type: "burst",
        data: { i },
      });
      createdIds.push(alarm.id);
      const ops: Promise<void>[] = [];
      const willDelete = i % 4 === 0;
      if (i % 3 === 0) {
        ops.push(record(markRead(server, kim, alarm.id), alarm.id, readOk, willDelete));
      }
      if (i % 5 === 0) {
        ops.push(record(markRead(server, kim, alarm.id), alarm.id, readOk, willDelete));
      }
      if (willDelete) ops.push(record(remove(server, kim, alarm.id), alarm.id, deletedOk, false));
      await Promise.all(ops);
    })());
    if (i < 30) {
      const id = existing[i].id;
      if (i < 20) work.push(record(markRead(server, kim, id), id, readOk, i >= 10));
      if (i >= 10) work.push(record(remove(server, kim, id), id, deletedOk, false));
    }
  }
  await Promise.all(work);

  const allIds = [...existing.map((a) => a.id), ...createdIds];
  const expectedStored = allIds.filter((id) => !deletedOk.has(id));
  const expectedUnread = expectedStored.filter((id) => !readOk.has(id));

  const listed = await listAll(server, kim);
  assert.deepEqual(listed.map((a) => a.id), [...expectedStored].sort().reverse());
  const listedUnread = listed.filter((a) => a.readAt === null);
  assert.deepEqual(listedUnread.map((a) => a.id).sort(), [...expectedUnread].sort());
  assert.equal(await unreadCount(server, kim), listedUnread.length);
  assert.equal((await listAll(server, kim, { unread: "true" })).length, listedUnread.length);
});
