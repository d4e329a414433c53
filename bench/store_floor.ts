/**
 * The floor under alarmd's publish→deliver latency: the KV store alone, with no HTTP, no streams
 * and no load clients in the process. Creates arrive at R per second (evenly spaced, one alarm
 * each, to random users among 10,000, as `deno task bench`'s targeted scenario sends them) and
 * each one's latency is from its call to `create` until its group commit is durable, which is
 * when alarmd answers 201 and delivers. Prints p50/p90/p99/max and CPU per kind of thread.
 * Then the fan-out's floor: one alarm to each of 10,000 other users, in 20 creates of 500 issued
 * at once (as the bench's batch requests arrive), timed until the last is durable. Then the
 * replay's: reading 1,000 alarms of one user after a cursor, in pages of 500, the first time in
 * the process (its code not yet compiled) and the median of five more.
 *
 *   deno run --unstable-kv -A bench/store_floor.ts [--rate 5000] [--seconds 10] [--dir /dev/shm]
 *
 * `--dir` puts the KV file elsewhere: on tmpfs (`/dev/shm`) nothing is fsynced, which separates
 * the disk's share from SQLite's and the JS thread's.
 */
import { systemClock } from "../src/domain/ports.ts";
import { createKvAlarmStore } from "../src/storage/kv_alarm_store.ts";
import { cpuByKindSince, ticksByKind } from "./proc_cpu.ts";

const args = new Map<string, string>();
for (let i = 0; i < Deno.args.length; i += 2) {
  args.set(Deno.args[i].replace(/^--/, ""), Deno.args[i + 1]);
}
const rate = Number(args.get("rate") ?? 5000);
const seconds = Number(args.get("seconds") ?? 10);
const users = 10_000;

const dir = await Deno.makeTempDir({ prefix: "alarmd-store-floor-", dir: args.get("dir") });
const path = `${dir}/floor.kv`;
const kv = await Deno.openKv(path);
const readKv = await Deno.openKv(path);
const store = createKvAlarmStore(kv, {
  readKv,
  clock: systemClock,
  retentionMs: 30 * 86_400_000,
  maxAlarmsPerUser: 1000,
});

const create = (i: number) =>
  store.create([{
    alarm: {
      userId: `user-${Math.floor(Math.random() * users)}`,
      type: "bench",
      data: { n: i, t: Date.now() },
    },
  }]);

/** Creates `count` alarms evenly spaced at `rate` per second; records each one's latency. */
async function createAtRate(count: number, record: number[] | null) {
  const started = performance.now();
  const pending: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    const due = started + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const sent = performance.now();
    pending.push(
      create(i).then(() => {
        record?.push(performance.now() - sent);
      }),
    );
  }
  await Promise.all(pending);
  return performance.now() - started;
}

// A second of warm-up at the same rate, so that JIT and SQLite's page cache settle first.
await createAtRate(rate, null);
const latencies: number[] = [];
const before = ticksByKind([Deno.pid]);
const wallMs = await createAtRate(rate * seconds, latencies);
const cpu = cpuByKindSince(before, [Deno.pid], wallMs);
latencies.sort((a, b) => a - b);
const at = (p: number) =>
  latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))];
const result = {
  rate,
  achievedRate: Math.round((latencies.length * 1000) / wallMs),
  kvDir: args.get("dir") ?? "(temp dir)",
  p50Ms: +at(0.5).toFixed(2),
  p90Ms: +at(0.9).toFixed(2),
  p99Ms: +at(0.99).toFixed(2),
  maxMs: +latencies[latencies.length - 1].toFixed(2),
  cpuJsPercent: cpu.js,
  cpuKvPercent: cpu.kv,
  cpuGcPercent: cpu.gc,
};
const fanoutBefore = ticksByKind([Deno.pid]);
const fanoutStarted = performance.now();
await Promise.all(
  Array.from({ length: 20 }, (_, batch) =>
    store.create(Array.from({ length: 500 }, (_, i) => ({
      alarm: { userId: `fan-${batch * 500 + i}`, type: "fanout", data: { t: Date.now() } },
    })))),
);
const fanoutMs = performance.now() - fanoutStarted;
const fanoutCpu = cpuByKindSince(fanoutBefore, [Deno.pid]);
Object.assign(result, {
  fanoutMs: Math.round(fanoutMs),
  fanoutCpuJsMs: fanoutCpu.js,
  fanoutCpuKvMs: fanoutCpu.kv,
  fanoutCpuGcMs: fanoutCpu.gc,
});
// The replay's floor: reading 1,000 alarms after a cursor, in the live stream's pages of 500.
const replayUser = "replay-floor";
const firstIds = await store.create([{ alarm: { userId: replayUser, type: "r", data: {} } }]);
await store.create(Array.from({ length: 1000 }, (_, i) => ({
  alarm: { userId: replayUser, type: "r", data: { i } },
})));
const replayTimes: number[] = [];
for (let run = 0; run < 6; run++) {
  const started = performance.now();
  let cursor: string | null = firstIds[0].alarm.id;
  for (let read = 0; read < 1000;) {
    const page = await store.listAfter(replayUser, cursor, 500);
    if (page.length === 0) break;
    read += page.length;
    cursor = page[page.length - 1].id;
  }
  replayTimes.push(performance.now() - started);
}
const laterReads = replayTimes.slice(1).sort((a, b) => a - b);
Object.assign(result, {
  replayReadFirstMs: +replayTimes[0].toFixed(1),
  replayReadMs: +laterReads[2].toFixed(1),
});
for (const [k, v] of Object.entries(result)) console.log(`  ${k.padEnd(18)} ${v}`);
console.log(JSON.stringify(result));
await store.close();
kv.close();
readKv.close();
await Deno.remove(dir, { recursive: true });
