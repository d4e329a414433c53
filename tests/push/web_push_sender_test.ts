/**
 * The sender against the test push service: what arrives decrypts to what was sent, carries a
 * valid VAPID token and the RFC 8030 headers, and every kind of answer becomes the right
 * PushResult — without following redirects, leaking responses or calling refused endpoints.
 */
import assert from "node:assert/strict";
import type { PushRequest, VapidKeys } from "../../src/domain/push.ts";
import { createEndpointPolicy } from "../../src/domain/push_endpoints.ts";
import { generateVapidKeys } from "../../src/push/vapid.ts";
import { createWebPushSender } from "../../src/push/web_push_sender.ts";
import {
  fromBase64Url,
  startTestPushService,
  type TestPushService,
  type TestPushSubscription,
  toBase64Url,
} from "../helpers/test_push_service.ts";

const SUBJECT = "mailto:ops@example.com";
const VAPID: VapidKeys = await generateVapidKeys();
const PAYLOAD = JSON.stringify({
  id: "01JDQ3V8Z6Y2K9N4T7W1X5R0AB",
  type: "disk.full",
  title: "Disk almost full",
  body: "db-2: 97 % of /var used",
  url: "/inbox",
  tag: "disk",
  createdAt: "2026-12-01T12:00:00.000Z",
});

function pushTo(
  subscription: Pick<TestPushSubscription, "endpoint" | "keys">,
  overrides: Partial<PushRequest> = {},
): PushRequest {
  return {
    subscription,
    payload: PAYLOAD,
    ttlSeconds: 60,
    vapid: VAPID,
    subject: SUBJECT,
    ...overrides,
  };
}

const senderFor = (
  service: TestPushService,
  options: { timeoutMs?: number; now?: () => number } = {},
) => createWebPushSender({ allowed: createEndpointPolicy([service.origin]).allows, ...options });

Deno.test("a push arrives encrypted to the subscription, with VAPID for the service's origin and the RFC 8030 headers", async () => {
  await using service = await startTestPushService();
  const subscription = await service.subscribe();
  const before = Math.floor(Date.now() / 1000);
  const result = await senderFor(service).send(pushTo(subscription));
  assert.deepEqual(result, { kind: "sent", status: 201 });

  const [message] = await service.waitFor(1);
  assert.deepEqual(service.problems, []);
  assert.equal(message.subscriptionId, subscription.id);
  assert.equal(message.payload, PAYLOAD);
  assert.equal(message.headers["content-encoding"], "aes128gcm");
  assert.equal(message.headers["content-type"], "application/octet-stream");
  assert.equal(message.ttl, 60);
  assert.equal(message.urgency, "normal");
  assert.match(message.headers["authorization"], /^vapid t=[\w-]+\.[\w-]+\.[\w-]+, k=[\w-]+$/);
  assert.equal(message.vapid.publicKey, VAPID.publicKey);
  assert.equal(message.vapid.claims.aud, service.origin);
  assert.equal(message.vapid.claims.sub, SUBJECT);
  const exp = message.vapid.claims.exp!;
  assert.ok(
    exp >= before + 12 * 3600 - 5 && exp <= before + 12 * 3600 + 5,
    `exp ${exp - before} s ahead`,
  );
  // One unpadded record: header (86 bytes), the payload, its delimiter and the GCM tag.
  const payloadBytes = new TextEncoder().encode(PAYLOAD).length;
  assert.equal(message.bodyBytes, 86 + payloadBytes + 1 + 16);
  assert.equal(message.headers["content-length"], String(message.bodyBytes));
});

Deno.test("a 3,072-byte payload in many scripts round-trips byte for byte", async () => {
  await using service = await startTestPushService();
  const subscription = await service.subscribe();
  const bytes = (text: string) => new TextEncoder().encode(text).length;
  let payload = "";
  for (const char of JSON.stringify({ title: 'é水🚨 \u2028"\\\n'.repeat(400) })) {
    if (bytes(payload + char) > 3000) break;
    payload += char;
  }
  const padded = payload + "x".repeat(3072 - bytes(payload));
  assert.equal(bytes(padded), 3072);
  const result = await senderFor(service).send(
    pushTo(subscription, { payload: padded, ttlSeconds: 0 }),
  );
  assert.equal(result.kind, "sent");
  const [message] = await service.waitFor(1);
  assert.equal(message.payload, padded);
  assert.equal(message.ttl, 0);
});

