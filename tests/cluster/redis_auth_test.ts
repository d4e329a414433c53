/**
 * What crosses Redis is authenticated: two instances on one KV file and one real redis-server,
 * and messages published on alarmd's channel by something that is not an alarmd instance.
 */
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { kvKeys } from "../../src/storage/kv_keys.ts";
import { redisAvailable, startRedis } from "../helpers/redis.ts";
import { openSse } from "../helpers/sse_client.ts";
import { startTestServer } from "../helpers/test_server.ts";

const skip = await redisAvailable();
const CHANNEL = "alarmd:changes";
const FORGED_ID = "7ZZZZZZZZZZZZZZZZZZZZZZZZZ";

async function hmacHex(key: Uint8Array<ArrayBuffer>, payload: string): Promise<string> {
  const k = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  const mac = await crypto.subtle.sign("HMAC", k, new TextEncoder().encode(payload));
  return Array.from(new Uint8Array(mac), (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test({
  name:
    "a message on the Redis channel that alarmd did not sign is logged and never reaches a stream; the next real alarm does",
  ignore: skip !== null,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "alarmd-redis-auth-" });
    await using redis = await startRedis();
    const raw = new Redis(redis.url);
    try {
      await using a = await startTestServer({ redisUrl: redis.url }, { dir });
      await using b = await startTestServer({ redisUrl: redis.url }, { dir });
      const publisher = await a.publisherToken();
      const create = async (n: number) => {
        const res = await a.fetch("/api/v1/alarms", {
          method: "POST",
          token: publisher,
          json: { userId: "kim", type: "real", data: { n } },
        });
        assert.equal(res.status, 201);
        return (await res.json()).id as string;
      };
      await using stream = await openSse(`${b.url}/api/v1/users/alarm/subscribe`, {
        token: await b.userToken("kim"),
      });
      assert.equal((await stream.next()).event, "connect");
      const first = await create(1);
      assert.equal((await stream.next()).id, first);

      const alarm = {
        id: FORGED_ID,
        userId: "kim",
        type: "forged",
        data: { text: "reset your password at evil.example" },
        createdAt: new Date().toISOString(),
        readAt: null,
      };
      const change = { kind: "created", prevId: null, alarm };
      // 1. The envelope alarmd used to send, unsigned.
      await raw.publish(CHANNEL, JSON.stringify({ from: "intruder", change }));
      // 2. The current format with a made-up HMAC.
      const payload = JSON.stringify({ from: "intruder", change });
      await raw.publish(CHANNEL, `v1.${"ab".repeat(32)}.${payload}`);
      // 3. Signed with the deployment's key (read from the shared KV), but of the wrong shape:
      // the HMAC passes, the shape check does not.
      const kv = await Deno.openKv(a.kvPath);
      const key = (await kv.get<Uint8Array<ArrayBuffer>>(kvKeys.busKey)).value!;
      kv.close();
      const bad = JSON.stringify({
        from: "peer",
        change: { ...change, alarm: { ...alarm, userId: 7 } },
      });
      await raw.publish(CHANNEL, `v1.${await hmacHex(key, bad)}.${bad}`);

      const rejections = () =>
        b.logs.filter((l) => /rejected a message from Redis/.test(String(l.msg)));
      const deadline = Date.now() + 5000;
      while (rejections().length < 3 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 10));
      }
      const logged = rejections();
      assert.equal(logged.length, 3, JSON.stringify(b.logs.slice(-10)));
      assert.deepEqual(logged.map((l) => l.level), ["error", "error", "error"]);
      assert.match(String(logged[0].reason), /not an alarmd envelope/);
      assert.match(String(logged[0].rejected), new RegExp(FORGED_ID), "the log names the message");
      assert.match(String(logged[1].reason), /bad HMAC/);
      assert.match(String(logged[2].reason), /bad shape: alarm\.userId/);

      const second = await create(2);
      const next = await stream.next((e) => e.event === "alarm");
      assert.equal(next.id, second, "the next alarm on the stream is the real one");
      const alarms = stream.events.filter((e) => e.event === "alarm");
      assert.deepEqual(alarms.map((e) => e.id), [first, second]);
      assert.ok(!stream.text().includes("evil.example"), "nothing of the forgery was sent");
    } finally {
      raw.disconnect();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
