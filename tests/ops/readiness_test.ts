/**
 * GET /readyz: 503 only when this instance cannot serve; a shared dependency's outage (Redis) is
 * 200 degraded, so that it does not drain every instance at once. Polling it costs no writes.
 */
import assert from "node:assert/strict";
import { kvKeys } from "../../src/storage/kv_keys.ts";
import { redisAvailable, startRedis } from "../helpers/redis.ts";
import { sample } from "../helpers/metrics.ts";
import { startTestServer } from "../helpers/test_server.ts";

const skipRedis = await redisAvailable();

Deno.test({
  name:
    "with Redis down, readyz is 200 degraded naming Redis, creates still answer 201, and it is ready again once Redis is back",
  ignore: skipRedis !== null,
  async fn() {
    await using redis = await startRedis();
    await using server = await startTestServer({ redisUrl: redis.url });
    const healthy = await server.fetch("/readyz");
    assert.equal(healthy.status, 200);
    assert.deepEqual(await healthy.json(), { status: "ready" });

    await redis.kill();
    const degraded = await server.fetch("/readyz");
    assert.equal(degraded.status, 200);
    assert.match(degraded.headers.get("content-type")!, /application\/json/);
    const body = await degraded.json();
    assert.equal(body.status, "degraded");
    assert.equal(body.reasons.length, 1);
    assert.match(body.reasons[0], /Redis/);

    const publisher = await server.publisherToken();
    for (let i = 0; i < 3; i++) {
      const created = await server.fetch("/api/v1/alarms", {
        method: "POST",
        token: publisher,
        json: { userId: "kim", type: "during.outage", data: { i } },
      });
      assert.equal(created.status, 201);
      await created.body?.cancel();
    }

    await redis.restart();
    const deadline = Date.now() + 10_000;
    let last: unknown;
    while (Date.now() < deadline) {
      const res = await server.fetch("/readyz");
      last = await res.json();
      if (res.status === 200 && (last as { status: string }).status === "ready") break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(last, { status: "ready" });
  },
});

Deno.test("a thousand readyz calls write nothing to KV", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  const created = await server.fetch("/api/v1/alarms", {
    method: "POST",
    token: publisher,
    json: { userId: "kim", type: "before" },
  });
  assert.equal(created.status, 201);
  await created.body?.cancel();
  const metrics = async () => await (await server.fetch("/metrics")).text();
  const before = await metrics();

  for (let round = 0; round < 20; round++) {
    const answers = await Promise.all(Array.from({ length: 50 }, () => server.fetch("/readyz")));
    for (const res of answers) {
      assert.equal(res.status, 200);
      await res.body?.cancel();
    }
  }

  const after = await metrics();
  const commits = (text: string) => sample(text, "alarmd_kv_commit_seconds_count");
  assert.ok(commits(after) - commits(before) <= 2, `${commits(after) - commits(before)} commits`);
  assert.equal(sample(after, "alarmd_kv_errors_total"), 0);
  // Seen from outside the process too: the probe key was never written.
  const kv = await Deno.openKv(server.kvPath);
  try {
    assert.equal((await kv.get(kvKeys.probe)).versionstamp, null, "readyz wrote a probe");
  } finally {
    kv.close();
  }
});