Deno.test("each answer becomes its result: 2xx sent, 404/410 gone, 429/5xx retry (honouring Retry-After), others and redirects rejected", async () => {
  await using service = await startTestPushService();
  const sender = senderFor(service);
  const elsewhere = await service.subscribe();
  const inSeconds = (s: number) => new Date(Date.now() + s * 1000).toUTCString();
  const cases = [
    { answer: { status: 201 }, expect: { kind: "sent", status: 201 } },
    { answer: { status: 202 }, expect: { kind: "sent", status: 202 } },
    { answer: { status: 404 }, expect: { kind: "gone", status: 404 } },
    { answer: { status: 410 }, expect: { kind: "gone", status: 410 } },
    {
      answer: { status: 429, headers: { "Retry-After": "7" } },
      expect: { kind: "retry", status: 429, retryAfterMs: 7000 },
    },
    {
      answer: { status: 503, headers: { "Retry-After": inSeconds(30) } },
      expect: { kind: "retry", status: 503, retryAfterMs: "about 30 s" },
    },
    {
      answer: { status: 503, headers: { "Retry-After": inSeconds(-30) } },
      expect: { kind: "retry", status: 503, retryAfterMs: 0 },
    },
    { answer: { status: 500 }, expect: { kind: "retry", status: 500, retryAfterMs: null } },
    { answer: { status: 502 }, expect: { kind: "retry", status: 502, retryAfterMs: null } },
    { answer: { status: 400 }, expect: { kind: "rejected", status: 400 } },
    { answer: { status: 403 }, expect: { kind: "rejected", status: 403 } },
    { answer: { status: 413 }, expect: { kind: "rejected", status: 413 } },
    {
      answer: { status: 301, headers: { Location: elsewhere.endpoint } },
      expect: { kind: "rejected", status: 301 },
    },
    {
      answer: { status: 307, headers: { Location: elsewhere.endpoint } },
      expect: { kind: "rejected", status: 307 },
    },
  ] as const;
  for (const { answer, expect } of cases) {
    const subscription = await service.subscribe();
    service.answer(subscription.id, [answer]);
    const result = await sender.send(pushTo(subscription));
    const what = `${answer.status} → ${JSON.stringify(result)}`;
    assert.equal(result.kind, expect.kind, what);
    assert.equal(result.status, expect.status, what);
    if (result.kind === "retry" && "retryAfterMs" in expect) {
      if (typeof expect.retryAfterMs === "string") {
        assert.ok(result.retryAfterMs! > 27_000 && result.retryAfterMs! <= 30_000, what);
      } else assert.equal(result.retryAfterMs, expect.retryAfterMs, what);
    }
    if (result.kind === "rejected" || result.kind === "retry") {
      assert.ok(result.reason !== "", what);
    }
  }
  assert.equal(service.received().length, cases.length);
  assert.deepEqual(service.received(elsewhere.id), [], "a redirect was followed");
  assert.equal(service.requests.length, cases.length, "a redirect was followed");
  assert.deepEqual(service.problems, []);
});

Deno.test("after 503 with Retry-After twice, the same message sent again is accepted", async () => {
  await using service = await startTestPushService();
  const subscription = await service.subscribe();
  const busy = { status: 503, headers: { "Retry-After": "1" } };
  service.answer(subscription.id, [busy, busy]);
  const sender = senderFor(service);
  const results = [];
  for (let i = 0; i < 3; i++) results.push(await sender.send(pushTo(subscription)));
  assert.deepEqual(
    results.map((r) => [r.kind, r.status, "retryAfterMs" in r ? r.retryAfterMs : null]),
    [
      ["retry", 503, 1000],
      ["retry", 503, 1000],
      ["sent", 201, null],
    ],
  );
  assert.deepEqual(service.received(subscription.id).map((m) => [m.payload, m.status]), [
    [PAYLOAD, 503],
    [PAYLOAD, 503],
    [PAYLOAD, 201],
  ]);
});

function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

Deno.test("a refused connection is a retry whose reason names the origin, never the endpoint", async () => {
  const port = closedPort();
  const endpoint = `http://127.0.0.1:${port}/push/secret-subscription-id`;
  await using service = await startTestPushService();
  const keys = (await service.subscribe()).keys;
  const sender = createWebPushSender({ allowed: () => true });
  const result = await sender.send(pushTo({ endpoint, keys }));
  assert.equal(result.kind, "retry");
  assert.equal(result.status, null);
  assert.equal(result.kind === "retry" && result.retryAfterMs, null);
  assert.match(result.kind === "retry" ? result.reason : "", new RegExp(`127\\.0\\.0\\.1:${port}`));
  assert.doesNotMatch(JSON.stringify(result), /secret-subscription-id/);
});

Deno.test("a push service that does not answer in time is a retry, and the wait is bounded", async () => {
  await using service = await startTestPushService();
  const subscription = await service.subscribe();
  service.answer(subscription.id, [{ status: 201, delayMs: 5_000 }]);
  const started = performance.now();
  const result = await senderFor(service, { timeoutMs: 200 }).send(pushTo(subscription));
  const took = performance.now() - started;
  assert.equal(result.kind, "retry");
  assert.equal(result.status, null);
  assert.match(result.kind === "retry" ? result.reason : "", /no answer .* within 200 ms/);
  assert.ok(took < 2_000, `took ${took} ms`);
});

