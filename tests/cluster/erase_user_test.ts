/** Erasing a user through one instance ends their streams on every instance (Redis fan-out). */
import assert from "node:assert/strict";
import { startServeProcess } from "../helpers/process.ts";
import { redisAvailable, startRedis } from "../helpers/redis.ts";
import { openSse } from "../helpers/sse_client.ts";
import { publisherToken, userToken } from "../helpers/test_server.ts";
import { within } from "../helpers/wait.ts";

const skip = await redisAvailable();

Deno.test({
  name: "an erasure through A ends the user's stream on B, and B lists nothing of theirs",
  ignore: skip !== null,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "alarmd-erase-" });
    await using redis = await startRedis();
    const env = { ALARMD_KV_PATH: `${dir}/shared.kv`, ALARMD_REDIS_URL: redis.url };
    try {
      await using a = await startServeProcess(env);
      await using b = await startServeProcess(env);
      const publisher = await publisherToken("app");
      const kim = await userToken("kim");
      const created = await fetch(`${a.url}/api/v1/alarms`, {
        method: "POST",
        headers: { authorization: `Bearer ${publisher}`, "content-type": "application/json" },
        body: JSON.stringify({ userId: "kim", type: "t" }),
      });
      assert.equal(created.status, 201);
      await using onB = await openSse(`${b.url}/api/v1/users/alarm/subscribe`, { token: kim });
      await onB.waitFor((e) => e.event === "connect", 1);
      const erased = await fetch(`${a.url}/api/v1/user-data/kim`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${publisher}` },
      });
      assert.equal(erased.status, 204);
      await within(5000, onB.ended, "the stream on B ends");
      const listed = await fetch(`${b.url}/api/v1/users/alarms`, {
        headers: { authorization: `Bearer ${kim}` },
      });
      assert.deepEqual((await listed.json()).items, []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
