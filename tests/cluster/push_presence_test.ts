/**
 * The push policy across instances: a stream open on B keeps A from pushing; once B is killed,
 * A pushes again as soon as presence drops B. Real processes, a real redis-server, and the test
 * push service.
 */
import assert from "node:assert/strict";
import { startServeProcess } from "../helpers/process.ts";
import { redisAvailable, startRedis } from "../helpers/redis.ts";
import { openSse } from "../helpers/sse_client.ts";
import { startTestPushService } from "../helpers/test_push_service.ts";
import { publisherToken, userToken } from "../helpers/test_server.ts";
import { delay, waitUntil } from "../helpers/wait.ts";

const skip = await redisAvailable();
const SUBSCRIBE = "/api/v1/users/alarm/subscribe";

async function post(url: string, token: string, body: unknown): Promise<Response> {
  return await fetch(url, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

Deno.test({
  name: "offline across instances: a stream on B means no push from A; B killed → A pushes again",
  ignore: skip !== null,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "alarmd-push-presence-" });
    await using redis = await startRedis();
    await using service = await startTestPushService();
    const env = {
      ALARMD_KV_PATH: `${dir}/shared.kv`,
      ALARMD_REDIS_URL: redis.url,
      ALARMD_VAPID_SUBJECT: "mailto:ops@example.com",
      ALARMD_PUSH_ALLOWED_ORIGINS: service.origin,
    };
    await using a = await startServeProcess(env);
    // B says it is alive every 300 ms, so A drops it about a second after it dies.
    const b = await startServeProcess({ ...env, ALARMD_HEARTBEAT_MS: "300" });
    try {
      const kim = await userToken("kim");
      const publisher = await publisherToken("app");
      const sub = await service.subscribe();
      const registered = await post(`${a.url}/api/v1/users/push-subscriptions`, kim, sub);
      assert.equal(registered.status, 201, await registered.text());
      const stream = await openSse(b.url + SUBSCRIBE, { token: kim });
      await stream.next();
      await waitUntil(
        async () => {
          const res = await fetch(`${a.url}/api/v1/presence?userId=kim`, {
            headers: { authorization: `Bearer ${publisher}` },
          });
          return res.status === 200 && (await res.json()).users[0].online === true;
        },
        "A sees kim's stream on B",
        10_000,
      );

      const notification = { title: "while online" };
      const online = await post(`${a.url}/api/v1/alarms`, publisher, {
        userId: "kim",
        type: "t",
        notification,
      });
      assert.equal(online.status, 201);
      await stream.waitFor((e) => e.event === "alarm", 1);
      await delay(1000);
      assert.equal(service.received().length, 0, "kim is online on B: no push");

      await b.stop("SIGKILL");
      await stream.close();
      const killedAt = Date.now();
      let pushedAt = 0;
      await waitUntil(
        async () => {
          const res = await post(`${a.url}/api/v1/alarms`, publisher, {
            userId: "kim",
            type: "t",
            notification: { title: "after B died" },
          });
          assert.equal(res.status, 201);
          await delay(300);
          pushedAt = Date.now();
          return service.received().length > 0;
        },
        "A pushes once B no longer counts",
        30_000,
      );
      assert.ok(pushedAt - killedAt < 30_000);
      const titles = service.received().map((p) => JSON.parse(p.payload).title);
      assert.ok(titles.every((t) => t === "after B died"), titles.join());
    } finally {
      await b.stop("SIGKILL").catch(() => {});
      await Deno.remove(dir, { recursive: true });
    }
  },
});
