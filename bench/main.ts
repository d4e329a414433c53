/**
 * `deno task bench`: starts alarmd on a fresh KV file (or targets --url), opens N idle SSE
 * streams from separate raw-socket client processes, and measures:
 *   idle      server RSS per connection after settling
 *   targeted  alarms to random users at --rate for --seconds: publish→deliver p50/p90/p99/max,
 *             lost, duplicated, achieved rate, server CPU
 *   fanout    one alarm to each of N users via the batch endpoint: time to the last delivery
 *   replay    reconnect 1,000 alarms behind: time to the last replayed alarm
 *   storm     every stream drops; an alarm per user is created meanwhile; all reconnect at once
 *             with Last-Event-ID: time until all are back and every alarm arrived once
 * Prints a table and one JSON line. Loopback only; every loop is bounded in count and time.
 *
 *   deno task bench [--connections 10000] [--rate 5000] [--seconds 10] [--clients 2]
 *                   [--scenarios idle,targeted,fanout,replay,storm] [--url URL --secret S --pid P]
 */
import { SignJWT } from "jose";

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
  secret: string;
  pid?: number;
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
    const [k, v] = pair.split("=");
    env[k] = v;
  }
  return {
    connections,
    rate: Number(get("rate") ?? 5000),
    seconds: Number(get("seconds") ?? 10),
    clients: Number(get("clients") ?? Math.max(1, Math.ceil(connections / 9000))),
    scenarios: (get("scenarios") ?? "idle,targeted,fanout,replay,storm").split(","),
    url: get("url"),
    secret: get("secret") ?? crypto.randomUUID() + crypto.randomUUID(),
    pid: get("pid") ? Number(get("pid")) : undefined,
    env,
  };
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

function cpuTicks(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}
const TICKS_PER_SECOND = 100;

/** A child that answers one JSON line per JSON command. */
class Rpc {
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

async function runPublisher(cmd: Record<string, unknown>) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "bench/publisher.ts"],
    cwd: ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const writer = out.stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify(cmd)));
  await writer.close();
  const { stdout } = await out.output();
  return JSON.parse(new TextDecoder().decode(stdout));
}

async function token(secret: string, sub: string, publish = false) {
  return await new SignJWT(publish ? { scope: "alarms:publish" } : {})
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(sub)
    .setExpirationTime("6h")
    .sign(new TextEncoder().encode(secret));
}

