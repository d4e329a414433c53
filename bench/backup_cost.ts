/**
 * What `alarmd backup` costs publishing. Fills a KV file with `--alarms` alarms (to 10,000
 * users, straight through the store), starts alarmd on it as a real process, and publishes one
 * alarm per request at `--rate` per second to random users, in rounds of `--seconds`: without a
 * backup, then with `alarmd backup` run back to back as separate processes, alternating
 * (`--rounds` of each). Each request's latency counts from when it was due, so a stall shows up
 * in the requests queued behind it. Prints p50/p99/max of the publishes due while no backup ran,
 * while a backup process ran (start-up, copy, check), and while a copy's read transaction was
 * open (`snapshotAt` .. + `snapshotMs`), before it (the process starting) and after it (the
 * check, fsync and rename); the backups' own figures; and the WAL file's size. `--nice 19` runs
 * each backup under `nice -n 19`; `--backup-dir /dev/shm` writes the copies there instead of next
 * to the store (on tmpfs: the copy costs no disk writes, which separates them from the CPU).
 *
 *   deno run --unstable-kv --unstable-net -A bench/backup_cost.ts \
 *     [--alarms 100000] [--rate 1000] [--seconds 10] [--rounds 2] [--nice 19] [--backup-dir DIR]
 */
import { systemClock } from "../src/domain/ports.ts";
import { createKvAlarmStore } from "../src/storage/kv_alarm_store.ts";
import { ensureKvLayout } from "../src/storage/kv_layout.ts";
import { startProcess, startServeProcess } from "../tests/helpers/process.ts";
import { publisherToken } from "../tests/helpers/test_server.ts";
import { createRawHttpPool } from "./raw_http.ts";

const args = new Map<string, string>();
for (let i = 0; i < Deno.args.length; i += 2) {
  args.set(Deno.args[i].replace(/^--/, ""), Deno.args[i + 1]);
}
const alarms = Number(args.get("alarms") ?? 100_000);
const rate = Number(args.get("rate") ?? 1000);
const seconds = Number(args.get("seconds") ?? 10);
const rounds = Number(args.get("rounds") ?? 2);
const nice = args.get("nice");
const backupDir = args.get("backup-dir");
const USERS = 10_000;
const RETENTION_MS = 30 * 86_400_000;

const now = () => performance.timeOrigin + performance.now();
const round1 = (n: number) => Math.round(n * 10) / 10;

const dir = await Deno.makeTempDir({ prefix: "alarmd-backup-cost-" });
const kvPath = `${dir}/alarmd.kv`;

/** Writes `count` alarms through the store, 5,000 per round of ten 500-alarm creates. */
async function fill(count: number) {
  const kv = await Deno.openKv(kvPath);
  await ensureKvLayout(kv, { now: () => Date.now(), retentionMs: RETENTION_MS });
  const store = createKvAlarmStore(kv, {
    clock: systemClock,
    retentionMs: RETENTION_MS,
    maxAlarmsPerUser: 1000,
  });
  for (let done = 0; done < count; done += 5000) {
    await Promise.all(Array.from({ length: 10 }, (_, batch) =>
      store.create(
        Array.from({ length: Math.min(500, Math.max(0, count - done - batch * 500)) }, (_, i) => {
          const n = done + batch * 500 + i;
          return {
            alarm: {
              userId: `user-${n % USERS}`,
              type: "comment",
              data: { text: "Kim commented on your post", post: `p${n}` },
            },
          };
        }),
      )));
  }
  await store.close();
  kv.close();
}

interface Sample {
  due: number;
  ms: number;
}

interface BackupRun {
  start: number;
  end: number;
  snapshotStart: number;
  snapshotEnd: number;
  report: Record<string, number | string>;
}

const fillStarted = performance.now();
await fill(alarms);
console.log(`filled ${alarms} alarms in ${Math.round(performance.now() - fillStarted)} ms`);

const alarmd = await startServeProcess({
  ALARMD_KV_PATH: kvPath,
  ALARMD_RATE_PUBLISH_PER_SECOND: "0",
});
const token = await publisherToken("backup-bench");
const pool = createRawHttpPool(alarmd.url, 256);
const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };

/** Publishes at `rate` for `seconds`; resolves with every request's latency from when it was due. */
async function publish(): Promise<Sample[]> {
  const samples: Sample[] = [];
  const pending: Promise<void>[] = [];
  const started = now();
  const total = rate * seconds;
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / rate;
    const wait = due - now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const body = JSON.stringify({
      userId: `user-${Math.floor(Math.random() * USERS)}`,
      type: "comment",
      data: { text: "Lee liked your photo", i },
    });
    pending.push(
      pool.request("POST", "/api/v1/alarms", headers, body).then((status) => {
        if (status !== 201) throw new Error(`publish answered ${status}`);
        samples.push({ due, ms: now() - due });
      }),
    );
  }
  await Promise.all(pending);
  return samples;
}

