/**
 * `deno task bench`: starts alarmd on a fresh KV file (or targets --url), opens N idle SSE
 * streams from separate raw-socket client processes, publishes from another process over up to
 * --sockets (1,024) raw keep-alive sockets (bench/raw_http.ts), and measures:
 *   idle      server RSS per connection 3 s after connecting, and settled (--settle-seconds,
 *             default 40: the lowest of the last 5 one-second samples)
 *   targeted  alarms to random users at --rate for --seconds: publish→deliver p50/p90/p99/max,
 *             lost, duplicated, achieved rate, server CPU (also by kind of thread: JS, KV, GC)
 *   fanout    one alarm to each of N users via the batch endpoint: time to the last delivery,
 *             and the server's CPU milliseconds by kind of thread
 *   replay    reconnect 1,000 alarms behind: time to the last replayed alarm, for the first
 *             reconnect and the median of five more
 *   storm     every stream drops; an alarm per user is created meanwhile; all reconnect at once
 *             with Last-Event-ID: time until all are back and every alarm arrived once
 *   push      on its own (bench/push_bench.ts): publishing with Web Push off and on, every user
 *             offline, `--connections` users each with a subscription on a test push service
 * Prints a table and one JSON line. Loopback only; every loop is bounded in count and time.
 *
 *   deno task bench [--connections 10000] [--rate 5000] [--seconds 10] [--clients 2]
 *                   [--scenarios idle,targeted,fanout,replay,storm] [--url URL --secret S --pid P]
 *                   [--publish-url URL]   publishers send there instead of --url
 *                   [--compare nchan]   same scenarios, same clients, against a local nginx+nchan
 *                   [--instances N]   N alarmd processes on one KV file with a real Redis; clients
 *                                     and publishers spread over them
 *                   [--server-env K=V,K=V]   extra ALARMD_* settings for the server under test
 *                   [--settle-seconds 40]    how long idle streams are held before memory is read
 *                   [--sockets 1024]   the publisher's keep-alive sockets (requests outstanding)
 */
import { SignJWT } from "jose";
import { runPushBench } from "./push_bench.ts";
import { cpuByKindSince, processTicks, TICKS_PER_SECOND, ticksByKind } from "./proc_cpu.ts";

const ROOT = new URL("../", import.meta.url);
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Options {
  connections: number;
  rate: number;
  seconds: number;
  clients: number;
  scenarios: string[];
  url?: string;
  /** Where the targeted scenario publishes, when not at the streams' URL (a separate listener). */
  publishUrl?: string;
  secret: string;
  pid?: number;
  compare?: string;
  instances: number;
  /** How long idle streams are held before their settled memory is read. */
  settleSeconds: number;
  /** The publisher's keep-alive sockets: how many requests it may have outstanding. */
  sockets: number;
  env: Record<string, string>;
}

