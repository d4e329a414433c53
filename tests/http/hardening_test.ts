import assert from "node:assert/strict";
import { createFakeClock } from "../helpers/fake_clock.ts";
import { openSse } from "../helpers/sse_client.ts";
import { startTestServer } from "../helpers/test_server.ts";

const SUBSCRIBE = "/api/v1/users/alarm/subscribe";

for (const transport of ["node", "deno"] as const) {
  Deno.test(`[${transport}] a publisher over its rate gets 429 rate_limited with Retry-After; a batch costs its size`, async () => {
    // Time moves only when the test says, so the bucket does not refill between requests.
    const clock = createFakeClock();
    await using server = await startTestServer({ transport, ratePublishPerSecond: 2 }, { clock });
    const publish = async (token: string, count: number) => {
      const res = count === 1
        ? await server.fetch("/api/v1/alarms", {
          method: "POST",
          token,
          json: { userId: "kim", type: "x" },
        })
        : await server.fetch("/api/v1/alarms/batch", {
          method: "POST",
          token,
          json: { alarms: Array.from({ length: count }, () => ({ userId: "kim", type: "x" })) },
        });
      if (res.status === 429) {
        assert.ok(Number(res.headers.get("retry-after")) >= 1);
        const { error } = await res.json();
        assert.equal(error.code, "rate_limited");
        assert.match(error.message, /per publisher/);
      } else await res.body?.cancel();
      return res.status;
    };
    const publisher = await server.publisherToken("noisy");
    // The bucket holds a full batch (500) at any rate: 497 leave 3.
    assert.equal(await publish(publisher, 497), 201);
    assert.equal(await publish(publisher, 4), 429, "a batch of 4 is over the 3 left");
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push(await publish(publisher, 1));
    assert.deepEqual(statuses, [201, 201, 201, 429]);
    // Another publisher has its own budget; the refused requests stored nothing.
    assert.equal(await publish(await server.publisherToken("calm"), 5), 201);
    const unread = await server.fetch("/api/v1/users/alarms/unread-count", {
      token: await server.userToken("kim"),
    });
    assert.deepEqual(await unread.json(), { unread: 497 + 3 + 5 });
  });

  Deno.test(`[${transport}] stream attempts are limited per client address, before authentication`, async () => {
    await using server = await startTestServer({ transport, rateConnectPerIpPerSecond: 1 });
    const statuses = [];
    let refusal = "";
    for (let i = 0; i < 6; i++) {
      const res = await fetch(server.url + SUBSCRIBE);
      statuses.push(res.status);
      if (res.status === 429) refusal = (await res.json()).error.message;
      else await res.body?.cancel();
    }
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429]);
    assert.match(refusal, /per address/, "the refusal names the address's limit, not a user's");
  });

  Deno.test(`[${transport}] CORS admits configured origins on every path, with security headers`, async () => {
    await using server = await startTestServer({
      transport,
      corsOrigins: "https://app.example.com",
    });
    const preflight = await fetch(`${server.url}/api/v1/alarms`, {
      method: "OPTIONS",
      headers: {
        origin: "https://app.example.com",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type, idempotency-key",
      },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get("access-control-allow-origin"), "https://app.example.com");
    assert.match(preflight.headers.get("access-control-allow-headers")!, /Idempotency-Key/i);
    await preflight.body?.cancel();

    const user = await server.userToken("kim");
    const origin = { origin: "https://app.example.com" };
    const created = await server.fetch("/api/v1/alarms", {
      method: "POST",
      token: await server.publisherToken(),
      json: { userId: "kim", type: "x" },
      headers: origin,
    });
    const listed = await server.fetch("/api/v1/users/alarms", { token: user, headers: origin });
    await using stream = await openSse(server.url + SUBSCRIBE, { token: user, headers: origin });
    for (const res of [created, listed, stream.response]) {
      assert.equal(res.headers.get("access-control-allow-origin"), "https://app.example.com");
      assert.equal(res.headers.get("access-control-allow-credentials"), "true");
      assert.match(res.headers.get("access-control-expose-headers")!, /X-Request-Id/i);
      assert.equal(res.headers.get("x-content-type-options"), "nosniff");
    }
    await created.body?.cancel();
    await listed.body?.cancel();

    const stranger = await server.fetch("/api/v1/users/alarms", {
      token: user,
      headers: { origin: "https://evil.example" },
    });
    assert.equal(stranger.headers.get("access-control-allow-origin"), null);
    await stranger.body?.cancel();
  });
}

Deno.test("without ALARMD_CORS_ORIGINS no origin is allowed", async () => {
  await using server = await startTestServer();
  const res = await server.fetch("/api/v1/users/alarms", {
    token: await server.userToken("kim"),
    headers: { origin: "https://app.example.com" },
  });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("access-control-allow-origin"), null);
  await res.body?.cancel();
});

for (const transport of ["node", "deno"] as const) {
  Deno.test(`[${transport}] a publisher that hangs up mid-body stores nothing and is no server error`, async () => {
    await using server = await startTestServer({ transport });
    const token = await server.publisherToken();
    const { port } = new URL(server.url);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(port) });
    const body = JSON.stringify({ userId: "kim", type: "cut" });
    await conn.write(new TextEncoder().encode(
      `POST /api/v1/alarms HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${body.length + 50}\r\n\r\n${body}`,
    ));
    await new Promise((r) => setTimeout(r, 100));
    conn.close();
    await new Promise((r) => setTimeout(r, 200));
    const errors = server.logs.filter((l) => l.level === "error");
    assert.deepEqual(errors, [], "a client leaving is not an unexpected error");
    const unread = await server.fetch("/api/v1/users/alarms/unread-count", {
      token: await server.userToken("kim"),
    });
    assert.deepEqual(await unread.json(), { unread: 0 });
  });
}
