/**
 * What one Deno KV operation costs, per thread: wall time, CPU on the JS thread and on KV's
 * SQLite thread (from /proc/self/task, Linux only), for single sets, alarm-shaped atomics (4
 * mutations), gets, and 100-alarm atomics. These fixed costs are why group commit matters.
 * Then alarms to random users in key layout 1 against layout 2 (kv_keys.ts), what the index
 * entries cost in commits of 250 ("shape" rows: layout 2, layout 3 without the unread index, and
 * alarm and head alone), a read issued during a big commit on
 * the writing connection and on a second one, and what staging one `set` costs on the JS thread
 * by kind of value ("setcost" rows).
 *
 *   deno run --unstable-kv -A bench/kv_ops.ts
 */
import { kvKeys } from "../src/storage/kv_keys.ts";
import { threadTicks, TICKS_PER_SECOND } from "./proc_cpu.ts";

/** Layout 2's unread index (layout 3 dropped it; kv_keys.ts). */
const unreadKey = (user: string, id: string): Deno.KvKey => ["U", user, "n", id];

const dir = await Deno.makeTempDir({ prefix: "alarmd-kv-ops-" });
const kv = await Deno.openKv(`${dir}/ops.kv`);
const TICK_US = 1_000_000 / TICKS_PER_SECOND;

function cpuByThread(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const { name, ticks } of threadTicks("self")) out[name] = (out[name] ?? 0) + ticks;
  return out;
}

const value = new TextEncoder().encode(JSON.stringify({
  id: "01HZZZZZZZZZZZZZZZZZZZZZZZ",
  userId: "u1",
  type: "bench",
  data: { t: 1 },
  createdAt: new Date().toISOString(),
  readAt: null,
}));
const head = { last: "01HZ", floor: null, total: 1, unread: 1 };

async function measure(label: string, n: number, op: (i: number) => Promise<unknown>) {
  const before = cpuByThread();
  const started = performance.now();
  for (let i = 0; i < n; i++) await op(i);
  const wallUs = (performance.now() - started) * 1000 / n;
  const after = cpuByThread();
  const cpu = Object.entries(after)
    .map(([thread, ticks]) => [thread, ((ticks - (before[thread] ?? 0)) * TICK_US) / n] as const)
    .filter(([, us]) => us > 0)
    .map(([thread, us]) => `${thread} ${us.toFixed(0)} µs`);
  console.log(`${label.padEnd(26)} wall ${wallUs.toFixed(0)} µs/op; CPU per op: ${cpu.join(", ")}`);
}

const alarm = (a: Deno.AtomicOperation, user: string, id: string) =>
  a.set(["a", user, id], value).set(["u", user, id], 1).set(["t", id, user], null)
    .set(["h", user], head);

await measure("warm-up set", 500, (i) => kv.set(["x", i], value));
await measure("set", 2000, (i) => kv.set(["a", `u${i}`, `01HZ${i}`], value));
await measure(
  "atomic of 1 alarm (4)",
  2000,
  (i) => alarm(kv.atomic(), `u${i}`, `01HZ${i}`).commit(),
);
await measure("get", 2000, (i) => kv.get(["a", `u${i}`, `01HZ${i}`]));
await measure("atomic of 100 alarms", 50, (j) => {
  const a = kv.atomic();
  for (let i = 0; i < 100; i++) alarm(a, `v${j * 100 + i}`, `01HZ${j * 100 + i}`);
  return a.commit();
});
kv.close();

// Alarms to random users, as the targeted bench sends them: 10,000 users, 50,000 alarms stored
// first, then 20,000 more in commits of 7 and of 25 (batch sizes seen at 3,500-5,000/s).
type Layout = (a: Deno.AtomicOperation, user: string, id: string) => Deno.AtomicOperation;
const layouts: [string, Layout][] = [
  ["layout 1 (apart)", alarm],
  [
    "layout 2 (per user)",
    (a, user, id) =>
      a.set(kvKeys.alarm(user, id), value).set(unreadKey(user, id), 1)
        .set(kvKeys.expiry(id, user), null).set(kvKeys.userState(user), head),
  ],
];
let seq = 0;
const nextId = () => `01HZ${String(seq++).padStart(22, "0")}`;
const randomUser = () => `user-${Math.floor(Math.random() * 10_000)}`;
for (const batch of [7, 25]) {
  for (const [name, write] of layouts) {
    const file = await Deno.openKv(`${dir}/${name.slice(0, 8).replace(" ", "")}-${batch}.kv`);
    for (let j = 0; j < 500; j++) {
      const a = file.atomic();
      for (let i = 0; i < 100; i++) write(a, randomUser(), nextId());
      await a.commit();
    }
    await measure(`${name}, ${batch}/commit`, 20_000 / batch, () => {
      const a = file.atomic();
      for (let i = 0; i < batch; i++) write(a, randomUser(), nextId());
      return a.commit();
    });
    file.close();
  }
}
console.log("(layout rows: per commit; divide by the batch size for per alarm)");

