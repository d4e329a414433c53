/**
 * The alarm REST API (api.md: Alarms, Errors) through real HTTP against a real server with a
 * fresh KV file per test.
 */
import assert from "node:assert/strict";
import { openSse } from "../helpers/sse_client.ts";
import { startTestServer } from "../helpers/test_server.ts";
import type { AlarmJson } from "./api_client.ts";
import {
  assertAlarmShape,
  create,
  createBatchOk,
  createOk,
  expectError,
  expectJson,
  expectNoContent,
  expectValidationError,
  jsonBytes,
  listAll,
  listPage,
  markRead,
  remove,
  ULID_PATTERN,
  unreadCount,
} from "./api_client.ts";

const KIB = 1024;

/** `{"s":"xxx…"}` serialized to exactly `bytes` UTF-8 bytes. */
function dataOfBytes(bytes: number): Record<string, unknown> {
  const data = { s: "x".repeat(bytes - jsonBytes({ s: "" })) };
  assert.equal(jsonBytes(data), bytes);
  return data;
}

/** `levels` objects nested in each other: `{}` is 1 level, `{"a":{}}` is 2. */
function nestedObject(levels: number): Record<string, unknown> {
  let value: Record<string, unknown> = {};
  for (let i = 1; i < levels; i++) value = { a: value };
  return value;
}

// ---------------------------------------------------------------------------------------------
// create

Deno.test("POST /api/v1/alarms answers 201 with the stored alarm as JSON", async () => {
  await using server = await startTestServer();
  const before = Date.now();
  const res = await create(server, await server.publisherToken(), {
    userId: "kim",
    type: "comment.created",
    data: { text: "Lee commented", post: 7 },
  });
  const alarm = await expectJson<AlarmJson>(res, 201);
  assertAlarmShape(alarm);
  assert.equal(alarm.userId, "kim");
  assert.equal(alarm.type, "comment.created");
  assert.deepEqual(alarm.data, { text: "Lee commented", post: 7 });
  assert.equal(alarm.readAt, null);
  const created = Date.parse(alarm.createdAt);
  assert.ok(created >= before - 1000 && created <= Date.now() + 1000, alarm.createdAt);

  const page = await listPage(server, await server.userToken("kim"));
  assert.deepEqual(page.items, [alarm]);
});

Deno.test("an alarm created without data has data {}", async () => {
  await using server = await startTestServer();
  const alarm = await createOk(server, await server.publisherToken(), {
    userId: "kim",
    type: "ping",
  });
  assertAlarmShape(alarm);
  assert.deepEqual(alarm.data, {});
  assert.deepEqual((await listPage(server, await server.userToken("kim"))).items, [alarm]);
});

Deno.test("alarm ids are ULIDs that sort in creation order", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  const ids: string[] = [];
  for (let i = 0; i < 15; i++) {
    ids.push((await createOk(server, publisher, { userId: "kim", type: "t" })).id);
  }
  for (const id of ids) assert.match(id, ULID_PATTERN);
  assert.deepEqual([...ids].sort(), ids);
  assert.equal(new Set(ids).size, ids.length);
});

Deno.test("a 201 means committed: a second server on the same KV file lists the alarm", async () => {
  await using first = await startTestServer();
  await using second = await startTestServer({}, { dir: first.dir });
  const alarm = await createOk(first, await first.publisherToken(), {
    userId: "kim",
    type: "t",
    data: { n: 1 },
  });
  const page = await listPage(second, await second.userToken("kim"));
  assert.deepEqual(page.items, [alarm]);
  assert.equal(await unreadCount(second, await second.userToken("kim")), 1);
});

Deno.test("data round-trips exactly: unicode, nesting, arrays, numbers, booleans, null", async () => {
  await using server = await startTestServer();
  const data = {
    text: 'Ünïcødé ✓ 😀 \u0000 \n "quoted" </script>',
    nested: { list: [1, 2.5, -3e-7, true, false, null, { deep: ["x"] }], empty: {} },
    big: 9007199254740991,
    "key with spaces": "v",
    constructor: "not special",
  };
  const alarm = await createOk(server, await server.publisherToken(), {
    userId: "kim",
    type: "t",
    data,
  });
  assert.deepEqual(alarm.data, data);
  assert.deepEqual((await listPage(server, await server.userToken("kim"))).items[0].data, data);
});

