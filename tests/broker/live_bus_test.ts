import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { createBroadcastBus } from "../../src/broker/broadcast_bus.ts";
import { createMemoryBus } from "../../src/broker/memory_bus.ts";
import { createRedisBus, RejectedMessageError } from "../../src/broker/redis_bus.ts";
import type { AlarmChange } from "../../src/domain/ports.ts";
import { redisAvailable, startRedis, whenReady } from "../helpers/redis.ts";
import { change, liveBusContract } from "./live_bus_contract.ts";
import { waitUntil } from "../helpers/wait.ts";

liveBusContract("memory bus", () => {
  const bus = createMemoryBus();
  return Promise.resolve({ a: bus, b: bus, separate: false, close: () => bus.close() });
});

let channels = 0;
liveBusContract("BroadcastChannel bus", () => {
  const channel = `alarmd-test-${++channels}`;
  const a = createBroadcastBus({ channel });
  const b = createBroadcastBus({ channel });
  return Promise.resolve({
    a,
    b,
    separate: true,
    close: async () => {
      await a.close();
      await b.close();
    },
  });
});

const skipRedis = await redisAvailable();
/** One deployment's shared key, as every instance loads it from KV. */
const KEY = crypto.getRandomValues(new Uint8Array(32));

if (!skipRedis) {
  liveBusContract("Redis bus", async () => {
    const redis = await startRedis();
    const a = createRedisBus({ url: redis.url, key: KEY });
    const b = createRedisBus({ url: redis.url, key: KEY });
    await whenReady(a, b);
    return {
      a,
      b,
      separate: true,
      close: async () => {
        await a.close();
        await b.close();
        await redis.stop();
      },
    };
  });
}

Deno.test({
  name: "Redis bus: an outage is reported as a gap once Redis is back, and fan-out resumes",
  ignore: skipRedis !== null,
  async fn() {
    const redis = await startRedis();
    const errors: unknown[] = [];
    const a = createRedisBus({ url: redis.url, key: KEY, onError: (e) => errors.push(e) });
    const b = createRedisBus({ url: redis.url, key: KEY, onError: (e) => errors.push(e) });
    try {
      await whenReady(a, b);
      let gaps = 0;
      b.onGap(() => gaps++);
      const heard: string[] = [];
      b.subscribe((c) => c.kind === "created" && heard.push(c.alarm.id));

      await redis.kill();
      await assert.rejects(a.ready(), /Redis/);
      const lost = change();
      a.publish(lost); // Redis is down: this one cannot cross (it would be in KV, for real)
      await redis.restart();
      await waitUntil(() => gaps === 1, "a gap reported after the outage", 8000);
      // b is back; a reconnects on its own schedule.
      let aReady = false;
      const poll = setInterval(() => a.ready().then(() => (aReady = true), () => {}), 20);
      try {
        await waitUntil(() => aReady, "the publisher reconnected", 8000);
      } finally {
        clearInterval(poll);
      }
      const after = change();
      a.publish(after);
      await waitUntil(() => heard.includes(after.alarm.id), "fan-out resumed");
      assert.ok(!heard.includes(lost.alarm.id), "pub/sub does not replay; the gap says so");
    } finally {
      await a.close();
      await b.close();
      await redis.stop();
    }
  },
});

