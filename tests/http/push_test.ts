/**
 * Web Push end to end: alarmd against a test push service on 127.0.0.1 that checks the VAPID
 * token and decrypts every message with its own implementation (tests/helpers/test_push_service.ts).
 */
import assert from "node:assert/strict";
import { createOk, expectError, expectJson, expectNoContent } from "../helpers/api_client.ts";
import { SUBSCRIBE_PATH } from "../helpers/live_fixtures.ts";
import { openSse } from "../helpers/sse_client.ts";
import { startTestPushService, type TestPushService } from "../helpers/test_push_service.ts";
import { startTestServer, type TestServer } from "../helpers/test_server.ts";
import { sample } from "../helpers/metrics.ts";
import { delay, waitUntil } from "../helpers/wait.ts";

const notification = { title: "Kim commented", body: "Nice post!", url: "/posts/7", tag: "post-7" };

async function pushServer(service: TestPushService, overrides: Record<string, unknown> = {}) {
  return await startTestServer({
    vapidSubject: "mailto:ops@example.com",
    pushAllowedOrigins: service.origin,
    ...overrides,
  });
}

/** Registers a fresh test-service subscription for `userId`; returns both ids. */
async function subscribe(server: TestServer, service: TestPushService, userId: string) {
  const sub = await service.subscribe();
  const res = await server.fetch("/api/v1/users/push-subscriptions", {
    method: "POST",
    token: await server.userToken(userId),
    json: { endpoint: sub.endpoint, keys: sub.keys, expirationTime: null },
  });
  const record = await expectJson<{ id: string; endpoint: string; createdAt: string }>(res, 201);
  return { sub, record };
}

Deno.test("push off: the key and subscription endpoints answer 404 push_disabled", async () => {
  await using server = await startTestServer();
  await expectError(await server.fetch("/api/v1/push/vapid-public-key"), 404, "push_disabled");
  const res = await server.fetch("/api/v1/users/push-subscriptions", {
    token: await server.userToken("kim"),
  });
  await expectError(res, 404, "push_disabled");
});