// What the index entries cost: commits of 250 alarms to random users (fan-out's shape), layout 2's
// four mutations (alarm and unread entry with expireIn, retention entry, head), layout 3's three
// (no unread entry), then the alarm and head alone.
const EXPIRE = { expireIn: 30 * 86_400_000 };
const EMPTY = new Uint8Array(0);
const shapes: [string, Layout][] = [
  [
    "layout 2: alarm+unread+retention+head",
    (a, user, id) =>
      a.set(kvKeys.alarm(user, id), value, EXPIRE).set(unreadKey(user, id), EMPTY, EXPIRE)
        .set(kvKeys.expiry(id, user), EMPTY).set(kvKeys.userState(user), head),
  ],
  [
    "layout 3: alarm+retention+head",
    (a, user, id) =>
      a.set(kvKeys.alarm(user, id), value, EXPIRE).set(kvKeys.expiry(id, user), EMPTY)
        .set(kvKeys.userState(user), head),
  ],
  [
    "alarm+head",
    (a, user, id) => a.set(kvKeys.alarm(user, id), value, EXPIRE).set(kvKeys.userState(user), head),
  ],
];
for (const [name, write] of shapes) {
  const file = await Deno.openKv(`${dir}/shape-${name}.kv`);
  for (let j = 0; j < 200; j++) {
    const a = file.atomic();
    for (let i = 0; i < 250; i++) write(a, randomUser(), nextId());
    await a.commit();
  }
  await measure(`${name}, 250/commit`, 80, () => {
    const a = file.atomic();
    for (let i = 0; i < 250; i++) write(a, randomUser(), nextId());
    return a.commit();
  });
  file.close();
}
console.log("(shape rows: per commit of 250 alarms; divide by 250 for per alarm)");

// A read during a 240-alarm commit: on the writing connection it waits for the commit.
const writer = await Deno.openKv(`${dir}/rw.kv`);
const reader = await Deno.openKv(`${dir}/rw.kv`);
const bigCommit = () => {
  const a = writer.atomic();
  for (let i = 0; i < 240; i++) layouts[1][1](a, randomUser(), nextId());
  return a.commit();
};
for (let i = 0; i < 50; i++) await bigCommit();
for (
  const [label, kvForRead] of [["same connection", writer], ["second connection", reader]] as const
) {
  const waits: number[] = [];
  for (let i = 0; i < 20; i++) {
    const commit = bigCommit();
    await new Promise((r) => setTimeout(r, 0));
    const started = performance.now();
    await kvForRead.get(kvKeys.userState(randomUser()));
    waits.push(performance.now() - started);
    await commit;
  }
  waits.sort((a, b) => a - b);
  console.log(`get during a 240-alarm commit, ${label}: median ${waits[10].toFixed(2)} ms`);
}
writer.close();
reader.close();

// Staging a set: numbers, null and objects go through V8's serializer, bytes are kept as they are.
const staging = await Deno.openKv(":memory:");
const kinds: [string, unknown][] = [
  ["number", 1],
  ["null", null],
  ["empty bytes", EMPTY],
  ["head object", head],
];
for (const [label, v] of kinds) {
  let perSet = 0;
  for (let round = 0; round < 3; round++) {
    const started = performance.now();
    for (let j = 0; j < 2000; j++) {
      const a = staging.atomic();
      for (let i = 0; i < 50; i++) {
        a.set(kvKeys.expiry("01HZZZZZZZZZZZZZZZZZZZZZZZ", `user-${i}`), v);
      }
    }
    perSet = (performance.now() - started) * 1000 / 100_000;
  }
  console.log(`setcost: staging a set of ${label.padEnd(12)} ${perSet.toFixed(2)} µs`);
}
staging.close();
await Deno.remove(dir, { recursive: true });