Deno.test("a data key named __proto__ is stored as sent or refused, never silently dropped", async () => {
  await using server = await startTestServer();
  const body = '{"userId":"kim","type":"t","data":{"__proto__":{"polluted":1},"a":1}}';
  const res = await server.fetch("/api/v1/alarms", {
    method: "POST",
    token: await server.publisherToken(),
    headers: { "content-type": "application/json" },
    body,
  });
  if (res.status === 400) {
    await expectValidationError(res);
    return;
  }
  const alarm = await expectJson<AlarmJson>(res, 201);
  assert.deepEqual(alarm.data, JSON.parse(body).data);
  const listed = (await listPage(server, await server.userToken("kim"))).items[0];
  assert.deepEqual(listed.data, JSON.parse(body).data);
});

Deno.test("data of exactly 8 KiB serialized is accepted; one byte more is 413", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  const ok = await createOk(server, publisher, {
    userId: "kim",
    type: "t",
    data: dataOfBytes(8 * KIB),
  });
  assert.equal(jsonBytes(ok.data), 8 * KIB);

  const tooBig = await create(server, publisher, {
    userId: "kim",
    type: "t",
    data: dataOfBytes(8 * KIB + 1),
  });
  await expectError(tooBig, 413, "payload_too_large");
  assert.deepEqual(
    (await listAll(server, await server.userToken("kim"))).map((a) => a.id),
    [ok.id],
  );
});

Deno.test("the 8 KiB data limit counts UTF-8 bytes, not characters", async () => {
  await using server = await startTestServer();
  // 4093 two-byte characters: 4101 characters but 8194 bytes serialized.
  const data = { s: "é".repeat(4093) };
  assert.ok(JSON.stringify(data).length < 8 * KIB);
  assert.ok(jsonBytes(data) > 8 * KIB);
  const res = await create(server, await server.publisherToken(), {
    userId: "kim",
    type: "t",
    data,
  });
  await expectError(res, 413, "payload_too_large");
  assert.equal(await unreadCount(server, await server.userToken("kim")), 0);
});

// ---------------------------------------------------------------------------------------------
// batch

Deno.test("a batch stores every item and answers 201 {items} in request order", async () => {
  await using server = await startTestServer();
  const alarms = [
    { userId: "kim", type: "a", data: { n: 1 } },
    { userId: "lee", type: "b" },
    { userId: "kim", type: "c", data: { n: 3 } },
  ];
  const res = await server.fetch("/api/v1/alarms/batch", {
    method: "POST",
    token: await server.publisherToken(),
    json: { alarms },
  });
  const body = await expectJson<{ items: AlarmJson[] }>(res, 201);
  assert.deepEqual(Object.keys(body), ["items"]);
  assert.equal(body.items.length, 3);
  body.items.forEach((item, i) => {
    assertAlarmShape(item);
    assert.equal(item.userId, alarms[i].userId);
    assert.equal(item.type, alarms[i].type);
    assert.deepEqual(item.data, alarms[i].data ?? {});
    assert.equal(item.readAt, null);
  });
  assert.ok(body.items[0].id < body.items[2].id, "kim's ids follow request order");
  const kim = await listAll(server, await server.userToken("kim"));
  assert.deepEqual(kim, [body.items[2], body.items[0]]);
  const lee = await listAll(server, await server.userToken("lee"));
  assert.deepEqual(lee, [body.items[1]]);
});

Deno.test("a batch takes 1..500 items: 500 are stored, 0 or 501 are 400 with nothing stored", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  const items = (n: number, userId: string) =>
    Array.from({ length: n }, (_, i) => ({ userId, type: "t", data: { i } }));

  const empty = await server.fetch("/api/v1/alarms/batch", {
    method: "POST",
    token: publisher,
    json: { alarms: [] },
  });
  await expectValidationError(empty);

  const over = await server.fetch("/api/v1/alarms/batch", {
    method: "POST",
    token: publisher,
    json: { alarms: items(501, "over") },
  });
  await expectValidationError(over);
  assert.equal(await unreadCount(server, await server.userToken("over")), 0);
  assert.deepEqual(await listAll(server, await server.userToken("over")), []);

  const stored = await createBatchOk(server, publisher, items(500, "full"));
  assert.equal(stored.length, 500);
  assert.deepEqual(stored.map((a) => a.data), items(500, "full").map((a) => a.data));
  const listed = await listAll(server, await server.userToken("full"));
  assert.deepEqual(listed.map((a) => a.id), stored.map((a) => a.id).reverse());
  assert.equal(await unreadCount(server, await server.userToken("full")), 500);
});