async function startServer(opts: Options) {
  const dir = await Deno.makeTempDir({ prefix: "alarmd-bench-" });
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
      ...opts.env,
    },
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    try {
      const res = await fetch(`${url}/healthz`);
      await res.body?.cancel();
      if (res.ok) break;
    } catch {
      await sleep(50);
    }
  }
  // `deno task` runs alarmd as a child of its own: measure the process that serves.
  const pid = await serverPid(proc.pid);
  return {
    url,
    pid,
    async stop() {
      try {
        Deno.kill(pid, "SIGTERM");
      } catch {
        // gone
      }
      await proc.status;
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function serverPid(parent: number): Promise<number> {
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

function merge(stats: Record<string, unknown>[]) {
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

async function main() {
  const opts = parseOptions(Deno.args);
  const server = opts.url
    ? { url: opts.url, pid: opts.pid ?? 0, stop: async () => {} }
    : await startServer(opts);
  const { port, hostname } = new URL(server.url);
  const results: Record<string, Record<string, unknown>> = {};
  const clients: Rpc[] = [];
  try {
    const publisher = await token(opts.secret, "bench-publisher", true);
    await sleep(500);
    const baseline = server.pid ? rssKb(server.pid) : 0;

    const per = Math.ceil(opts.connections / opts.clients);
    for (let c = 0; c < opts.clients; c++) clients.push(new Rpc("bench/sse_client.ts"));
    const opened = await Promise.all(clients.map((client, c) =>
      client.call({
        op: "open",
        host: hostname,
        port: Number(port),
        secret: opts.secret,
        users: [c * per, Math.min(per, opts.connections - c * per)],
      })
    ));
    const failed = opened.reduce((a, o) => a + (o.failed as number), 0);
    const connectMs = Math.max(...opened.map((o) => o.ms as number));

    if (opts.scenarios.includes("idle")) {
      await sleep(3000);
      const rss = server.pid ? rssKb(server.pid) : 0;
      results.idle = {
        connections: opts.connections - failed,
        failed,
        connectMs: round(connectMs, 0),
        baselineRssMb: round(baseline / 1024),
        rssMb: round(rss / 1024),
        kbPerConnection: server.pid
          ? round((rss - baseline) / (opts.connections - failed), 2)
          : null,
      };
    }

    if (opts.scenarios.includes("targeted")) {
      await Promise.all(clients.map((c) => c.call({ op: "stats", reset: true })));
      const cpu0 = server.pid ? cpuTicks(server.pid) : 0;
      const t0 = now();
      const pub = await runPublisher({
        op: "targeted",
        url: server.url,
        token: publisher,
        rate: opts.rate,
        seconds: opts.seconds,
        users: opts.connections,
      });
      const wall = (now() - t0) / 1000;
      const cpu = server.pid ? (cpuTicks(server.pid) - cpu0) / TICKS_PER_SECOND / wall : null;
      await sleep(1500);
      const merged = merge(
        await Promise.all(clients.map((c) => c.call({ op: "stats", reset: true, raw: true }))),
      );
      results.targeted = {
        rate: opts.rate,
        achievedRate: round(pub.achievedRate, 0),
        created: pub.ok,
        failed: pub.failed,
        delivered: merged.received,
        lost: pub.ok - merged.received,
        duplicated: merged.duplicates,
        p50Ms: round(merged.p50, 2),
        p90Ms: round(merged.p90, 2),
        p99Ms: round(merged.p99, 2),
        maxMs: round(merged.max, 2),
        ackP50Ms: round(pub.ackP50, 2),
        ackP99Ms: round(pub.ackP99, 2),
        serverCpuPercent: cpu === null ? null : round(cpu * 100, 0),
      };
    }

    if (opts.scenarios.includes("fanout")) {
      await Promise.all(clients.map((c) => c.call({ op: "stats", reset: true })));
      const pub = await runPublisher({
        op: "fanout",
        url: server.url,
        token: publisher,
        users: opts.connections,
      });
      const deadline = now() + 30_000;
      let merged = merge(await Promise.all(clients.map((c) => c.call({ op: "stats" }))));
      while (merged.received < opts.connections - failed && now() < deadline) {
        await sleep(100);
        merged = merge(await Promise.all(clients.map((c) => c.call({ op: "stats" }))));
      }
      results.fanout = {
        users: opts.connections,
        delivered: merged.received,
        duplicated: merged.duplicates,
        batchAckMs: round(pub.ackedAt - pub.sentAt, 0),
        lastDeliveryMs: round(merged.lastReceiveAt - pub.sentAt, 0),
      };
    }

    if (opts.scenarios.includes("replay")) results.replay = await replay(server.url, opts.secret);

    if (opts.scenarios.includes("storm")) {
      await Promise.all(clients.map((c) => c.call({ op: "stats", reset: true })));
      // Alarms created while every stream is down must all arrive once after the storm.
      await Promise.all(clients.map((c) => c.call({ op: "close-sockets" })));
      const pub = await runPublisher({
        op: "fanout",
        url: server.url,
        token: publisher,
        users: opts.connections,
      });
      const t0 = now();
      const back = await Promise.all(clients.map((c) => c.call({ op: "reconnect" })));
      const reconnectedMs = now() - t0;
      const deadline = now() + 30_000;
      let merged = merge(await Promise.all(clients.map((c) => c.call({ op: "stats" }))));
      while (merged.received < opts.connections - failed && now() < deadline) {
        await sleep(100);
        merged = merge(await Promise.all(clients.map((c) => c.call({ op: "stats" }))));
      }
      results.storm = {
        connections: opts.connections,
        reconnected: back.reduce((a, b) => a + (b.reconnected as number), 0),
        failed: back.reduce((a, b) => a + (b.failed as number), 0),
        missed: opts.connections - pub.failed * 500 - merged.received,
        duplicated: merged.duplicates,
        allReconnectedMs: round(reconnectedMs, 0),
        allDeliveredMs: round(merged.lastReceiveAt - t0, 0),
      };
    }
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await server.stop();
  }

  const machine = `${navigator.hardwareConcurrency} cores, ${
    Math.round(Deno.systemMemoryInfo().total / 2 ** 30)
  } GiB, Deno ${Deno.version.deno}`;
  console.log(`\nalarmd bench (${machine})`);
  for (const [name, figures] of Object.entries(results)) {
    console.log(`\n${name}`);
    for (const [k, v] of Object.entries(figures)) console.log(`  ${k.padEnd(20)} ${v}`);
  }
  console.log("\n" + JSON.stringify({ machine, options: { ...opts, secret: undefined }, results }));
}

async function replay(url: string, secret: string) {
  const user = "replay-user";
  const publisher = await token(secret, "bench-publisher", true);
  const headers = { authorization: `Bearer ${publisher}`, "content-type": "application/json" };
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    const alarms = Array.from({ length: i === 0 ? 1 : 500 }, () => ({ userId: user, type: "r" }));
    const res = await fetch(`${url}/api/v1/alarms/batch`, {
      method: "POST",
      headers,
      body: JSON.stringify({ alarms }),
    });
    ids.push(...(await res.json()).items.map((a: { id: string }) => a.id));
  }
  const from = ids[0];
  const userToken = await token(secret, user);
  const t0 = now();
  const controller = new AbortController();
  const res = await fetch(`${url}/api/v1/users/alarm/subscribe`, {
    headers: { authorization: `Bearer ${userToken}`, "last-event-id": from },
    signal: controller.signal,
  });
  let count = 0;
  let text = "";
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  while (count < 1000) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
    let i: number;
    while ((i = text.indexOf("\n\n")) !== -1) {
      if (text.slice(0, i).includes("event: alarm")) count++;
      text = text.slice(i + 2);
    }
  }
  const ms = now() - t0;
  controller.abort();
  await reader.cancel().catch(() => {});
  return { replayed: count, lastReplayedMs: round(ms, 1) };
}

if (import.meta.main) await main();
