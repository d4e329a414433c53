/**
 * `GET /api/v1/presence` on one instance: who has a live stream, in the order asked, for
 * publishers only; a stream whose client stopped reading does not count.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { expectError, expectJson, expectValidationError, KIB } from "../helpers/api_client.ts";
import { createAlarms, openStalledClient, SUBSCRIBE_PATH } from "../helpers/live_fixtures.ts";
import { openSse } from "../helpers/sse_client.ts";
import type { TestServer } from "../helpers/test_server.ts";
import { startTestServer } from "../helpers/test_server.ts";
import { waitUntil } from "../helpers/wait.ts";

interface PresenceAnswer {
  users: { userId: string; online: boolean; connections: number }[];
}

const query = (ids: readonly string[]) =>
  ids.map((id) => `userId=${encodeURIComponent(id)}`).join("&");

async function presence(server: TestServer, token: string, ids: readonly string[]) {
  const res = await server.fetch(`/api/v1/presence?${query(ids)}`, { token });
  return await expectJson<PresenceAnswer>(res, 200);
}

/** `[online, connections]` of each user, in the order asked. */
async function states(server: TestServer, token: string, ids: readonly string[]) {
  return (await presence(server, token, ids)).users.map((u) => [u.online, u.connections]);
}

Deno.test("presence follows a user's tabs: offline, online with two, one closed, offline", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  const user = await server.userToken("kim");
  const res = await server.fetch(`/api/v1/presence?userId=kim`, { token: publisher });
  assert.equal(res.headers.get("cache-control"), "no-store");
  assert.deepEqual(await expectJson(res, 200), {
    users: [{ userId: "kim", online: false, connections: 0 }],
  });

  const first = await openSse(server.url + SUBSCRIBE_PATH, { token: user });
  const second = await openSse(server.url + SUBSCRIBE_PATH, { token: user });
  try {
    await first.next();
    await second.next();
    assert.deepEqual(await presence(server, publisher, ["kim"]), {
      users: [{ userId: "kim", online: true, connections: 2 }],
    });
    await first.close();
    await waitUntil(
      async () => (await states(server, publisher, ["kim"]))[0][1] === 1,
      "one tab is left",
    );
    assert.deepEqual(await states(server, publisher, ["kim"]), [[true, 1]]);
  } finally {
    await first.close();
    await second.close();
  }
  await waitUntil(
    async () => (await states(server, publisher, ["kim"]))[0][1] === 0,
    "no tab is left",
  );
  assert.deepEqual(await states(server, publisher, ["kim"]), [[false, 0]]);
});

Deno.test("presence answers in the order asked, repeats included, for up to 100 users", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  await using lee = await openSse(server.url + SUBSCRIBE_PATH, {
    token: await server.userToken("lee"),
  });
  await using zoe = await openSse(server.url + SUBSCRIBE_PATH, {
    token: await server.userToken("zoé ✓"),
  });
  await lee.next();
  await zoe.next();
  const asked = ["zoé ✓", "amy", "lee", "zoé ✓"];
  assert.deepEqual(await presence(server, publisher, asked), {
    users: [
      { userId: "zoé ✓", online: true, connections: 1 },
      { userId: "amy", online: false, connections: 0 },
      { userId: "lee", online: true, connections: 1 },
      { userId: "zoé ✓", online: true, connections: 1 },
    ],
  });
  const hundred = Array.from({ length: 100 }, (_, i) => (i === 99 ? "lee" : `u${i}`));
  const all = (await presence(server, publisher, hundred)).users;
  assert.deepEqual(all.map((u) => u.userId), hundred);
  assert.deepEqual(all.filter((u) => u.online).map((u) => u.userId), ["lee"]);
});