Deno.test("the largest valid batch (500 items with 8 KiB data each) is accepted", async () => {
  await using server = await startTestServer();
  const alarms = Array.from({ length: 500 }, (_, i) => ({
    userId: `user-${i % 5}-`.padEnd(128, "u"),
    type: "t".repeat(64),
    data: dataOfBytes(8 * KIB),
  }));
  const items = await createBatchOk(server, await server.publisherToken(), alarms);
  assert.equal(items.length, 500);
  const listed = await listAll(server, await server.userToken(alarms[0].userId));
  assert.equal(listed.length, 100);
  assert.equal(jsonBytes(listed[0].data), 8 * KIB);
});

Deno.test("one invalid item rejects the whole batch with 400 and stores nothing", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  const res = await server.fetch("/api/v1/alarms/batch", {
    method: "POST",
    token: publisher,
    json: {
      alarms: [
        { userId: "kim", type: "ok" },
        { userId: "lee", type: "ok" },
        { userId: "kim", type: "ok" },
        { userId: "kim", type: "not ok!" },
        { userId: "kim", type: "ok" },
      ],
    },
  });
  const error = await expectValidationError(res);
  assert.ok(
    error.issues.some((issue) => /\b3\b/.test(issue.path)),
    `no issue points at item 3: ${JSON.stringify(error.issues)}`,
  );
  for (const user of ["kim", "lee"]) {
    const token = await server.userToken(user);
    assert.deepEqual(await listAll(server, token), []);
    assert.equal(await unreadCount(server, token), 0);
  }
});

Deno.test("an item with data over 8 KiB makes the batch 413 and stores nothing", async () => {
  await using server = await startTestServer();
  const res = await server.fetch("/api/v1/alarms/batch", {
    method: "POST",
    token: await server.publisherToken(),
    json: {
      alarms: [
        { userId: "kim", type: "ok", data: { a: 1 } },
        { userId: "kim", type: "ok", data: dataOfBytes(8 * KIB + 1) },
        { userId: "lee", type: "ok" },
      ],
    },
  });
  await expectError(res, 413, "payload_too_large");
  for (const user of ["kim", "lee"]) {
    const token = await server.userToken(user);
    assert.deepEqual(await listAll(server, token), []);
    assert.equal(await unreadCount(server, token), 0);
  }
});

Deno.test("a batch body must be {alarms:[…]} and nothing else", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  for (
    const json of [
      {},
      { alarms: {} },
      { alarms: [{ userId: "kim", type: "t" }], extra: true },
      [{ userId: "kim", type: "t" }],
    ]
  ) {
    const res = await server.fetch("/api/v1/alarms/batch", {
      method: "POST",
      token: publisher,
      json,
    });
    await expectValidationError(res);
  }
  assert.deepEqual(await listAll(server, await server.userToken("kim")), []);
});

// ---------------------------------------------------------------------------------------------
// Idempotency-Key

Deno.test("a retry with the same Idempotency-Key answers 200 with the same alarm and stores nothing new", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  const body = { userId: "kim", type: "order.shipped", data: { order: 42 } };
  const headers = { "idempotency-key": "order-42-shipped" };
  const first = await expectJson<AlarmJson>(await create(server, publisher, body, headers), 201);
  const retry = await expectJson<AlarmJson>(await create(server, publisher, body, headers), 200);
  assert.deepEqual(retry, first);
  // Key order inside the body does not make it another request.
  const reordered = { data: { order: 42 }, type: "order.shipped", userId: "kim" };
  const again = await expectJson<AlarmJson>(
    await create(server, publisher, reordered, headers),
    200,
  );
  assert.deepEqual(again, first);

  const kim = await server.userToken("kim");
  assert.deepEqual(await listAll(server, kim), [first]);
  assert.equal(await unreadCount(server, kim), 1);
});

