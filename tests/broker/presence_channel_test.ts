/**
 * The presence channels: what crosses Redis is signed with a key of its own and checked, so
 * only well-formed messages of the deployment's members reach the mirror; the BroadcastChannel
 * between workers checks messages too.
 */
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { createBroadcastPresenceChannel } from "../../src/broker/broadcast_presence.ts";
import { createHmacSigner } from "../../src/broker/hmac_signer.ts";
import { createRedisBus, RejectedMessageError } from "../../src/broker/redis_bus.ts";
import { createRedisPresenceChannel } from "../../src/broker/redis_presence.ts";
import type { PresenceChannel, PresenceMessage } from "../../src/domain/presence.ts";
import { redisAvailable, startRedis } from "../helpers/redis.ts";
import { waitUntil } from "../helpers/wait.ts";

const skip = await redisAvailable();
const KEY = new Uint8Array(32).fill(7);
const CHANNEL = "alarmd:presence";

const alive = (from: string, seq: number): PresenceMessage => ({
  kind: "alive",
  from,
  seq,
  every: 10_000,
  total: 0,
  digest: 0,
});

function listen(channel: PresenceChannel) {
  const got: PresenceMessage[] = [];
  channel.onMessage((m) => got.push(m));
  return got;
}

Deno.test({
  name:
    "Redis presence: members hear each other in order; unsigned, foreign, bus-signed and malformed messages are refused",
  ignore: skip !== null,
  async fn() {
    await using redis = await startRedis();
    const errors: unknown[] = [];
    const a = createRedisPresenceChannel({ url: redis.url, key: KEY });
    const b = createRedisPresenceChannel({
      url: redis.url,
      key: KEY,
      onError: (e) => errors.push(e),
    });
    const raw = new Redis(redis.url);
    const bus = createRedisBus({ url: redis.url, key: KEY, channel: CHANNEL });
    try {
      const got = listen(b);
      await waitUntil(() => a.up && b.up, "both channels are up");
      for (let seq = 0; seq < 20; seq++) a.send(alive("a", seq));
      await waitUntil(() => got.length === 20, "b heard a's messages");
      assert.deepEqual(got.map((m) => m.seq), Array.from({ length: 20 }, (_, i) => i));
      assert.deepEqual(got[0], alive("a", 0));

      // Refused: no signature; another deployment's key; the bus's signature (the same secret,
      // used for another channel); a signed message of the wrong shape.
      await raw.publish(CHANNEL, JSON.stringify(alive("x", 0)));
      const foreign = createHmacSigner(new Uint8Array(32).fill(8), "presence");
      await raw.publish(CHANNEL, await foreign.sign(JSON.stringify(alive("x", 1))));
      bus.publish({ kind: "read", userId: "kim", ids: [], unread: 0 });
      await waitUntil(() => errors.length === 3, "the bus's message was refused");
      const own = createHmacSigner(KEY, "presence");
      await raw.publish(CHANNEL, await own.sign(JSON.stringify({ ...alive("x", 2), every: 0 })));
      await raw.publish(CHANNEL, await own.sign("{"));
      await raw.publish(CHANNEL, await own.sign(JSON.stringify(alive("x", 3))));
      await waitUntil(() => got.length === 21, "the one valid message arrives");
      assert.deepEqual(got[20], alive("x", 3));
      const reasons = errors.filter((e) => e instanceof RejectedMessageError).map((e) =>
        (e as RejectedMessageError).reason
      );
      assert.equal(reasons.length, 5, reasons.join("\n"));
      assert.match(reasons[0], /not an alarmd envelope/);
      assert.match(reasons[1], /bad HMAC/);
      assert.match(reasons[2], /bad HMAC/);
      assert.match(reasons[3], /bad shape: every/);
      assert.match(reasons[4], /not JSON/);

      // Down while Redis is, up again after.
      const states: boolean[] = [];
      a.onState((up) => states.push(up));
      await redis.kill();
      await waitUntil(() => !a.up, "a is down with Redis");
      await redis.restart();
      await waitUntil(() => a.up, "a is up again", 10_000);
      assert.deepEqual(states, [false, true]);
    } finally {
      raw.disconnect();
      await bus.close();
      await a.close();
      await b.close();
    }
  },
});

Deno.test("BroadcastChannel presence: other channels hear valid messages; malformed ones are reported", async () => {
  const errors: unknown[] = [];
  const name = `presence-test-${crypto.randomUUID()}`;
  const a = createBroadcastPresenceChannel({ channel: name });
  const b = createBroadcastPresenceChannel({ channel: name, onError: (e) => errors.push(e) });
  const stray = new BroadcastChannel(name);
  try {
    assert.equal(a.up, true);
    const got = listen(b);
    a.send(alive("a", 0));
    stray.postMessage({ kind: "alive", from: "s", seq: "1" });
    a.send(alive("a", 1));
    await waitUntil(() => got.length === 2, "b heard a");
    assert.deepEqual(got.map((m) => m.seq), [0, 1]);
    await waitUntil(() => errors.length === 1, "the stray message was reported");
    assert.match(String(errors[0]), /seq/);
  } finally {
    stray.close();
    await a.close();
    await b.close();
  }
  assert.equal(a.up, false);
});
