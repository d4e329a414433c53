/**
 * The Idempotency-Key header on both create endpoints (api.md: Alarms): a retry answers what the
 * first request stored and stores (and delivers) nothing new; another body under the key is 409.
 */
import assert from "node:assert/strict";
import { openSse } from "../helpers/sse_client.ts";
import { startTestServer } from "../helpers/test_server.ts";
import type { AlarmJson } from "../helpers/api_client.ts";
import {
  create,
  createOk,
  expectError,
  expectJson,
  expectValidationError,
  listAll,
  unreadCount,
} from "../helpers/api_client.ts";

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