/** Runs `alarmd backup` back to back until `until`; returns each run's windows and report. */
async function backups(until: Promise<unknown>): Promise<BackupRun[]> {
  let done = false;
  void until.then(() => (done = true));
  const runs: BackupRun[] = [];
  const file = `${backupDir ?? dir}/alarmd-backup-cost-${Deno.pid}.kv`;
  while (!done) {
    const start = now();
    const proc = await startProcess(["backup", file, "--force"], { ALARMD_KV_PATH: kvPath }, {
      command: [
        ...(nice ? ["nice", "-n", nice] : []),
        ...[Deno.execPath(), "run", "--unstable-kv", "-A", "main.ts"],
      ],
    });
    const { code } = await proc.status;
    const end = now();
    if (code !== 0) throw new Error(`alarmd backup exited ${code}: ${proc.stderr()}`);
    const report = JSON.parse(proc.stdout());
    const snapshotStart = Date.parse(report.snapshotAt);
    runs.push({
      start,
      end,
      snapshotStart,
      snapshotEnd: snapshotStart + report.snapshotMs,
      report,
    });
  }
  return runs;
}

let walMax = 0;
const walWatch = setInterval(() => {
  try {
    walMax = Math.max(walMax, Deno.statSync(`${kvPath}-wal`).size);
  } catch {
    // no WAL yet
  }
}, 10);

function percentiles(samples: Sample[]) {
  const ms = samples.map((s) => s.ms).sort((a, b) => a - b);
  const at = (p: number) => ms[Math.min(ms.length - 1, Math.floor(ms.length * p))];
  return {
    n: ms.length,
    p50: round1(at(0.5)),
    p99: round1(at(0.99)),
    max: round1(ms[ms.length - 1]),
  };
}

// One unmeasured second for JIT and SQLite's page cache.
{
  const warm = rate;
  for (let i = 0; i < warm; i += 100) {
    await Promise.all(
      Array.from({ length: 100 }, () =>
        pool.request(
          "POST",
          "/api/v1/alarms",
          headers,
          JSON.stringify({ userId: "warm", type: "w" }),
        )),
    );
  }
}

const without: Sample[] = [];
const withBackup: Sample[] = [];
const runs: BackupRun[] = [];
let walBeforeAnyBackup = 0;
for (let r = 0; r < rounds; r++) {
  without.push(...await publish());
  if (r === 0) walBeforeAnyBackup = walMax;
  const publishing = publish();
  const [samples, backupRuns] = await Promise.all([publishing, backups(publishing)]);
  withBackup.push(...samples);
  runs.push(...backupRuns);
}
clearInterval(walWatch);

const inside = (s: Sample, from: (b: BackupRun) => number, to: (b: BackupRun) => number) =>
  runs.some((b) => s.due >= from(b) && s.due <= to(b));
const result = {
  alarms,
  rate,
  storeBytes: Number(runs[0]?.report.bytes),
  keys: Number(runs[0]?.report.keys),
  backups: runs.length,
  noBackup: percentiles(without),
  duringBackupProcess: percentiles(
    withBackup.filter((s) => inside(s, (b) => b.start, (b) => b.end)),
  ),
  duringSnapshot: percentiles(
    withBackup.filter((s) => inside(s, (b) => b.snapshotStart, (b) => b.snapshotEnd)),
  ),
  duringStartUp: percentiles(
    withBackup.filter((s) => inside(s, (b) => b.start, (b) => b.snapshotStart)),
  ),
  duringCheck: percentiles(withBackup.filter((s) => inside(s, (b) => b.snapshotEnd, (b) => b.end))),
  backupProcessMs: percentiles(runs.map((b) => ({ due: 0, ms: b.end - b.start }))),
  snapshotMs: percentiles(runs.map((b) => ({ due: 0, ms: Number(b.report.snapshotMs) }))),
  verifyMs: percentiles(runs.map((b) => ({ due: 0, ms: Number(b.report.verifyMs) }))),
  nice: nice ?? null,
  backupDir: backupDir ?? "(next to the store)",
  /** The WAL file is reused, not truncated: its size is the largest the WAL has been. */
  walBytesBeforeAnyBackup: walBeforeAnyBackup,
  walBytesAtEnd: walMax,
};
for (const [k, v] of Object.entries(result)) console.log(`  ${k.padEnd(22)} ${JSON.stringify(v)}`);
console.log(JSON.stringify(result));

pool.close();
await alarmd.stop();
await Deno.remove(dir, { recursive: true });
if (backupDir) await Deno.remove(`${backupDir}/alarmd-backup-cost-${Deno.pid}.kv`);