Deno.test("presence refuses no ids, over 100 ids and malformed ids (400), user tokens (403), no token (401)", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  const ask = (search: string, token = publisher) =>
    server.fetch(`/api/v1/presence${search}`, { token });

  let error = await expectValidationError(await ask(""));
  assert.deepEqual(error.issues.map((i) => i.path), ["userId"]);
  await expectValidationError(await ask("?user=kim"));
  const many = Array.from({ length: 101 }, (_, i) => `u${i}`);
  error = await expectValidationError(await ask(`?${query(many)}`));
  assert.deepEqual(error.issues.map((i) => i.path), ["userId"]);
  error = await expectValidationError(await ask("?userId=kim&userId="));
  assert.deepEqual(error.issues.map((i) => i.path), ["userId.1"]);
  error = await expectValidationError(await ask(`?userId=${"x".repeat(129)}`));
  assert.deepEqual(error.issues.map((i) => i.path), ["userId.0"]);
  // A lone surrogate percent-encoded (not UTF-8), and bad percent-encoding.
  error = await expectValidationError(await ask("?userId=kim&userId=%ED%A0%80"));
  assert.deepEqual(error.issues.map((i) => i.path), ["userId.1"]);
  await expectValidationError(await ask("?userId=%E0%A4%A"));

  await expectError(await ask("?userId=kim", await server.userToken("kim")), 403, "forbidden");
  await expectError(await server.fetch("/api/v1/presence?userId=kim"), 401, "unauthorized");
});

Deno.test("any query string is answered 200 or 400 in the contract's shape, never 5xx", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  const piece = fc.oneof(
    fc.string({ maxLength: 20 }).map(encodeURIComponent),
    fc.string({ unit: "grapheme", maxLength: 20 }),
    fc.constantFrom("%", "%E0%A4%A", "%ED%A0%80", "%FF", "+", "=", "&", "%00", "x".repeat(200)),
  );
  const key = fc.constantFrom("userId", "userid", "userId[]", "", "access_token");
  const search = fc.array(fc.tuple(key, piece), { maxLength: 120 }).map((pairs) =>
    pairs.map(([k, v]) => `${k}=${v}`).join("&")
  );
  await fc.assert(
    fc.asyncProperty(search, async (query) => {
      const res = await server.fetch(`/api/v1/presence?${query}`, { token: publisher });
      const body = await res.json();
      assert.ok([200, 400].includes(res.status), `${res.status} for ?${query}`);
      assert.ok(res.status === 200 ? Array.isArray(body.users) : body.error.code, query);
    }),
    { numRuns: 300 },
  );
});

Deno.test("no user id reaches /metrics, whoever is online or asked about", async () => {
  await using server = await startTestServer();
  const secret = "presence-user-5f2c9a";
  await using stream = await openSse(server.url + SUBSCRIBE_PATH, {
    token: await server.userToken(secret),
  });
  await stream.next();
  const publisher = await server.publisherToken();
  assert.deepEqual(await states(server, publisher, [secret, "other-7d1e"]), [[true, 1], [
    false,
    0,
  ]]);
  const metrics = await (await server.fetch("/metrics")).text();
  assert.match(metrics, /^alarmd_/m);
  assert.doesNotMatch(metrics, /presence-user-5f2c9a|other-7d1e/);
});

Deno.test("a stream whose client stops reading stops counting once its write has been pending two heartbeats", async () => {
  // Short heartbeats; a queue and a write timeout large enough that the stream stays open.
  await using server = await startTestServer({
    heartbeatMs: 100,
    maxQueueBytes: 256 << 20,
    writeTimeoutMs: 3_600_000,
    maxAlarmsPerUser: 100_000,
  });
  const publisher = await server.publisherToken();
  const stalled = await openStalledClient(server.server.port, await server.userToken("slow"));
  try {
    await waitUntil(
      async () => (await states(server, publisher, ["slow"]))[0][1] === 1,
      "the stalled tab counts while its writes go through",
    );
    // Alarms fill the socket buffers until a write stays pending.
    const data = { s: "x".repeat(4 * KIB) };
    for (let fed = 0; (await states(server, publisher, ["slow"]))[0][1] === 1; fed += 200) {
      assert.ok(fed < 20_000, "the stalled stream still counts after 80 MiB");
      await createAlarms(server, publisher, "slow", 200, data);
    }
    assert.deepEqual(await states(server, publisher, ["slow"]), [[false, 0]]);
    assert.equal(server.server.connectionCount("slow"), 1, "the stream is still open");

    await using reader = await openSse(server.url + SUBSCRIBE_PATH, {
      token: await server.userToken("slow"),
    });
    await reader.next();
    assert.deepEqual(await states(server, publisher, ["slow"]), [[true, 1]]);
  } finally {
    stalled.close();
  }
});