Deno.test("a retried create is delivered only once to an open stream", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  await using stream = await openSse(`${server.url}/api/v1/users/alarm/subscribe`, {
    token: await server.userToken("kim"),
  });
  assert.equal(stream.status, 200);
  assert.equal((await stream.next()).event, "connect");

  const body = { userId: "kim", type: "t", data: { n: 1 } };
  const headers = { "idempotency-key": "once" };
  const first = await expectJson<AlarmJson>(await create(server, publisher, body, headers), 201);
  await expectJson(await create(server, publisher, body, headers), 200);
  await expectJson(await create(server, publisher, body, headers), 200);
  const marker = await createOk(server, publisher, { userId: "kim", type: "marker" });

  const one = await stream.next((e) => e.event === "alarm");
  assert.equal(one.id, first.id);
  const two = await stream.next((e) => e.event === "alarm");
  assert.equal(two.id, marker.id, "the retry was delivered again");
  const alarmIds = stream.events.filter((e) => e.event === "alarm").map((e) => e.id);
  assert.deepEqual(alarmIds, [first.id, marker.id]);
});

Deno.test("the same Idempotency-Key with a different body is 409 idempotency_conflict", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  const headers = { "idempotency-key": "k-1" };
  const original = await expectJson<AlarmJson>(
    await create(server, publisher, { userId: "kim", type: "t", data: { n: 1 } }, headers),
    201,
  );
  for (
    const other of [
      { userId: "kim", type: "t", data: { n: 2 } },
      { userId: "kim", type: "u", data: { n: 1 } },
      { userId: "lee", type: "t", data: { n: 1 } },
      { userId: "kim", type: "t" },
    ]
  ) {
    await expectError(
      await create(server, publisher, other, headers),
      409,
      "idempotency_conflict",
    );
  }
  assert.deepEqual(await listAll(server, await server.userToken("kim")), [original]);
  assert.deepEqual(await listAll(server, await server.userToken("lee")), []);
});

Deno.test("Idempotency-Keys are scoped to the publisher's sub", async () => {
  await using server = await startTestServer();
  const body = { userId: "kim", type: "t", data: { n: 1 } };
  const headers = { "idempotency-key": "shared-key" };
  const a = await expectJson<AlarmJson>(
    await create(server, await server.publisherToken("backend-a"), body, headers),
    201,
  );
  const b = await expectJson<AlarmJson>(
    await create(server, await server.publisherToken("backend-b"), body, headers),
    201,
  );
  assert.notEqual(a.id, b.id);
  // A different body under the other publisher's key is no conflict either.
  await expectJson(
    await create(server, await server.publisherToken("backend-c"), { ...body, type: "x" }, headers),
    201,
  );
  assert.equal((await listAll(server, await server.userToken("kim"))).length, 3);
});

Deno.test("concurrent requests with one Idempotency-Key store exactly one alarm", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  const body = { userId: "kim", type: "t", data: { n: 1 } };
  const responses = await Promise.all(
    Array.from(
      { length: 12 },
      () => create(server, publisher, body, { "idempotency-key": "race" }),
    ),
  );
  const statuses = responses.map((r) => r.status).sort();
  const alarms = await Promise.all(responses.map((r) => r.json() as Promise<AlarmJson>));
  assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 201]);
  assert.equal(new Set(alarms.map((a) => a.id)).size, 1);
  const kim = await server.userToken("kim");
  assert.equal((await listAll(server, kim)).length, 1);
  assert.equal(await unreadCount(server, kim), 1);
});

Deno.test("a batch retried with its Idempotency-Key answers the same items and stores nothing new", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  const batch = (alarms: unknown[]) =>
    server.fetch("/api/v1/alarms/batch", {
      method: "POST",
      token: publisher,
      json: { alarms },
      headers: { "idempotency-key": "batch-1" },
    });
  const alarms = [
    { userId: "kim", type: "a" },
    { userId: "lee", type: "b", data: { x: 1 } },
    { userId: "kim", type: "c" },
  ];
  const first = await expectJson<{ items: AlarmJson[] }>(await batch(alarms), 201);
  const retry = await expectJson<{ items: AlarmJson[] }>(await batch(alarms), 200);
  assert.deepEqual(retry, first);

  await expectError(await batch([alarms[0], alarms[1]]), 409, "idempotency_conflict");
  await expectError(await batch([...alarms, alarms[0]]), 409, "idempotency_conflict");
  await expectError(await batch([alarms[1], alarms[0], alarms[2]]), 409, "idempotency_conflict");

  assert.equal((await listAll(server, await server.userToken("kim"))).length, 2);
  assert.equal((await listAll(server, await server.userToken("lee"))).length, 1);
});

