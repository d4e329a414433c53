import assert from "node:assert/strict";
import { createApp } from "../../src/http/app.ts";
import { EXAMPLES, openApiDocument } from "../../src/http/openapi.ts";
import { alarmSchema, batchSchema, newAlarmSchema } from "../../src/http/schemas.ts";
import { openSse } from "../helpers/sse_client.ts";
import { sample } from "../helpers/metrics.ts";
import { startTestServer } from "../helpers/test_server.ts";

Deno.test("healthz answers without a token; readyz reports KV reachable", async () => {
  await using server = await startTestServer();
  const health = await server.fetch("/healthz");
  assert.equal(health.status, 200);
  assert.match(health.headers.get("content-type")!, /application\/json/);
  assert.equal((await health.json()).status, "ok");
  const ready = await server.fetch("/readyz");
  assert.equal(ready.status, 200);
  assert.deepEqual(await ready.json(), { status: "ready" });
});

Deno.test("metrics count streams, alarms created, delivered and replayed, and latency", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  const user = await server.userToken("kim");
  const before = await (await server.fetch("/metrics")).text();
  assert.equal(sample(before, "alarmd_connections"), 0);
  assert.equal(sample(before, "alarmd_alarms_created_total"), 0);

  await using stream = await openSse(`${server.url}/api/v1/users/alarm/subscribe`, { token: user });
  await stream.next();
  const created = await server.fetch("/api/v1/alarms", {
    method: "POST",
    token: publisher,
    json: { userId: "kim", type: "comment" },
  });
  const first = await created.json();
  await server.fetch("/api/v1/alarms", {
    method: "POST",
    token: publisher,
    json: { userId: "kim", type: "comment" },
  }).then((r) => r.body?.cancel());
  await stream.waitFor((e) => e.event === "alarm", 2);
  await using replay = await openSse(`${server.url}/api/v1/users/alarm/subscribe`, {
    token: user,
    lastEventId: first.id,
  });
  await replay.waitFor((e) => e.event === "alarm", 1);

  const res = await server.fetch("/metrics");
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  assert.equal(sample(text, "alarmd_connections"), 2);
  assert.equal(sample(text, "alarmd_connections_opened_total"), 2);
  assert.equal(sample(text, "alarmd_alarms_created_total"), 2);
  assert.equal(sample(text, "alarmd_alarms_delivered_total"), 2);
  assert.equal(sample(text, "alarmd_alarms_replayed_total"), 1);
  assert.equal(sample(text, "alarmd_delivery_latency_seconds_count"), 2);
  assert.ok(sample(text, "alarmd_kv_commit_seconds_count") >= 1);
  assert.ok(sample(text, "alarmd_process_resident_memory_bytes") > 1_000_000);
  assert.match(text, /# TYPE alarmd_delivery_latency_seconds histogram/);
  assert.match(text, /alarmd_delivery_latency_seconds_bucket\{le="\+Inf"\} 2/);

  await stream.close();
  for (let i = 0; i < 100 && server.server.connectionCount() > 1; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  const after = await (await server.fetch("/metrics")).text();
  assert.equal(sample(after, 'alarmd_connections_closed_total{reason="client_closed"}'), 1);
});

Deno.test("openapi.json documents every route the app serves, with examples its schemas accept", async () => {
  await using server = await startTestServer();
  const res = await server.fetch("/openapi.json");
  assert.equal(res.status, 200);
  const doc = await res.json();
  assert.equal(doc.openapi, "3.1.0");
  assert.deepEqual(doc, JSON.parse(JSON.stringify(openApiDocument(doc.info.version))));

  const app = createApp({
    service: {} as never,
    hub: {} as never,
    presence: {} as never,
    authenticate: () => Promise.reject(new Error("unused")),
    ready: () => Promise.resolve(),
    version: "test",
    webAssets: new Map([["/index.html", { body: new Uint8Array(), contentType: "text/html" }], [
      "/docs.html",
      { body: new Uint8Array(), contentType: "text/html" },
    ]]),
  });
  const documented = new Set<string>();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of Object.keys(item as object)) {
      documented.add(`${method.toUpperCase()} ${path}`);
    }
  }
  const served = new Set(
    app.routes
      .map((r) => `${r.method} ${r.path.replace(/:(\w+)/g, "{$1}").replace(/(.)\/$/, "$1")}`),
  );
  for (const route of served) assert.ok(documented.has(route), `${route} is not documented`);
  for (const route of documented) {
    assert.ok(served.has(route), `${route} is documented but not served`);
  }

  assert.ok(newAlarmSchema.safeParse(EXAMPLES.newAlarm).success);
  assert.ok(batchSchema.safeParse(EXAMPLES.batch).success);
  assert.ok(alarmSchema.safeParse(EXAMPLES.alarm).success);
  const example = doc.paths["/api/v1/alarms"].post.requestBody.content["application/json"].example;
  const created = await server.fetch("/api/v1/alarms", {
    method: "POST",
    token: await server.publisherToken(),
    json: example,
  });
  assert.equal(created.status, 201);
  assert.ok(alarmSchema.safeParse(await created.json()).success);
});

Deno.test("docs and the inbox are served as HTML with a strict content security policy", async () => {
  await using server = await startTestServer();
  for (const path of ["/docs", "/"]) {
    const res = await server.fetch(path);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type")!, /^text\/html/);
    assert.match(res.headers.get("content-security-policy")!, /default-src 'self'/);
    assert.match(await res.text(), /<!doctype html>/i);
  }
  const client = await server.fetch("/alarmd-client.js");
  assert.equal(client.status, 200);
  assert.match(client.headers.get("content-type")!, /^text\/javascript/);
  assert.match(await client.text(), /export class AlarmdClient/);
});

Deno.test("every request gets an id, echoed and logged, and query tokens never reach the log", async () => {
  await using server = await startTestServer();
  const user = await server.userToken("kim");
  const listed = await fetch(`${server.url}/api/v1/users/alarms?access_token=${user}`, {
    headers: { "x-request-id": "req-42.a:b" },
  });
  assert.equal(listed.status, 200);
  assert.equal(listed.headers.get("x-request-id"), "req-42.a:b");
  await listed.body?.cancel();

  const created = await server.fetch("/api/v1/alarms", {
    method: "POST",
    token: await server.publisherToken(),
    json: { userId: "kim", type: "comment" },
    headers: { "x-request-id": "bad id with spaces" },
  });
  assert.equal(created.status, 201);
  const generated = created.headers.get("x-request-id")!;
  assert.match(generated, /^[0-9a-f-]{36}$/);
  await created.body?.cancel();

  await using stream = await openSse(
    `${server.url}/api/v1/users/alarm/subscribe?access_token=${user}`,
  );
  await stream.next();
  await stream.close();

  const requests = server.logs.filter((l) => l.msg === "request");
  assert.ok(
    requests.some((l) =>
      l.requestId === "req-42.a:b" && l.path === "/api/v1/users/alarms" && l.status === 200
    ),
  );
  assert.ok(requests.some((l) => l.requestId === generated && l.method === "POST"));
  assert.ok(requests.some((l) => l.path === "/api/v1/users/alarm/subscribe" && l.status === 200));
  const text = JSON.stringify(server.logs);
  assert.ok(!text.includes(user), "a token reached the log");
  assert.ok(!text.includes("access_token"), "a query string reached the log");
});