Deno.test("the VAPID public key is a P-256 point, generated once and kept across restarts", async () => {
  await using service = await startTestPushService();
  const dir = await Deno.makeTempDir({ prefix: "alarmd-vapid-" });
  try {
    const keyOf = async () => {
      await using server = await startTestServer(
        { vapidSubject: "mailto:ops@example.com", pushAllowedOrigins: service.origin },
        { dir },
      );
      const res = await server.fetch("/api/v1/push/vapid-public-key");
      return (await expectJson<{ publicKey: string }>(res, 200)).publicKey;
    };
    const first = await keyOf();
    assert.match(first, /^B[A-Za-z0-9_-]{86}$/, "65 bytes, base64url, starting with 0x04");
    assert.equal(await keyOf(), first);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("subscriptions: register (201, then 200), list, delete, another user's is 404, and an endpoint moves between users", async () => {
  await using service = await startTestPushService();
  await using server = await pushServer(service);
  const kim = await server.userToken("kim");
  const lee = await server.userToken("lee");
  const { sub, record } = await subscribe(server, service, "kim");
  assert.equal(record.endpoint, sub.endpoint);
  const again = await server.fetch("/api/v1/users/push-subscriptions", {
    method: "POST",
    token: kim,
    json: { endpoint: sub.endpoint, keys: sub.keys },
  });
  assert.deepEqual(await expectJson(again, 200), record);
  const list = await server.fetch("/api/v1/users/push-subscriptions", { token: kim });
  assert.deepEqual(await expectJson(list, 200), { items: [record] });
  const path = `/api/v1/users/push-subscriptions/${record.id}`;
  await expectError(await server.fetch(path, { method: "DELETE", token: lee }), 404, "not_found");
  const moved = await server.fetch("/api/v1/users/push-subscriptions", {
    method: "POST",
    token: lee,
    json: { endpoint: sub.endpoint, keys: sub.keys },
  });
  await expectJson(moved, 201);
  const kimList = await server.fetch("/api/v1/users/push-subscriptions", { token: kim });
  assert.deepEqual(await expectJson(kimList, 200), { items: [] }, "a shared browser leaves kim");
  const leeList = await expectJson<{ items: { id: string }[] }>(
    await server.fetch("/api/v1/users/push-subscriptions", { token: lee }),
    200,
  );
  const leePath = `/api/v1/users/push-subscriptions/${leeList.items[0].id}`;
  await expectNoContent(await server.fetch(leePath, { method: "DELETE", token: lee }));
  await expectError(
    await server.fetch(leePath, { method: "DELETE", token: lee }),
    404,
    "not_found",
  );
});

Deno.test("a subscription is refused for a host not allowed, bad keys, or a bad body, with a JSON error", async () => {
  await using service = await startTestPushService();
  await using server = await pushServer(service);
  const token = await server.userToken("kim");
  const { keys } = await service.subscribe();
  const post = (json: unknown) =>
    server.fetch("/api/v1/users/push-subscriptions", { method: "POST", token, json });
  for (const endpoint of ["http://10.0.0.1/push/1", "https://fcm.googleapis.com/fcm/send/1"]) {
    await expectError(await post({ endpoint, keys }), 400, "endpoint_not_allowed");
  }
  const endpoint = `${service.origin}/push/x`;
  await expectError(
    await post({ endpoint, keys: { ...keys, p256dh: "AAAA" } }),
    400,
    "invalid_request",
  );
  await expectError(
    await post({ endpoint, keys: { ...keys, auth: "AAAA" } }),
    400,
    "invalid_request",
  );
  await expectError(await post({ endpoint }), 400, "invalid_request");
  await expectError(await post({ endpoint: "x".repeat(1025), keys }), 400, "invalid_request");
});

Deno.test("the default allow-list takes only the known push services over https", async () => {
  await using server = await startTestServer({ vapidSubject: "mailto:ops@example.com" });
  await using service = await startTestPushService();
  const { keys } = await service.subscribe();
  const token = await server.userToken("kim");
  const post = (endpoint: string) =>
    server.fetch("/api/v1/users/push-subscriptions", {
      method: "POST",
      token,
      json: { endpoint, keys },
    });
  await expectJson(await post("https://fcm.googleapis.com/fcm/send/abc"), 201);
  await expectJson(await post("https://updates.push.services.mozilla.com/wpush/v2/abc"), 201);
  for (
    const bad of [
      `${service.origin}/push/1`,
      "https://fcm.googleapis.com.evil.example/x",
      "https://user@fcm.googleapis.com/x",
    ]
  ) {
    await expectError(await post(bad), 400, "endpoint_not_allowed");
  }
});

Deno.test("offline: an alarm with a notification is pushed, encrypted and signed; one without is not", async () => {
  await using service = await startTestPushService();
  await using server = await pushServer(service);
  const { sub } = await subscribe(server, service, "kim");
  const publisher = await server.publisherToken();
  await createOk(server, publisher, { userId: "kim", type: "plain" });
  const alarm = await createOk(server, publisher, { userId: "kim", type: "comment", notification });
  const [push] = await service.waitFor(1);
  assert.equal(push.subscriptionId, sub.id);
  assert.deepEqual(JSON.parse(push.payload), {
    id: alarm.id,
    type: "comment",
    title: "Kim commented",
    body: "Nice post!",
    url: "/posts/7",
    tag: "post-7",
    createdAt: alarm.createdAt,
  });
  assert.equal(push.urgency, "normal");
  assert.ok(push.ttl !== null && push.ttl > 86_000 && push.ttl <= 86_400, `TTL ${push.ttl}`);
  assert.equal(push.vapid.claims.sub, "mailto:ops@example.com");
  assert.equal(push.vapid.claims.aud, service.origin);
  const key = await expectJson<{ publicKey: string }>(
    await server.fetch("/api/v1/push/vapid-public-key"),
    200,
  );
  assert.equal(
    push.vapid.publicKey,
    key.publicKey,
    "signed with the key the browser subscribed with",
  );
  await delay(600);
  assert.equal(service.received().length, 1, "the plain alarm is not pushed");
  assert.deepEqual(service.problems, []);
});

Deno.test("offline: no push while the user has a stream open; always: pushed anyway", async () => {
  await using service = await startTestPushService();
  for (const policy of ["offline", "always"] as const) {
    await using server = await pushServer(service, { push: policy });
    await subscribe(server, service, "kim");
    const before = service.received().length;
    await using stream = await openSse(`${server.url}${SUBSCRIBE_PATH}`, {
      token: await server.userToken("kim"),
    });
    await stream.waitFor((e) => e.event === "connect", 1);
    await createOk(server, await server.publisherToken(), {
      userId: "kim",
      type: "t",
      notification,
    });
    await stream.waitFor((e) => e.event === "alarm", 1);
    if (policy === "always") await service.waitFor(before + 1);
    else await delay(800);
    assert.equal(service.received().length - before, policy === "always" ? 1 : 0, policy);
  }
});

Deno.test("503 with Retry-After is retried until accepted; 410 removes the subscription", async () => {
  await using service = await startTestPushService();
  await using server = await pushServer(service);
  const { sub } = await subscribe(server, service, "kim");
  service.answer(sub.id, [
    { status: 503, headers: { "retry-after": "1" } },
    { status: 429, headers: { "retry-after": "1" } },
  ]);
  const publisher = await server.publisherToken();
  const alarm = await createOk(server, publisher, { userId: "kim", type: "t", notification });
  const started = Date.now();
  await waitUntil(() => service.received().some((p) => p.status === 201), "accepted", 10_000);
  const answered = service.received().map((p) => p.status);
  assert.deepEqual(answered, [503, 429, 201]);
  assert.ok(Date.now() - started >= 1900, "Retry-After was honoured twice");
  assert.ok(service.received().every((p) => JSON.parse(p.payload).id === alarm.id));

  service.answer(sub.id, [{ status: 410 }]);
  await createOk(server, publisher, { userId: "kim", type: "t", notification });
  const kim = await server.userToken("kim");
  await waitUntil(
    async () => {
      const res = await server.fetch("/api/v1/users/push-subscriptions", { token: kim });
      return (await res.json()).items.length === 0;
    },
    "the subscription is gone",
    5_000,
  );
  // Metrics count by result (the sender reports them every half second).
  await waitUntil(
    async () => {
      const text = await (await server.fetch("/metrics")).text();
      return text.includes('alarmd_pushes_total{result="gone"} 1');
    },
    "the metrics count the 410",
    5_000,
  );
  const text = await (await server.fetch("/metrics")).text();
  assert.equal(sample(text, 'alarmd_pushes_total{result="sent"}'), 1);
  assert.equal(sample(text, 'alarmd_pushes_total{result="retried"}'), 2);
  assert.ok(text.includes("alarmd_push_outbox_pending "), "the outbox depth is exported");
  assert.ok(text.includes("alarmd_push_outbox_oldest_due_seconds "));
});

Deno.test("an alarm read before its push goes out is not pushed", async () => {
  await using service = await startTestPushService();
  await using server = await pushServer(service);
  const { sub } = await subscribe(server, service, "kim");
  // The first message waits: the read happens while the push is being retried.
  service.answer(sub.id, [{ status: 503, headers: { "retry-after": "1" } }]);
  const alarm = await createOk(server, await server.publisherToken(), {
    userId: "kim",
    type: "t",
    notification,
  });
  await waitUntil(() => service.received().length === 1, "the first attempt", 5_000);
  await expectNoContent(
    await server.fetch(`/api/v1/users/alarms/${alarm.id}/read`, {
      method: "POST",
      token: await server.userToken("kim"),
    }),
  );
  await delay(1800);
  assert.deepEqual(service.received().map((p) => p.status), [503], "no second attempt");
});