Deno.test("an Idempotency-Key takes 1..128 characters", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  await expectJson(
    await create(server, publisher, { userId: "kim", type: "t" }, {
      "idempotency-key": "k".repeat(128),
    }),
    201,
  );
  await expectValidationError(
    await create(server, publisher, { userId: "kim", type: "t" }, {
      "idempotency-key": "k".repeat(129),
    }),
  );
  assert.equal((await listAll(server, await server.userToken("kim"))).length, 1);
});

// ---------------------------------------------------------------------------------------------
// list

Deno.test("the list is newest first, 20 per page by default, with a nextCursor to the rest", async () => {
  await using server = await startTestServer();
  const created = await createBatchOk(
    server,
    await server.publisherToken(),
    Array.from({ length: 25 }, (_, i) => ({ userId: "kim", type: "t", data: { i } })),
  );
  const kim = await server.userToken("kim");
  const first = await listPage(server, kim);
  const newestFirst = [...created].reverse();
  assert.deepEqual(first.items, newestFirst.slice(0, 20));
  assert.equal(typeof first.nextCursor, "string");
  const second = await listPage(server, kim, `cursor=${encodeURIComponent(first.nextCursor!)}`);
  assert.deepEqual(second.items, newestFirst.slice(20));
  assert.equal(second.nextCursor, null);
});

Deno.test("a page that holds the last alarm has nextCursor null", async () => {
  await using server = await startTestServer();
  const kim = await server.userToken("kim");
  assert.deepEqual(await listPage(server, kim), { items: [], nextCursor: null });
  await createBatchOk(
    server,
    await server.publisherToken(),
    Array.from({ length: 20 }, () => ({ userId: "kim", type: "t" })),
  );
  const page = await listPage(server, kim);
  assert.equal(page.items.length, 20);
  assert.equal(page.nextCursor, null);
  const small = await listPage(server, kim, "limit=19");
  assert.equal(small.items.length, 19);
  assert.notEqual(small.nextCursor, null);
});

Deno.test("limit accepts 1..100 and anything else is 400 invalid_request", async () => {
  await using server = await startTestServer();
  await createBatchOk(
    server,
    await server.publisherToken(),
    Array.from({ length: 105 }, () => ({ userId: "kim", type: "t" })),
  );
  const kim = await server.userToken("kim");
  assert.equal((await listPage(server, kim, "limit=1")).items.length, 1);
  assert.equal((await listPage(server, kim, "limit=100")).items.length, 100);
  for (const bad of ["0", "101", "-1", "abc", "1.5", "", "1e9"]) {
    const res = await server.fetch(`/api/v1/users/alarms?limit=${bad}`, { token: kim });
    await expectValidationError(res);
  }
});