Deno.test("an endpoint the policy refuses is rejected without any request", async () => {
  await using service = await startTestPushService();
  const subscription = await service.subscribe();
  const sender = createWebPushSender({ allowed: createEndpointPolicy().allows });
  const result = await sender.send(pushTo(subscription));
  assert.deepEqual(result, {
    kind: "rejected",
    status: null,
    reason: "the endpoint is not allowed",
  });
  const junk = await sender.send(pushTo({ ...subscription, endpoint: "not a url" }));
  assert.equal(junk.kind, "rejected");
  assert.deepEqual(service.requests, []);
});

Deno.test("unusable keys, VAPID keys or TTL are rejected locally, without a request and without the private key", async () => {
  await using service = await startTestPushService();
  const subscription = await service.subscribe();
  const other = await generateVapidKeys();
  const sender = senderFor(service);
  const offCurve = fromBase64Url(subscription.keys.p256dh);
  offCurve[64] ^= 1;
  const cases: [PushRequest, RegExp][] = [
    [pushTo({ ...subscription, keys: { ...subscription.keys, p256dh: "AAAA" } }), /cannot encrypt/],
    [
      pushTo({ ...subscription, keys: { ...subscription.keys, p256dh: toBase64Url(offCurve) } }),
      /cannot encrypt/,
    ],
    [pushTo({ ...subscription, keys: { ...subscription.keys, auth: "AAAA" } }), /cannot encrypt/],
    [pushTo(subscription, { vapid: { ...VAPID, privateKey: other.privateKey } }), /does not match/],
    [pushTo(subscription, { vapid: { ...VAPID, publicKey: "AAAA" } }), /cannot sign VAPID/],
    [pushTo(subscription, { ttlSeconds: -1 }), /TTL/],
    [pushTo(subscription, { ttlSeconds: 1.5 }), /TTL/],
    [pushTo(subscription, { payload: "x".repeat(5000) }), /cannot encrypt/],
  ];
  for (const [request, reason] of cases) {
    const result = await sender.send(request);
    assert.equal(result.kind, "rejected");
    assert.match(result.kind === "rejected" ? result.reason : "", reason);
    assert.ok(!JSON.stringify(result).includes(request.vapid.privateKey), "the private key leaked");
  }
  assert.deepEqual(service.requests, []);
});

const tokenOf = (authorization: string) => /t=([^,]+)/.exec(authorization)![1];

Deno.test("one VAPID token per push service is reused for an hour, then signed anew", async () => {
  await using first = await startTestPushService();
  await using second = await startTestPushService();
  let offsetMs = 0;
  const allowed = createEndpointPolicy([first.origin, second.origin]).allows;
  const sender = createWebPushSender({ allowed, now: () => Date.now() + offsetMs });
  const a = await first.subscribe();
  const b = await first.subscribe();
  const c = await second.subscribe();
  const sent = await Promise.all(
    [...Array(20)].map((_, i) => sender.send(pushTo([a, b, c][i % 3]))),
  );
  assert.ok(sent.every((r) => r.kind === "sent"), JSON.stringify(sent));
  const tokens = (service: TestPushService) =>
    new Set(service.received().map((m) => tokenOf(m.headers.authorization)));
  assert.equal(tokens(first).size, 1, "one token for every push to one service");
  assert.equal(tokens(second).size, 1);
  assert.notDeepEqual([...tokens(first)], [...tokens(second)], "tokens are per audience");

  offsetMs = 59 * 60_000;
  await sender.send(pushTo(a));
  assert.equal(tokens(first).size, 1, "still reused within the hour");
  offsetMs = 61 * 60_000;
  await sender.send(pushTo(a));
  assert.equal(tokens(first).size, 2, "signed anew after the hour");
  const last = first.received().at(-1)!;
  const ahead = last.vapid.claims.exp! - Date.now() / 1000;
  assert.ok(ahead > 13 * 3600 - 60 && ahead < 13 * 3600 + 60, `exp ${ahead} s ahead`);
  assert.deepEqual([...first.problems, ...second.problems], []);
});

Deno.test("a rotated VAPID key signs with the key the subscription was made with", async () => {
  await using service = await startTestPushService();
  const subscription = await service.subscribe();
  const sender = senderFor(service);
  const rotated = await generateVapidKeys();
  assert.equal((await sender.send(pushTo(subscription))).kind, "sent");
  assert.equal((await sender.send(pushTo(subscription, { vapid: rotated }))).kind, "sent");
  assert.deepEqual(service.received().map((m) => m.vapid.publicKey), [
    VAPID.publicKey,
    rotated.publicKey,
  ]);
});