function parseOptions(args: string[]): Options {
  const get = (name: string) => {
    const i = args.indexOf(`--${name}`);
    return i === -1 ? undefined : args[i + 1];
  };
  const connections = Number(get("connections") ?? 10_000);
  const env: Record<string, string> = {};
  for (const pair of (get("server-env") ?? "").split(",").filter(Boolean)) {
    const at = pair.indexOf("=");
    env[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return {
    connections,
    rate: Number(get("rate") ?? 5000),
    seconds: Number(get("seconds") ?? 10),
    clients: Number(get("clients") ?? Math.max(1, Math.ceil(connections / 9000))),
    scenarios: (get("scenarios") ?? "idle,targeted,fanout,replay,storm").split(","),
    url: get("url"),
    publishUrl: get("publish-url"),
    secret: get("secret") ?? crypto.randomUUID() + crypto.randomUUID(),
    pid: get("pid") ? Number(get("pid")) : undefined,
    compare: get("compare"),
    instances: Number(get("instances") ?? 1),
    settleSeconds: Number(get("settle-seconds") ?? 40),
    sockets: Number(get("sockets") ?? 1024),
    env,
  };
}

/** Polls a freshly started server until `ready` accepts an answer (any answer by default). */
async function waitUntilUp(
  probe: () => Promise<Response>,
  tries: number,
  ready: (res: Response) => boolean = () => true,
) {
  for (let i = 0; i < tries; i++) {
    try {
      const res = await probe();
      await res.body?.cancel();
      if (ready(res)) return;
    } catch {
      await sleep(50);
    }
  }
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

function rssKb(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]);
}

/** A child that answers one JSON line per JSON command. */
class RpcChild {
  #proc: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #waiting = new Map<number, (v: Record<string, unknown>) => void>();
  #nextId = 1;
  constructor(script: string) {
    this.#proc = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", script],
      cwd: ROOT,
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#writer = this.#proc.stdin.getWriter();
    const stdout = this.#proc.stdout;
    void (async () => {
      let rest = "";
      for await (const chunk of stdout.pipeThrough(new TextDecoderStream())) {
        rest += chunk;
        const lines = rest.split("\n");
        rest = lines.pop()!;
        for (const line of lines) {
          if (!line.trim()) continue;
          const msg = JSON.parse(line);
          this.#waiting.get(msg.id)?.(msg);
          this.#waiting.delete(msg.id);
        }
      }
    })();
  }
  call(cmd: Record<string, unknown>): Promise<Record<string, unknown>> {
    const id = this.#nextId++;
    const reply = new Promise<Record<string, unknown>>((r) => this.#waiting.set(id, r));
    void this.#writer.write(new TextEncoder().encode(JSON.stringify({ ...cmd, id }) + "\n"));
    return reply;
  }
  async close() {
    await this.call({ op: "close" }).catch(() => {});
    await this.#writer.close().catch(() => {});
    await this.#proc.status;
  }
}

/** Runs bench/publisher.ts with one command and returns its one-line JSON result. */
async function runPublisher(cmd: Record<string, unknown>) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "bench/publisher.ts"],
    cwd: ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify(cmd)));
  await writer.close();
  const { stdout } = await child.output();
  return JSON.parse(new TextDecoder().decode(stdout));
}

async function signToken(secret: string, sub: string, publish = false) {
  return await new SignJWT(publish ? { scope: "alarms:publish" } : {})
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(sub)
    .setExpirationTime("6h")
    .sign(new TextEncoder().encode(secret));
}

/**
 * alarmd as a child process (`deno task start`) on a fresh KV file and a free port, or on the
 * cluster's shared KV file and Redis; resolves once /healthz answers.
 */
async function spawnAlarmd(
  opts: Options,
  cluster?: { dir: string; redisUrl: string },
): Promise<Target> {
  const dir = cluster?.dir ?? await Deno.makeTempDir({ prefix: "alarmd-bench-" });
  const port = freePort();
  const proc = new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "start"],
    cwd: ROOT,
    env: {
      ALARMD_PORT: String(port),
      ALARMD_HOST: "127.0.0.1",
      ALARMD_KV_PATH: `${dir}/bench.kv`,
      ALARMD_JWT_SECRET: opts.secret,
      ALARMD_LOG_LEVEL: "warn",
      ALARMD_MAX_CONNECTIONS: "200000",
      // Every bench stream comes from 127.0.0.1; a per-IP limit would measure itself.
      ALARMD_RATE_CONNECT_PER_IP_PER_SECOND: "0",
      ALARMD_RATE_PUBLISH_PER_SECOND: "0",
      ...(cluster ? { ALARMD_REDIS_URL: cluster.redisUrl } : {}),
      ...opts.env,
    },
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const url = `http://127.0.0.1:${port}`;
  await waitUntilUp(() => fetch(`${url}/healthz`), 200, (res) => res.ok);
  // `deno task` runs alarmd as a child of its own: measure the process that serves.
  const pid = await alarmdPidUnder(proc.pid);
  return {
    name: "alarmd",
    mode: "alarmd" as const,
    url,
    pids: [pid],
    async stop() {
      try {
        Deno.kill(pid, "SIGTERM");
      } catch {
        // gone
      }
      await proc.status;
      if (!cluster) await Deno.remove(dir, { recursive: true });
    },
  };
}

