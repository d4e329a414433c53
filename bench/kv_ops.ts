/**
 * What one Deno KV operation costs, per thread: wall time, CPU on the JS thread and on KV's
 * SQLite thread (from /proc/self/task, Linux only), for single sets, alarm-shaped atomics (4
 * mutations), gets, and 100-alarm atomics. These fixed costs are why group commit matters.
 *
 *   deno run --unstable-kv -A bench/kv_ops.ts
 */
const dir = await Deno.makeTempDir({ prefix: "alarmd-kv-ops-" });
const kv = await Deno.openKv(`${dir}/ops.kv`);
const TICK_US = 10_000;

function cpuByThread(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const task of Deno.readDirSync("/proc/self/task")) {
    const name = Deno.readTextFileSync(`/proc/self/task/${task.name}/comm`).trim();
    const stat = Deno.readTextFileSync(`/proc/self/task/${task.name}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    out[name] = (out[name] ?? 0) + Number(fields[11]) + Number(fields[12]);
  }
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
await Deno.remove(dir, { recursive: true });