Deno.test("paging with the cursor misses nothing and repeats nothing while alarms arrive", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  const original = await createBatchOk(
    server,
    publisher,
    Array.from({ length: 47 }, (_, i) => ({ userId: "kim", type: "t", data: { i } })),
  );
  const kim = await server.userToken("kim");
  const seen: AlarmJson[] = [];
  let cursor: string | null = null;
  const inserted: AlarmJson[] = [];
  do {
    const page: { items: AlarmJson[]; nextCursor: string | null } = await listPage(
      server,
      kim,
      `limit=10${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
    );
    seen.push(...page.items);
    cursor = page.nextCursor;
    // New alarms land between page fetches, on top of the list.
    inserted.push(
      ...await Promise.all([
        createOk(server, publisher, { userId: "kim", type: "new" }),
        createOk(server, publisher, { userId: "kim", type: "new" }),
        createOk(server, publisher, { userId: "kim", type: "new" }),
      ]),
    );
  } while (cursor !== null);

  assert.deepEqual(seen.map((a) => a.id), original.map((a) => a.id).reverse());
  const everything = await listAll(server, kim);
  assert.equal(everything.length, original.length + inserted.length);
  assert.deepEqual(
    new Set(everything.map((a) => a.id)),
    new Set([...original, ...inserted].map((a) => a.id)),
  );
});

Deno.test("a cursor the server did not issue is 400 invalid_request", async () => {
  await using server = await startTestServer();
  await createOk(server, await server.publisherToken(), { userId: "kim", type: "t" });
  const kim = await server.userToken("kim");
  for (
    const cursor of [
      "garbage",
      "!!!",
      btoa("v1:not-an-id"),
      btoa("v2:01J00000000000000000000000"),
      "x".repeat(300),
    ]
  ) {
    const res = await server.fetch(
      `/api/v1/users/alarms?cursor=${encodeURIComponent(cursor)}`,
      { token: kim },
    );
    await expectError(res, 400, "invalid_request");
  }
});

Deno.test("unread=true lists only unread alarms, newest first, across pages", async () => {
  await using server = await startTestServer();
  const created = await createBatchOk(
    server,
    await server.publisherToken(),
    Array.from({ length: 30 }, (_, i) => ({ userId: "kim", type: "t", data: { i } })),
  );
  const kim = await server.userToken("kim");
  const read = created.filter((_, i) => i % 3 === 0);
  for (const alarm of read) await expectNoContent(await markRead(server, kim, alarm.id));

  const unread = created.filter((_, i) => i % 3 !== 0).reverse();
  const listed = await listAll(server, kim, { unread: "true", limit: "7" });
  assert.deepEqual(listed.map((a) => a.id), unread.map((a) => a.id));
  for (const alarm of listed) assert.equal(alarm.readAt, null);

  const all = await listAll(server, kim, { unread: "false" });
  assert.equal(all.length, 30);
  const badFilter = await server.fetch("/api/v1/users/alarms?unread=yes", { token: kim });
  await expectValidationError(badFilter);
});

// ---------------------------------------------------------------------------------------------
// unread-count, read, read-all, delete

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

// ---------------------------------------------------------------------------------------------
// validation errors

Deno.test("a malformed JSON body is 400 invalid_request with issues", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  for (const body of ['{"userId":"kim","type":', "{'userId':'kim'}", "nope", "{}{}"]) {
    const res = await server.fetch("/api/v1/alarms", {
      method: "POST",
      token: publisher,
      headers: { "content-type": "application/json" },
      body,
    });
    await expectValidationError(res);
  }
});

Deno.test("a body that is not application/json is 400 invalid_request with issues", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  const body = JSON.stringify({ userId: "kim", type: "t" });
  for (const contentType of ["text/plain", "application/x-www-form-urlencoded", null]) {
    const headers: Record<string, string> = contentType ? { "content-type": contentType } : {};
    const res = await server.fetch("/api/v1/alarms", {
      method: "POST",
      token: publisher,
      headers,
      body: contentType === null ? new TextEncoder().encode(body) : body,
    });
    await expectValidationError(res);
  }
  assert.deepEqual(await listAll(server, await server.userToken("kim")), []);
});

Deno.test("a JSON body that is not an object is 400 invalid_request with issues", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  for (const json of [[], null, 42, "text", true]) {
    await expectValidationError(await create(server, publisher, json));
  }
});

Deno.test("missing fields are 400 with an issue for each", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  const both = await expectValidationError(await create(server, publisher, {}));
  assert.ok(both.issues.some((i) => i.path === "userId"), JSON.stringify(both.issues));
  assert.ok(both.issues.some((i) => i.path === "type"), JSON.stringify(both.issues));
  const noType = await expectValidationError(await create(server, publisher, { userId: "kim" }));
  assert.ok(noType.issues.some((i) => i.path === "type"), JSON.stringify(noType.issues));
  const noUser = await expectValidationError(await create(server, publisher, { type: "t" }));
  assert.ok(noUser.issues.some((i) => i.path === "userId"), JSON.stringify(noUser.issues));
});

Deno.test("unknown fields are 400 invalid_request", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  for (
    const json of [
      { userId: "kim", type: "t", extra: 1 },
      { userId: "kim", type: "t", id: "01J00000000000000000000000" },
      { userId: "kim", type: "t", readAt: null },
    ]
  ) {
    await expectValidationError(await create(server, publisher, json));
  }
  assert.deepEqual(await listAll(server, await server.userToken("kim")), []);
});

Deno.test("type must be 1..64 characters of A-Z a-z 0-9 . _ : -", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  for (const type of ["a", "Az09._:-", "t".repeat(64)]) {
    const alarm = await createOk(server, publisher, { userId: "kim", type });
    assert.equal(alarm.type, type);
  }
  for (
    const type of [
      "",
      "t".repeat(65),
      "has space",
      "slash/y",
      "new\nline",
      "cr\rx",
      "ünï",
      "emoji😀",
      "semi;colon",
      'quote"',
      42,
      null,
    ]
  ) {
    await expectValidationError(await create(server, publisher, { userId: "kim", type }));
  }
  assert.equal((await listAll(server, await server.userToken("kim"))).length, 3);
});

Deno.test("userId must be a string of 1..128 characters", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  const longest = "u".repeat(128);
  await createOk(server, publisher, { userId: longest, type: "t" });
  assert.equal((await listAll(server, await server.userToken(longest))).length, 1);
  for (const userId of ["", "u".repeat(129), 7, null, ["kim"]]) {
    await expectValidationError(await create(server, publisher, { userId, type: "t" }));
  }
});

Deno.test("data must be a JSON object", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  for (const data of [[], [1, 2], null, "text", 1, true]) {
    await expectValidationError(
      await create(server, publisher, { userId: "kim", type: "t", data }),
    );
  }
  assert.deepEqual(await listAll(server, await server.userToken("kim")), []);
});

Deno.test("data nested deeper than 32 levels is 400; 32 levels are accepted", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  const ok = await createOk(server, publisher, {
    userId: "kim",
    type: "t",
    data: nestedObject(32),
  });
  assert.deepEqual(ok.data, nestedObject(32));
  await expectValidationError(
    await create(server, publisher, { userId: "kim", type: "t", data: nestedObject(34) }),
  );
  // Far deeper than allowed, within the body limit: still a 400, never a 500.
  const deepArrays = "[".repeat(20_000) + "]".repeat(20_000);
  const res = await server.fetch("/api/v1/alarms", {
    method: "POST",
    token: publisher,
    headers: { "content-type": "application/json" },
    body: `{"userId":"kim","type":"t","data":{"a":${deepArrays}}}`,
  });
  await expectValidationError(res);
  assert.equal((await listAll(server, await server.userToken("kim"))).length, 1);
});

Deno.test("a body over the size limit is 413 payload_too_large, with or without Content-Length", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  const huge = JSON.stringify({ userId: "kim", type: "t", data: { s: "x".repeat(200 * KIB) } });

  const sized = await server.fetch("/api/v1/alarms", {
    method: "POST",
    token: publisher,
    headers: { "content-type": "application/json" },
    body: huge,
  });
  await expectError(sized, 413, "payload_too_large");

  const bytes = new TextEncoder().encode(huge);
  const chunked = await server.fetch("/api/v1/alarms", {
    method: "POST",
    token: publisher,
    headers: { "content-type": "application/json" },
    body: new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < bytes.length; i += 16 * KIB) {
          controller.enqueue(bytes.slice(i, i + 16 * KIB));
        }
        controller.close();
      },
    }),
  });
  await expectError(chunked, 413, "payload_too_large");

  const batchBody = JSON.stringify({
    alarms: [{ userId: "kim", type: "t", data: { s: "x".repeat(6 * 1024 * KIB) } }],
  });
  const batch = await server.fetch("/api/v1/alarms/batch", {
    method: "POST",
    token: publisher,
    headers: { "content-type": "application/json" },
    body: batchBody,
  });
  await expectError(batch, 413, "payload_too_large");
  assert.deepEqual(await listAll(server, await server.userToken("kim")), []);
});

Deno.test("an unknown route is 404 not_found as JSON", async () => {
  await using server = await startTestServer();
  const kim = await server.userToken("kim");
  await expectError(await server.fetch("/nope"), 404, "not_found");
  await expectError(await server.fetch("/api/v1/nope", { token: kim }), 404, "not_found");
  await expectError(await server.fetch("/api/v2/users/alarms", { token: kim }), 404, "not_found");
  await expectError(
    await server.fetch("/api/v1/users/alarms/unread-count/extra", { token: kim }),
    404,
    "not_found",
  );
});
