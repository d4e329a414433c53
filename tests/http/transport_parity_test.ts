/**
 * Both transports (ALARMD_TRANSPORT=node, the default, and deno: Hono streamSSE on Deno.serve)
 * must behave identically on the wire; the rest of the suite runs on the default, this file
 * holds each to the same exact expectations.
 */
import assert from "node:assert/strict";
import { createFakeClock } from "../helpers/fake_clock.ts";
import { openSse } from "../helpers/sse_client.ts";
import { startTestServer } from "../helpers/test_server.ts";

const SUBSCRIBE = "/api/v1/users/alarm/subscribe";

for (const transport of ["node", "deno"] as const) {
  Deno.test(`[${transport}] a stream opens with retry and connect, then exact alarm frames and replay`, async () => {
    await using server = await startTestServer({ transport, retryMs: 1500 });
    const publisher = await server.publisherToken();
    const user = await server.userToken("kim");
    await using stream = await openSse(server.url + SUBSCRIBE, { token: user });
    assert.equal(stream.status, 200);
    assert.equal(stream.response.headers.get("content-type"), "text/event-stream");
    assert.equal(stream.response.headers.get("cache-control"), "no-cache");
    assert.equal(stream.response.headers.get("x-accel-buffering"), "no");
    await stream.next();
    const connectionId = /"connectionId":"([^"]+)"/.exec(stream.text())![1];
    assert.equal(
      stream.text(),
      "retry: 1500\n" +
        `event: connect\ndata: {"message":"connect complete","userId":"kim","connectionId":"${connectionId}","unread":0,"lastId":null}\n\n`,
    );
    const created = await server.fetch("/api/v1/alarms", {
      method: "POST",
      token: publisher,
      json: { userId: "kim", type: "comment", data: { text: "line1\nline2" } },
    });
    assert.equal(created.status, 201);
    const alarm = await created.json();
    await stream.next();
    assert.ok(
      stream.text().endsWith(`id: ${alarm.id}\nevent: alarm\ndata: ${JSON.stringify(alarm)}\n\n`),
      stream.text(),
    );
    const second = await (await server.fetch("/api/v1/alarms", {
      method: "POST",
      token: publisher,
      json: { userId: "kim", type: "comment" },
    })).json();
    await using replay = await openSse(server.url + SUBSCRIBE, {
      token: user,
      lastEventId: alarm.id,
    });
    const replayed = await replay.waitFor((e) => e.event === "alarm", 1);
    assert.equal(replayed[0].id, second.id);
  });

  Deno.test(`[${transport}] refusals are the contract's JSON errors`, async () => {
    await using server = await startTestServer({ transport, maxConnectionsPerUser: 1 });
    const anonymous = await fetch(server.url + SUBSCRIBE);
    assert.equal(anonymous.status, 401);
    assert.equal((await anonymous.json()).error.code, "unauthorized");
    const user = await server.userToken("kim");
    await using first = await openSse(server.url + SUBSCRIBE, { token: user });
    await first.next();
    const refused = await fetch(server.url + SUBSCRIBE, {
      headers: { authorization: `Bearer ${user}` },
    });
    assert.equal(refused.status, 429);
    assert.ok(Number(refused.headers.get("retry-after")) >= 1);
    assert.equal((await refused.json()).error.code, "too_many_connections");
    const bad = await server.fetch("/api/v1/alarms", {
      method: "POST",
      token: await server.publisherToken(),
      body: "{not json",
      headers: { "content-type": "application/json" },
    });
    assert.equal(bad.status, 400);
    assert.equal((await bad.json()).error.code, "invalid_request");
    const big = await server.fetch("/api/v1/alarms", {
      method: "POST",
      token: await server.publisherToken(),
      json: { userId: "kim", type: "big", data: { pad: "x".repeat(70_000) } },
    });
    assert.equal(big.status, 413);
    assert.equal((await big.json()).error.code, "payload_too_large");
  });

  Deno.test(`[${transport}] heartbeats come from the shared tick; aborted streams leave nothing behind`, async () => {
    const clock = createFakeClock();
    await using server = await startTestServer({ transport, heartbeatMs: 1000 }, { clock });
    const user = await server.userToken("kim");
    const streams = await Promise.all(
      [1, 2, 3].map(() => openSse(server.url + SUBSCRIBE, { token: user })),
    );
    for (const s of streams) await s.next();
    clock.tick(1000);
    for (const s of streams) await s.waitFor((e) => e.event === "comment" && e.data === "ping", 1);
    assert.equal(server.server.connectionCount("kim"), 3);
    for (const s of streams) await s.close();
    for (let i = 0; i < 200 && server.server.connectionCount() > 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(server.server.connectionCount(), 0);
  });

  Deno.test(`[${transport}] shutdown ends open streams cleanly`, async () => {
    const server = await startTestServer({ transport });
    const stream = await openSse(server.url + SUBSCRIBE, { token: await server.userToken("kim") });
    await stream.next();
    const started = Date.now();
    await server.close();
    await stream.ended;
    await stream.close();
    assert.ok(Date.now() - started < 3000, `shutdown took ${Date.now() - started} ms`);
  });
}
