/**
 * Several alarmd processes behind a load balancer: one shared KV file, Redis for fan-out.
 * Real processes, a real redis-server on a random loopback port.
 */
import assert from "node:assert/strict";
import type { AlarmdProcess } from "../helpers/process.ts";
import { startServeProcess } from "../helpers/process.ts";
import { redisAvailable, startRedis } from "../helpers/redis.ts";
import { openSse } from "../helpers/sse_client.ts";
import { publisherToken, userToken } from "../helpers/test_server.ts";

const skip = await redisAvailable();
const SUBSCRIBE = "/api/v1/users/alarm/subscribe";

function instance(kvPath: string, redisUrl: string) {
  return startServeProcess({ ALARMD_KV_PATH: kvPath, ALARMD_REDIS_URL: redisUrl });
}

async function create(url: string, publisher: string, n: number) {
  const res = await fetch(`${url}/api/v1/alarms`, {
    method: "POST",
    headers: { authorization: `Bearer ${publisher}`, "content-type": "application/json" },
    body: JSON.stringify({ userId: "kim", type: "multi", data: { n } }),
  });
  assert.equal(res.status, 201, await res.clone().text());
  return (await res.json()).id as string;
}

Deno.test({
  name:
    "two instances on one KV and Redis: alarms from both reach every stream once, in order, through an outage and a crash",
  ignore: skip !== null,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "alarmd-cluster-" });
    await using redis = await startRedis();
    const procs: AlarmdProcess[] = [];
    try {
      const a = await instance(`${dir}/shared.kv`, redis.url);
      const b = await instance(`${dir}/shared.kv`, redis.url);
      procs.push(a, b);
      const user = await userToken("kim");
      const publisher = await publisherToken("app");
      await using onB = await openSse(b.url + SUBSCRIBE, { token: user });
      await using onA = await openSse(a.url + SUBSCRIBE, { token: user });
      await onB.next();
      await onA.next();

      // 1. Creates on both instances, concurrently.
      const ids = await Promise.all(
        Array.from({ length: 60 }, (_, n) => create(n % 2 ? a.url : b.url, publisher, n)),
      );
      for (const stream of [onA, onB]) {
        const got = await stream.waitFor((e) => e.event === "alarm", 60);
        const received = got.map((e) => e.id!);
        assert.deepEqual(received, [...ids].sort(), "every alarm once, in id order");
      }

      // 2. Redis goes down: creates still succeed (KV), readiness says degraded (a shared Redis
      // must not take every instance out of the load balancer), and after Redis returns the
      // other instance's streams catch up from KV: nothing lost, nothing twice.
      await redis.kill();
      const ready = await fetch(`${a.url}/readyz`);
      assert.equal(ready.status, 200);
      const readiness = await ready.json();
      assert.equal(readiness.status, "degraded");
      assert.match(readiness.reasons.join(" "), /Redis/);
      const during = [];
      for (let n = 0; n < 10; n++) during.push(await create(a.url, publisher, 100 + n));
      await redis.restart();
      const all = [...ids, ...during].sort();
      const onBNow = await onB.waitFor((e) => e.event === "alarm", 70, 10_000);
      assert.deepEqual(onBNow.map((e) => e.id), all, "B caught up after the outage");
      const onANow = await onA.waitFor((e) => e.event === "alarm", 70);
      assert.deepEqual(onANow.map((e) => e.id), all);

      // 3. Instance A crashes: its client reconnects to B with Last-Event-ID and replays what
      // was created meanwhile; B's own stream carries on.
      const lastSeen = onANow.at(-1)!.id!;
      await a.stop("SIGKILL");
      await onA.close();
      const afterCrash = [await create(b.url, publisher, 200), await create(b.url, publisher, 201)];
      await using moved = await openSse(b.url + SUBSCRIBE, { token: user, lastEventId: lastSeen });
      const replayed = await moved.waitFor((e) => e.event === "alarm", 2);
      assert.deepEqual(replayed.map((e) => e.id), afterCrash);
      const onBFinal = await onB.waitFor((e) => e.event === "alarm", 72);
      assert.deepEqual(onBFinal.map((e) => e.id), [...all, ...afterCrash]);
      assert.ok(b.stderr().includes("redis reconnected"), "B logged the outage's end");
    } finally {
      for (const p of procs) await p.stop("SIGTERM");
      await Deno.remove(dir, { recursive: true });
    }
  },
});
