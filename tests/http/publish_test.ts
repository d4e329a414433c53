/**
 * POST /api/v1/alarms (api.md: Alarms): what a create answers and stores, through real HTTP
 * against a real server with a fresh KV file per test.
 */
import assert from "node:assert/strict";
import { startTestServer } from "../helpers/test_server.ts";
import type { AlarmJson } from "../helpers/api_client.ts";
import {
  assertAlarmShape,
  create,
  createOk,
  dataOfBytes,
  expectError,
  expectJson,
  expectValidationError,
  jsonBytes,
  KIB,
  listAll,
  listPage,
  ULID_PATTERN,
  unreadCount,
} from "../helpers/api_client.ts";

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
