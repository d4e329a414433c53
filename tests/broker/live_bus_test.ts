import assert from "node:assert/strict";
import { createBroadcastBus } from "../../src/broker/broadcast_bus.ts";
import { createMemoryBus } from "../../src/broker/memory_bus.ts";
import { createRedisBus } from "../../src/broker/redis_bus.ts";
import { redisAvailable, startRedis } from "../helpers/redis.ts";
import { change, eventually, liveBusContract } from "./live_bus_contract.ts";

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

if (!skipRedis) {
  liveBusContract("Redis bus", async () => {
    const redis = await startRedis();
    const a = createRedisBus({ url: redis.url });
    const b = createRedisBus({ url: redis.url });
    await Promise.all([a.ready(), b.ready()]);
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
    const a = createRedisBus({ url: redis.url, onError: (e) => errors.push(e) });
    const b = createRedisBus({ url: redis.url, onError: (e) => errors.push(e) });
    try {
      await Promise.all([a.ready(), b.ready()]);
      let gaps = 0;
      b.onGap(() => gaps++);
      const heard: string[] = [];
      b.subscribe((c) => c.kind === "created" && heard.push(c.alarm.id));

      await redis.kill();
      await assert.rejects(a.ready(), /Redis/);
      const lost = change();
      a.publish(lost); // Redis is down: this one cannot cross (it would be in KV, for real)
      await redis.restart();
      await eventually(() => gaps === 1, "a gap reported after the outage", 8000);
      // b is back; a reconnects on its own schedule.
      let aReady = false;
      const poll = setInterval(() => a.ready().then(() => (aReady = true), () => {}), 20);
      try {
        await eventually(() => aReady, "the publisher reconnected", 8000);
      } finally {
        clearInterval(poll);
      }
      const after = change();
      a.publish(after);
      await eventually(() => heard.includes(after.alarm.id), "fan-out resumed");
      assert.ok(!heard.includes(lost.alarm.id), "pub/sub does not replay; the gap says so");
    } finally {
      await a.close();
      await b.close();
      await redis.stop();
    }
  },
});
