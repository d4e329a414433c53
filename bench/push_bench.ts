/**
 * `deno task bench --scenarios push`: what Web Push costs the publish path. Every user is
 * offline (no stream), every alarm carries a notification, and a test push service on
 * 127.0.0.1 checks each message's VAPID token and decrypts it (tests/helpers/test_push_service.ts).
 * Three kinds of run, each with a fresh server, three of each in rotating order: push off, push
 * on, and push off beside a process doing the same cryptography at the same rate
 * (bench/push_crypto_load.ts), which shows what sharing the cores with that work alone costs the
 * publishers. It reports the medians of the publish p50 and p99; with push on, also how long
 * after the last publish the last push arrived (the outbox drained) and whether every push
 * decrypted.
 */
import { cpuByKindSince, processTicks, TICKS_PER_SECOND, ticksByKind } from "./proc_cpu.ts";
import { startTestPushService, type TestPushService } from "../tests/helpers/test_push_service.ts";

export interface PushBenchTarget {
  readonly url: string;
  /** The server's processes, for CPU. */
  readonly pids: number[];
  stop(): Promise<void>;
}

export interface PushBenchDeps {
  /** Starts alarmd with these extra environment variables. */
  spawn(env: Record<string, string>): Promise<PushBenchTarget>;
  /** Runs bench/publisher.ts with one command. */
  publish(cmd: Record<string, unknown>): Promise<Record<string, number>>;
  token(sub: string, publish?: boolean): Promise<string>;
}

const ROUNDS = 3;
const DRAIN_TIMEOUT_MS = 60_000;
const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;
const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function subscribeAll(
  url: string,
  service: TestPushService,
  users: number,
  deps: PushBenchDeps,
) {
  let next = 0;
  await Promise.all(Array.from({ length: 32 }, async () => {
    while (next < users) {
      const userId = `u${next++}`;
      const { endpoint, keys } = await service.subscribe();
      const res = await fetch(`${url}/api/v1/users/push-subscriptions`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${await deps.token(userId)}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({ endpoint, keys }),
      });
      if (res.status !== 201) {
        throw new Error(`subscribing ${userId}: ${res.status} ${await res.text()}`);
      }
    }
  }));
}

/** Waits until the service holds `count` messages; the time it took, or null on timeout. */
async function drained(service: TestPushService, count: number): Promise<number | null> {
  const started = performance.now();
  while (service.received().length < count) {
    if (performance.now() - started > DRAIN_TIMEOUT_MS) return null;
    await sleep(20);
  }
  return performance.now() - started;
}

/** "crypto": push off, with the cryptography of push on running in a process of its own. */
type RunKind = "off" | "on" | "crypto";

/** Runs bench/push_crypto_load.ts for `seconds`; its JSON report. */
async function cryptoLoad(rate: number, seconds: number): Promise<{ cpuPercent: number }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "bench/push_crypto_load.ts",
      "--rate",
      String(rate),
      "--seconds",
      String(seconds),
    ],
    cwd: new URL("..", import.meta.url).pathname,
    stderr: "inherit",
  }).output();
  if (!output.success) throw new Error("bench/push_crypto_load.ts failed");
  return JSON.parse(new TextDecoder().decode(output.stdout));
}

async function oneRun(
  kind: RunKind,
  opts: { rate: number; seconds: number; users: number; sockets: number },
  deps: PushBenchDeps,
) {
  const push = kind === "on";
  await using service = await startTestPushService();
  const target = await deps.spawn({
    ALARMD_VAPID_SUBJECT: "mailto:bench@example.com",
    ALARMD_PUSH_ALLOWED_ORIGINS: service.origin,
    ALARMD_PUSH: push ? "offline" : "off",
  });
  try {
    if (push) await subscribeAll(target.url, service, opts.users, deps);
    const publisherToken = await deps.token("bench-publisher", true);
    const command = {
      op: "targeted",
      url: target.url,
      token: publisherToken,
      users: opts.users,
      sockets: opts.sockets,
      notification: true,
    };
    // Warm-up (JIT, pools, KV pages), not measured; with push on, its pushes drain first.
    const warm = await deps.publish({ ...command, rate: opts.rate, seconds: 1 });
    if (push) await drained(service, warm.ok);
    await sleep(500);
    const before = service.received().length;
    const threads0 = ticksByKind(target.pids);
    const self0 = processTicks("self");
    const t0 = performance.now();
    const load = kind === "crypto" ? cryptoLoad(opts.rate, opts.seconds) : null;
    const result = await deps.publish({ ...command, rate: opts.rate, seconds: opts.seconds });
    const drainMs = push ? await drained(service, before + result.ok) : null;
    const ms = performance.now() - t0;
    const cpu = cpuByKindSince(threads0, target.pids, ms);
    const benchCpu = Math.round(
      (processTicks("self") - self0) * 1000 / TICKS_PER_SECOND * 100 / ms,
    );
    const loadCpu = load ? (await load).cpuPercent : 0;
    return {
      push: kind === "crypto" ? "off + crypto" : kind,
      achievedRate: round(result.achievedRate, 0),
      created: result.ok,
      failed: result.failed,
      ackP50Ms: round(result.ackP50, 2),
      ackP99Ms: round(result.ackP99, 2),
      pushed: push ? service.received().length - before : 0,
      notDecrypted: service.problems.length,
      outboxDrainedMs: drainMs === null ? (push ? "timeout" : "-") : round(drainMs, 0),
      // % of one core, from the start of publishing until the last push arrived: alarmd's main
      // JS thread, KV threads, GC helpers, other threads (the push sender's isolate), and this
      // process (the test push service checking and decrypting every message), or the crypto
      // load's process.
      cpuJs: cpu.js,
      cpuKv: cpu.kv,
      cpuGc: cpu.gc,
      cpuOther: cpu.other,
      cpuPushService: kind === "crypto" ? loadCpu : benchCpu,
    };
  } finally {
    await target.stop();
  }
}

export async function runPushBench(
  opts: { rate: number; seconds: number; users: number; sockets: number },
  deps: PushBenchDeps,
) {
  const runs: Awaited<ReturnType<typeof oneRun>>[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    // Rotate the order every round, so drift in the machine's speed falls on all alike.
    const kinds: RunKind[] = ["off", "on", "crypto"];
    for (let k = 0; k < kinds.length; k++) {
      runs.push(await oneRun(kinds[(i + k) % kinds.length], opts, deps));
    }
  }
  const of = (push: string, key: "ackP50Ms" | "ackP99Ms") =>
    median(runs.filter((r) => r.push === push).map((r) => r[key]));
  const change = (to: number, from: number) => `${round((to / from - 1) * 100, 0)} %`;
  const off = { p50: of("off", "ackP50Ms"), p99: of("off", "ackP99Ms") };
  const on = { p50: of("on", "ackP50Ms"), p99: of("on", "ackP99Ms") };
  const crypto = { p50: of("off + crypto", "ackP50Ms"), p99: of("off + crypto", "ackP99Ms") };
  return {
    runs,
    summary: {
      p50OffMs: off.p50,
      p50OnMs: on.p50,
      p50CryptoOnlyMs: crypto.p50,
      p99OffMs: off.p99,
      p99OnMs: on.p99,
      p99CryptoOnlyMs: crypto.p99,
      p50Change: change(on.p50, off.p50),
      p99Change: change(on.p99, off.p99),
      p50ChangeCryptoOnly: change(crypto.p50, off.p50),
      p99ChangeCryptoOnly: change(crypto.p99, off.p99),
    },
  };
}
