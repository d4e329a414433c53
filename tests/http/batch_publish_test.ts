/**
 * POST /api/v1/alarms/batch (api.md: Alarms): all items stored in request order, or none of
 * them, through real HTTP against a real server with a fresh KV file per test.
 */
import assert from "node:assert/strict";
import { startTestServer } from "../helpers/test_server.ts";
import type { AlarmJson } from "../helpers/api_client.ts";
import {
  assertAlarmShape,
  createBatchOk,
  dataOfBytes,
  expectError,
  expectJson,
  expectValidationError,
  jsonBytes,
  KIB,
  listAll,
  unreadCount,
} from "../helpers/api_client.ts";

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