Deno.test({
  name:
    "Redis bus: a message that is not signed with the deployment's key, or is malformed, is reported and becomes a gap, never a delivery",
  ignore: skipRedis !== null,
  async fn() {
    const redis = await startRedis();
    const rejected: RejectedMessageError[] = [];
    const other: unknown[] = [];
    const onError = (e: unknown) =>
      e instanceof RejectedMessageError ? rejected.push(e) : other.push(e);
    const a = createRedisBus({ url: redis.url, key: KEY, onError });
    const b = createRedisBus({ url: redis.url, key: KEY, onError });
    // Another deployment (or an attacker) on the same Redis, with a key of its own.
    const stranger = createRedisBus({
      url: redis.url,
      key: crypto.getRandomValues(new Uint8Array(32)),
      onError: () => {},
    });
    const raw = new Redis(redis.url);
    try {
      await whenReady(a, b, stranger);
      const heard: AlarmChange[] = [];
      b.subscribe((c) => heard.push(c));
      let gaps = 0;
      b.onGap(() => gaps++);

      const forged = change("kim");
      stranger.publish(forged);
      await raw.publish("alarmd:changes", JSON.stringify({ from: "x", change: forged }));
      await raw.publish("alarmd:changes", "v1." + "0".repeat(64) + ".{}");
      await raw.publish("alarmd:changes", "not even JSON");
      const real = change("kim");
      a.publish(real);

      await waitUntil(() => heard.length === 1, "the real change heard");
      assert.deepEqual(heard, [real], "only the authentic change is delivered");
      // b and a each rejected the four foreign messages; the stranger's own copy is its echo.
      await waitUntil(() => rejected.length === 8, "every foreign message rejected");
      assert.equal(gaps, 4, "each rejection is a gap for b");
      const reasons = rejected.map((e) => e.reason);
      assert.equal(reasons.filter((r) => /bad HMAC/.test(r)).length, 4, reasons.join("; "));
      assert.equal(reasons.filter((r) => /not an alarmd envelope/.test(r)).length, 4);
      assert.ok(rejected.some((e) => e.preview === "not even JSON"), "the message is named");
      assert.deepEqual(other, []);
    } finally {
      raw.disconnect();
      await a.close();
      await b.close();
      await stranger.close();
      await redis.stop();
    }
  },
});

Deno.test({
  name:
    "Redis bus: a signed message of the wrong shape is rejected after the HMAC check, and delivery keeps arrival order",
  ignore: skipRedis !== null,
  async fn() {
    const redis = await startRedis();
    const rejected: RejectedMessageError[] = [];
    const b = createRedisBus({
      url: redis.url,
      key: KEY,
      onError: (e) => e instanceof RejectedMessageError && rejected.push(e),
    });
    const raw = new Redis(redis.url);
    try {
      await whenReady(b);
      const heard: string[] = [];
      b.subscribe((c) => heard.push(c.kind === "created" ? c.alarm.id : c.kind));
      let gaps = 0;
      b.onGap(() => gaps++);
      const good = change("kim");
      const badShapes: unknown[] = [
        { kind: "created", prevId: null, alarm: { ...good.alarm, userId: 42 } },
        { kind: "created", prevId: null, alarm: { ...good.alarm, id: "a\nb" } },
        { kind: "created", prevId: null, alarm: { ...good.alarm, type: "bad type" } },
        { kind: "created", prevId: null, alarm: { ...good.alarm, data: [] } },
        { kind: "read", userId: "kim", ids: [1], unread: 0 },
        { kind: "deleted", userId: "kim", ids: ["x"], unread: -1 },
        { kind: "deleted", userId: "kim", ids: ["x"], unread: 1.5 },
        { kind: "purged", userId: "kim" },
      ];
      // Sent back to back with good ones between: verification is asynchronous, order is not.
      const sent: string[] = [];
      for (const [i, shape] of badShapes.entries()) {
        const ok = change("kim");
        sent.push(ok.alarm.id);
        await raw.publish("alarmd:changes", await sign({ from: "peer", change: ok }));
        await raw.publish("alarmd:changes", await sign({ from: "peer", change: shape }));
        if (i === 3) await raw.publish("alarmd:changes", await sign({ from: "peer" }));
      }
      await waitUntil(() => heard.length === sent.length, "the good ones heard");
      await waitUntil(() => rejected.length === badShapes.length + 1, "the bad ones rejected");
      assert.deepEqual(heard, sent, "delivered in arrival order");
      assert.equal(gaps, badShapes.length + 1);
      for (const e of rejected) assert.match(e.reason, /^bad shape: /);
      assert.match(rejected.map((e) => e.reason).join("; "), /alarm\.userId/);
    } finally {
      raw.disconnect();
      await b.close();
      await redis.stop();
    }
  },
});

/** A message as a peer instance of this deployment would publish it. */
async function sign(envelope: unknown): Promise<string> {
  const payload = JSON.stringify(envelope);
  const key = await crypto.subtle.importKey("raw", KEY, { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  const mac = new Uint8Array(
    await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(payload)),
  );
  return `v1.${Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join("")}.${payload}`;
}
