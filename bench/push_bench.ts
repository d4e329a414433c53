/**
 * `deno task bench --scenarios push`: what Web Push costs the publish path. Every user is
 * offline (no stream), every alarm carries a notification, and a test push service on
 * 127.0.0.1 checks each message's VAPID token and decrypts it (tests/helpers/test_push_service.ts).
 * Runs alternate push off and push on, three of each, each with a fresh server, and the medians
 * of the publish p50 and p99 are compared; with push on, it also reports how long after the last
 * publish the last push arrived (the outbox drained) and whether every push decrypted.
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

async function oneRun(
  push: boolean,
  opts: { rate: number; seconds: number; users: number; sockets: number },
  deps: PushBenchDeps,
) {
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
    const result = await deps.publish({ ...command, rate: opts.rate, seconds: opts.seconds });
    const drainMs = push ? await drained(service, before + result.ok) : null;
    const ms = performance.now() - t0;
    const cpu = cpuByKindSince(threads0, target.pids, ms);
    const benchCpu = Math.round(
      (processTicks("self") - self0) * 1000 / TICKS_PER_SECOND * 100 / ms,
    );
    return {
      push: push ? "on" : "off",
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
      // process (the test push service checking and decrypting every message).
      cpuJs: cpu.js,
      cpuKv: cpu.kv,
      cpuGc: cpu.gc,
      cpuOther: cpu.other,
      cpuPushService: benchCpu,
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
    // Alternate, starting with the other one every round, so drift in the machine's speed
    // falls on both alike.
    const order = i % 2 === 0 ? [false, true] : [true, false];
    for (const push of order) runs.push(await oneRun(push, opts, deps));
  }
  const of = (push: string, key: "ackP50Ms" | "ackP99Ms") =>
    median(runs.filter((r) => r.push === push).map((r) => r[key]));
  const summary = {
    p50OffMs: of("off", "ackP50Ms"),
    p50OnMs: of("on", "ackP50Ms"),
    p99OffMs: of("off", "ackP99Ms"),
    p99OnMs: of("on", "ackP99Ms"),
  };
  return {
    runs,
    summary: {
      ...summary,
      p50Change: `${round((summary.p50OnMs / summary.p50OffMs - 1) * 100, 0)} %`,
      p99Change: `${round((summary.p99OnMs / summary.p99OffMs - 1) * 100, 0)} %`,
    },
  };
}