/** `--instances N`: N alarmd processes on one KV file, fanning out through a real Redis. */
async function spawnAlarmdCluster(opts: Options): Promise<Target> {
  const dir = await Deno.makeTempDir({ prefix: "alarmd-bench-cluster-" });
  const redisPort = freePort();
  const redis = new Deno.Command("redis-server", {
    args: ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  await sleep(300);
  const redisUrl = `redis://127.0.0.1:${redisPort}`;
  const servers: Target[] = [];
  for (let i = 0; i < opts.instances; i++) servers.push(await spawnAlarmd(opts, { dir, redisUrl }));
  return {
    name: `alarmd x${opts.instances}`,
    mode: "alarmd",
    url: servers[0].url,
    urls: servers.map((s) => s.url),
    pids: servers.flatMap((s) => s.pids),
    async stop() {
      for (const s of servers) await s.stop();
      redis.kill("SIGTERM");
      await redis.status;
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** The alarmd process `deno task` started under `parent`, or `parent` if none shows up. */
async function alarmdPidUnder(parent: number): Promise<number> {
  for (let i = 0; i < 50; i++) {
    for (const entry of Deno.readDirSync("/proc")) {
      if (!/^\d+$/.test(entry.name)) continue;
      try {
        const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
        const cmd = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`);
        if (ppid === parent && cmd.includes("main.ts")) return Number(entry.name);
      } catch {
        // raced with an exiting process
      }
    }
    await sleep(50);
  }
  return parent;
}

/** The SSE client processes' stats as one: counts summed, percentiles over every latency. */
function mergeClientStats(stats: Record<string, unknown>[]) {
  const all = stats.flatMap((s) => (s.latencies as number[]) ?? []).sort((a, b) => a - b);
  const pct = (p: number) =>
    all.length ? all[Math.min(all.length - 1, Math.floor(all.length * p))] : null;
  return {
    received: stats.reduce((a, s) => a + (s.received as number), 0),
    duplicates: stats.reduce((a, s) => a + (s.duplicates as number), 0),
    connected: stats.reduce((a, s) => a + (s.connected as number), 0),
    lastReceiveAt: Math.max(...stats.map((s) => s.lastReceiveAt as number)),
    p50: pct(0.5),
    p90: pct(0.9),
    p99: pct(0.99),
    max: all.length ? all[all.length - 1] : null,
  };
}

const round = (v: unknown, digits = 1) => typeof v === "number" ? Number(v.toFixed(digits)) : v;

/** A server under test: alarmd (one process or several) or nginx+nchan. */
interface Target {
  readonly name: string;
  readonly mode: "alarmd" | "nchan";
  readonly url: string;
  /** Every instance's URL when there are several (clients and publishers are spread). */
  readonly urls?: string[];
  /** Processes whose memory and CPU are the server's. */
  readonly pids: number[];
  stop(): Promise<void>;
}

const rssKbOf = (pids: number[]) => pids.reduce((a, p) => a + rssKb(p), 0);
const cpuTicksOf = (pids: number[]) => pids.reduce((a, p) => a + processTicks(p), 0);

async function spawnNchan(): Promise<Target> {
  const dir = await Deno.makeTempDir({ prefix: "alarmd-bench-nchan-" });
  const port = freePort();
  await Deno.mkdir(`${dir}/tmp`);
  // One worker, as alarmd runs one isolate; buffers deep enough for the replay scenario.
  await Deno.writeTextFile(
    `${dir}/nginx.conf`,
    `load_module /usr/lib/nginx/modules/ngx_nchan_module.so;
worker_processes 1;
worker_rlimit_nofile 65536;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 65536; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp;
  server {
    listen 127.0.0.1:${port};
    location ~ ^/sub/(.+)$ {
      nchan_subscriber eventsource;
      nchan_channel_id $1;
      nchan_subscriber_first_message newest;
    }
    location ~ ^/pub/(.+)$ {
      nchan_publisher;
      nchan_channel_id $1;
      nchan_message_buffer_length 1100;
      nchan_message_timeout 10m;
    }
  }
}
`,
  );
  const proc = new Deno.Command("nginx", {
    args: ["-c", `${dir}/nginx.conf`, "-p", dir, "-g", "daemon off;"],
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const url = `http://127.0.0.1:${port}`;
  await waitUntilUp(() => fetch(`${url}/pub/warmup`, { method: "POST", body: "{}" }), 100);
  const workers = childrenOf(proc.pid);
  return {
    name: "nginx+nchan",
    mode: "nchan",
    url,
    pids: [proc.pid, ...workers],
    async stop() {
      proc.kill("SIGQUIT");
      await proc.status;
      await Deno.remove(dir, { recursive: true });
    },
  };
}

function childrenOf(parent: number): number[] {
  const out: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === parent) {
        out.push(Number(entry.name));
      }
    } catch {
      // raced with an exiting process
    }
  }
  return out;
}

async function runScenarios(target: Target, opts: Options) {
  const urls = target.urls ?? [target.url];
  const publishUrls = opts.publishUrl ? [opts.publishUrl] : urls;
  const results: Record<string, Record<string, unknown>> = {};
  const clients: RpcChild[] = [];
  const publisherToken = await signToken(opts.secret, "bench-publisher", true);
  const publish = (cmd: Record<string, unknown>) =>
    runPublisher({
      ...cmd,
      url: publishUrls[0],
      token: publisherToken,
      mode: target.mode,
      sockets: opts.sockets,
    });
  const stats = async (extra: Record<string, unknown> = {}) =>
    mergeClientStats(await Promise.all(clients.map((c) => c.call({ op: "stats", ...extra }))));
  const waitDelivered = async (count: number) => {
    const deadline = now() + 30_000;
    let merged = await stats();
    while (merged.received < count && now() < deadline) {
      await sleep(100);
      merged = await stats();
    }
    return merged;
  };
  try {
    await sleep(500);
    const baseline = rssKbOf(target.pids);
    const per = Math.ceil(opts.connections / opts.clients);
    for (let c = 0; c < opts.clients; c++) clients.push(new RpcChild("bench/sse_client.ts"));
    const opened = await Promise.all(clients.map((client, c) =>
      client.call({
        op: "open",
        mode: target.mode,
        host: new URL(urls[c % urls.length]).hostname,
        port: Number(new URL(urls[c % urls.length]).port),
        secret: opts.secret,
        users: [c * per, Math.min(per, opts.connections - c * per)],
      })
    ));
    const failed = opened.reduce((a, o) => a + (o.failed as number), 0);
    const live = opts.connections - failed;

    if (opts.scenarios.includes("idle")) {
      // Right after a connect burst, RSS still holds the burst's garbage: V8 returns it only when
      // its memory reducer runs, some 20-30 s after allocation stops (measured). Both figures are
      // reported; "settled" is what a server holding idle streams for hours costs.
      await sleep(3000);
      const early = rssKbOf(target.pids);
      const samples: number[] = [];
      for (let s = 0; s < opts.settleSeconds; s++) {
        await sleep(1000);
        samples.push(rssKbOf(target.pids));
      }
      const settled = samples.length ? Math.min(...samples.slice(-5)) : early;
      results.idle = {
        connections: live,
        failed,
        connectMs: round(Math.max(...opened.map((o) => o.ms as number)), 0),
        baselineRssMb: round(baseline / 1024),
        rssMbAfter3s: round(early / 1024),
        kbPerConnectionAfter3s: round((early - baseline) / live, 2),
        rssMb: round(settled / 1024),
        kbPerConnection: round((settled - baseline) / live, 2),
      };
    }

    if (opts.scenarios.includes("targeted")) {
      // Warm up (JIT, connection pools, KV pages) at the same rate; not measured.
      await publish({ op: "targeted", rate: opts.rate, seconds: 1, users: opts.connections });
      await sleep(500);
      await stats({ reset: true });
      const cpu0 = cpuTicksOf(target.pids);
      const threads0 = ticksByKind(target.pids);
      const t0 = now();
      // One publisher per instance, the rate split between them, as a load balancer would.
      const parts = await Promise.all(publishUrls.map((url) =>
        runPublisher({
          op: "targeted",
          url,
          token: publisherToken,
          mode: target.mode,
          rate: opts.rate / publishUrls.length,
          seconds: opts.seconds,
          users: opts.connections,
          sockets: opts.sockets,
        })
      ));
      const published = {
        ok: parts.reduce((a, p) => a + p.ok, 0),
        failed: parts.reduce((a, p) => a + p.failed, 0),
        achievedRate: parts.reduce((a, p) => a + p.achievedRate, 0),
        ackP50: Math.max(...parts.map((p) => p.ackP50 ?? 0)),
        ackP99: Math.max(...parts.map((p) => p.ackP99 ?? 0)),
      };
      const cpu = (cpuTicksOf(target.pids) - cpu0) / TICKS_PER_SECOND / ((now() - t0) / 1000);
      const byThread = cpuByKindSince(threads0, target.pids, now() - t0);
      await sleep(1500);
      const merged = await stats({ reset: true, raw: true });
      results.targeted = {
        rate: opts.rate,
        achievedRate: round(published.achievedRate, 0),
        created: published.ok,
        failed: published.failed,
        delivered: merged.received,
        lost: published.ok - merged.received,
        duplicated: merged.duplicates,
        p50Ms: round(merged.p50, 2),
        p90Ms: round(merged.p90, 2),
        p99Ms: round(merged.p99, 2),
        maxMs: round(merged.max, 2),
        ackP50Ms: round(published.ackP50, 2),
        ackP99Ms: round(published.ackP99, 2),
        serverCpuPercent: round(cpu * 100, 0),
        cpuJsPercent: byThread.js,
        cpuKvPercent: byThread.kv,
        cpuGcPercent: byThread.gc,
        cpuOtherPercent: byThread.other,
      };
    }

    if (opts.scenarios.includes("fanout")) {
      await stats({ reset: true });
      const threads0 = ticksByKind(target.pids);
      const published = await publish({ op: "fanout", users: opts.connections });
      const merged = await waitDelivered(live);
      // Read once every alarm arrived, so it holds up to 100 ms of idle polling after the last.
      const byThread = cpuByKindSince(threads0, target.pids);
      results.fanout = {
        users: opts.connections,
        delivered: merged.received,
        duplicated: merged.duplicates,
        publishAckMs: round(published.ackedAt - published.sentAt, 0),
        lastDeliveryMs: round(merged.lastReceiveAt - published.sentAt, 0),
        cpuJsMs: byThread.js,
        cpuKvMs: byThread.kv,
        cpuGcMs: byThread.gc,
        cpuOtherMs: byThread.other,
      };
    }

    if (opts.scenarios.includes("replay")) {
      results.replay = await measureReplay(target, opts.secret);
    }

    if (opts.scenarios.includes("storm")) {
      if (!opts.scenarios.includes("fanout")) {
        // Every stream needs an id to resume from, as a browser's EventSource would have one;
        // without it, a reconnect starts from now and what was missed stays in the inbox.
        await stats({ reset: true });
        await publish({ op: "fanout", users: opts.connections });
        await waitDelivered(live);
      }
      await stats({ reset: true });
      // Alarms created while every stream is down must all arrive once after the storm.
      await Promise.all(clients.map((c) => c.call({ op: "close-sockets" })));
      const published = await publish({ op: "fanout", users: opts.connections });
      const threads0 = ticksByKind(target.pids);
      const t0 = now();
      const back = await Promise.all(clients.map((c) => c.call({ op: "reconnect" })));
      const reconnectedMs = now() - t0;
      const merged = await waitDelivered(live);
      const byThread = cpuByKindSince(threads0, target.pids);
      results.storm = {
        connections: opts.connections,
        reconnected: back.reduce((a, b) => a + (b.reconnected as number), 0),
        failed: back.reduce((a, b) => a + (b.failed as number), 0),
        published: opts.connections - published.failedAlarms,
        missed: opts.connections - published.failedAlarms - merged.received,
        duplicated: merged.duplicates,
        allReconnectedMs: round(reconnectedMs, 0),
        allDeliveredMs: round(merged.lastReceiveAt - t0, 0),
        cpuJsMs: byThread.js,
        cpuKvMs: byThread.kv,
        cpuGcMs: byThread.gc,
        cpuOtherMs: byThread.other,
      };
    }
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
  return results;
}

async function main() {
  const opts = parseOptions(Deno.args);
  if (opts.scenarios.includes("push")) {
    // Its own runs: push off and on alternate, each on a fresh server.
    const result = await runPushBench(
      { rate: opts.rate, seconds: opts.seconds, users: opts.connections, sockets: opts.sockets },
      {
        spawn: (env) => spawnAlarmd({ ...opts, env: { ...opts.env, ...env } }),
        publish: runPublisher,
        token: (sub, publish) => signToken(opts.secret, sub, publish),
      },
    );
    console.table(result.runs);
    console.log(JSON.stringify(result));
    return;
  }
  const runs: Record<string, Record<string, Record<string, unknown>>> = {};
  const alarmd: Target = opts.url
    ? {
      name: "alarmd",
      mode: "alarmd",
      url: opts.url,
      pids: opts.pid ? [opts.pid] : [],
      stop: async () => {},
    }
    : opts.instances > 1
    ? await spawnAlarmdCluster(opts)
    : await spawnAlarmd(opts);
  try {
    runs.alarmd = await runScenarios(alarmd, opts);
  } finally {
    await alarmd.stop();
  }
  if (opts.compare === "nchan") {
    const nchan = await spawnNchan();
    try {
      runs.nchan = await runScenarios(nchan, opts);
    } finally {
      await nchan.stop();
    }
  }

  const machine = `${navigator.hardwareConcurrency} cores, ${
    Math.round(Deno.systemMemoryInfo().total / 2 ** 30)
  } GiB, Deno ${Deno.version.deno}`;
  console.log(`\nalarmd bench (${machine})`);
  const names = Object.keys(runs);
  for (const scenario of Object.keys(runs.alarmd)) {
    console.log(`\n${scenario.padEnd(22)}${names.map((n) => n.padStart(14)).join("")}`);
    for (const key of Object.keys(runs.alarmd[scenario])) {
      const cells = names.map((n) => String(runs[n][scenario]?.[key] ?? "").padStart(14));
      console.log(`  ${key.padEnd(20)}${cells.join("")}`);
    }
  }
  console.log("\n" + JSON.stringify({ machine, options: { ...opts, secret: undefined }, runs }));
}

/** Time from reconnecting 1,000 alarms behind to receiving the last of them. */
async function measureReplay(target: Target, secret: string) {
  const user = "replay-user";
  const subscribeUrl = target.mode === "nchan"
    ? `${target.url}/sub/${user}`
    : `${target.url}/api/v1/users/alarm/subscribe`;
  const headers: Record<string, string> = target.mode === "nchan"
    ? { accept: "text/event-stream" }
    : { accept: "text/event-stream", authorization: `Bearer ${await signToken(secret, user)}` };
  const read = async (extra: Record<string, string>, want: number) => {
    const controller = new AbortController();
    const res = await fetch(subscribeUrl, {
      headers: { ...headers, ...extra },
      signal: controller.signal,
    });
    const ids: string[] = [];
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    const done = (async () => {
      while (ids.length < want) {
        const { value, done } = await reader.read();
        if (done) break;
        text += value;
        let i: number;
        while ((i = text.indexOf("\n\n")) !== -1) {
          const frame = text.slice(0, i);
          text = text.slice(i + 2);
          const id = /^id: (.+)$/m.exec(frame)?.[1];
          const isAlarm = target.mode === "nchan"
            ? !/^event:/m.test(frame)
            : /^event: alarm$/m.test(frame);
          if (id && isAlarm) ids.push(id);
        }
      }
      controller.abort();
      await reader.cancel().catch(() => {});
      return ids;
    })();
    return { done };
  };
  // Fill: 1,001 alarms seen live by a first stream, which records their ids.
  const first = await read({}, 1001);
  await sleep(200);
  const publisherToken = await signToken(secret, "bench-publisher", true);
  if (target.mode === "nchan") {
    for (let i = 0; i < 1001; i++) {
      const res = await fetch(`${target.url}/pub/${user}`, {
        method: "POST",
        body: JSON.stringify({ i }),
      });
      await res.body?.cancel();
    }
  } else {
    for (const size of [1, 500, 500]) {
      const res = await fetch(`${target.url}/api/v1/alarms/batch`, {
        method: "POST",
        headers: { authorization: `Bearer ${publisherToken}`, "content-type": "application/json" },
        body: JSON.stringify({
          alarms: Array.from({ length: size }, () => ({ userId: user, type: "r" })),
        }),
      });
      await res.body?.cancel();
    }
  }
  const ids = await first.done;
  // The first reconnect runs the replay's code for the first time in the server's life; the
  // later ones show what a server that has replayed before takes.
  const times: number[] = [];
  const counts: number[] = [];
  for (let run = 0; run < REPLAY_RUNS; run++) {
    const t0 = now();
    const stream = await read({ "last-event-id": ids[0] }, 1000);
    counts.push((await stream.done).length);
    times.push(now() - t0);
    await sleep(100);
  }
  const later = times.slice(1).sort((a, b) => a - b);
  return {
    replayed: Math.min(...counts),
    firstMs: round(times[0], 1),
    medianMs: round(later[Math.floor(later.length / 2)], 1),
  };
}

/** Reconnects 1,000 behind in the replay scenario: the first, and the median of the rest. */
const REPLAY_RUNS = 6;

if (import.meta.main) await main();
