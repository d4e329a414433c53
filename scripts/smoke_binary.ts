/**
 * Starts an alarmd and checks what a self-hoster's first minutes need: it names its version,
 * serves, answers `alarmd health`, takes a publish and delivers it on a stream. The release
 * workflow runs it on every built executable, on a runner of the executable's own OS and
 * architecture, and on the compose example through its proxy; the compiled-binary test runs it
 * on the binary it builds, and tests/cli/smoke_binary_test.ts on `deno run main.ts`.
 *
 *   deno run -A scripts/smoke_binary.ts [--target TRIPLE] COMMAND [ARG…]
 *       starts `COMMAND serve` on a fresh KV file in a temp directory (COMMAND is the
 *       executable, or `deno run -A main.ts`); --target: what `--version` must name
 *   deno run -A scripts/smoke_binary.ts --url URL [--streams N]
 *       checks a running deployment (tokens signed with ALARMD_JWT_SECRET from the environment);
 *       N streams of one user must each get the alarm (behind a proxy they reach every instance)
 *
 * Every check prints one line; the first failure throws, and the command exits 1.
 */
import denoJson from "../deno.json" with { type: "json" };
import { mintToken } from "../src/cli/token.ts";

/** How long one step may take: a start-up, one command, one event on a stream. */
const STEP_MS = 30_000;

type Log = (line: string) => void;

export interface ExecutableOptions {
  /** The Rust target triple `--version` must name (a release asset built for it). */
  readonly target?: string;
  readonly log?: Log;
}

/** Runs COMMAND's `--version`, `serve`, `health` and `token`, and publishes through it. */
export async function smokeExecutable(
  command: readonly string[],
  options: ExecutableOptions = {},
): Promise<void> {
  const log = options.log ?? console.log;
  const version = await run(command, ["--version"], {});
  check(version.code === 0, `--version exited ${version.code}: ${version.stderr}`);
  const named = /^alarmd (\S+) \(deno (\S+), (\S+)\)\n$/.exec(version.stdout);
  check(named !== null, `--version printed ${JSON.stringify(version.stdout)}`);
  check(
    named[1] === denoJson.version,
    `--version names ${named[1]}, deno.json ${denoJson.version}`,
  );
  if (options.target) {
    check(named[3] === options.target, `--version names ${named[3]}, not ${options.target}`);
  }
  log(`ok  --version: ${version.stdout.trim()}`);

  const dir = await Deno.makeTempDir({ prefix: "alarmd-smoke-" });
  const secret = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(48))));
  const env = {
    ALARMD_PORT: "0",
    ALARMD_HOST: "127.0.0.1",
    ALARMD_KV_PATH: `${dir}/alarmd.kv`,
    ALARMD_JWT_SECRET: secret,
    ALARMD_LOG_LEVEL: "info",
  };
  const server = spawn(command, ["serve"], env);
  try {
    const url = await server.listening();
    log(`ok  serve: listening on ${url}, KV file ${env.ALARMD_KV_PATH}`);
    for (const args of [["health"], ["health", "--ready"]]) {
      const health = await run(command, [...args, "--url", url], env);
      check(health.code === 0, `${args.join(" ")} exited ${health.code}: ${health.stderr}`);
      log(`ok  ${args.join(" ")}: ${health.stdout.trim()}`);
    }
    const token = async (args: string[]) => {
      const minted = await run(command, ["token", ...args], env);
      check(minted.code === 0, `token ${args.join(" ")} exited ${minted.code}: ${minted.stderr}`);
      return minted.stdout.trim();
    };
    const user = await token(["--sub", "smoke-user"]);
    const publisher = await token(["--sub", "smoke-backend", "--publish"]);
    log("ok  token: a user token and a publisher token");
    await smokeHttp(url, {
      user,
      publisher,
      userId: "smoke-user",
      streams: 1,
      log,
      stepMs: STEP_MS,
    });

    const code = await server.stop();
    // Windows has no SIGTERM: the process is terminated, not shut down.
    if (Deno.build.os !== "windows") {
      check(code === 0, `SIGTERM: exit code ${code}\n${server.stderr()}`);
      check(server.stderr().includes('"msg":"alarmd stopped"'), "no 'alarmd stopped' logged");
    }
    const down = await run(command, ["health", "--url", url], env);
    check(down.code === 1, `health on a stopped server exited ${down.code}`);
    log(`ok  stopped (exit ${code}); health then exits 1: ${down.stderr.trim()}`);
  } catch (error) {
    await server.stop();
    throw new Error(`${(error as Error).message}\n--- alarmd's stderr:\n${server.stderr()}`);
  } finally {
    await removeDir(dir);
  }
}

/** Checks a running deployment at `url` with tokens signed by `secret`. */
export async function smokeDeployment(
  url: string,
  secret: string,
  options: { readonly streams?: number; readonly log?: Log; readonly stepMs?: number } = {},
): Promise<void> {
  const userId = `smoke-${crypto.randomUUID().slice(0, 8)}`;
  const common = { secret, ttlMs: 10 * 60_000 };
  await smokeHttp(url, {
    user: await mintToken({ ...common, sub: userId, publish: false }),
    publisher: await mintToken({ ...common, sub: "smoke-backend", publish: true }),
    userId,
    streams: options.streams ?? 1,
    log: options.log ?? console.log,
    stepMs: options.stepMs ?? STEP_MS,
  });
}

/** /healthz, /, /docs, then `streams` open streams of `userId` that must each get one publish. */
async function smokeHttp(url: string, options: {
  user: string;
  publisher: string;
  userId: string;
  streams: number;
  log: Log;
  stepMs: number;
}): Promise<void> {
  const { log, stepMs } = options;
  const health = await fetchWithin(`${url}/healthz`, {}, stepMs);
  const body = await health.text();
  check(health.status === 200, `GET /healthz: ${health.status} ${body}`);
  check(JSON.parse(body).status === "ok", `GET /healthz: ${body}`);
  log(`ok  GET /healthz: ${body}`);
  for (const path of ["/", "/docs"]) {
    const page = await fetchWithin(`${url}${path}`, {}, stepMs);
    const html = await page.text();
    check(page.status === 200, `GET ${path}: ${page.status}`);
    check(/text\/html/.test(page.headers.get("content-type") ?? ""), `GET ${path}: not HTML`);
    check(/<html/i.test(html), `GET ${path}: no <html> in ${html.slice(0, 200)}`);
    log(`ok  GET ${path}: ${html.length} characters of HTML`);
  }

  const streams: EventStream[] = [];
  try {
    for (let i = 0; i < options.streams; i++) {
      const stream = await openStream(`${url}/api/v1/users/alarm/subscribe`, options.user, stepMs);
      streams.push(stream);
      // A proxy that buffers holds this small first event back: it must arrive on its own.
      const connect = JSON.parse((await stream.next("connect")).data);
      check(connect.userId === options.userId, `connect event for ${connect.userId}`);
    }
    log(`ok  ${options.streams} stream(s) of ${options.userId}: connect event received`);
    const created = await fetchWithin(`${url}/api/v1/alarms`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${options.publisher}`,
        "content-type": "application/json",
      },
      body: JSON.stringify({ userId: options.userId, type: "smoke", data: { at: Date.now() } }),
    }, stepMs);
    const alarm = await created.json();
    check(
      created.status === 201,
      `POST /api/v1/alarms: ${created.status} ${JSON.stringify(alarm)}`,
    );
    log(`ok  POST /api/v1/alarms: 201 ${alarm.id}`);
    const started = Date.now();
    for (const stream of streams) {
      const event = await stream.next("alarm");
      check(event.id === alarm.id, `stream got alarm ${event.id}, published ${alarm.id}`);
    }
    log(`ok  every stream got event: alarm id: ${alarm.id} (${Date.now() - started} ms)`);
  } finally {
    for (const stream of streams) await stream.close();
  }
}

interface EventStream {
  /** The next frame whose `event:` is `name`, skipping others; throws after `stepMs`. */
  next(name: string): Promise<{ id?: string; data: string }>;
  close(): Promise<void>;
}

async function openStream(url: string, token: string, stepMs: number): Promise<EventStream> {
  const controller = new AbortController();
  // Only the answer's head is timed here: the stream itself stays open until closed.
  const timer = setTimeout(() => controller.abort(), stepMs);
  let res: Response;
  try {
    res = await fetch(url, {
      headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" },
      signal: controller.signal,
    });
  } catch (error) {
    throw new Error(`GET ${url}: ${(error as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
  const type = res.headers.get("content-type") ?? "";
  if (res.status !== 200 || !res.body || !/text\/event-stream/.test(type)) {
    const body = await res.text().catch(() => "");
    throw new Error(`GET ${url}: ${res.status} ${type} ${body.slice(0, 300)}`);
  }
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  return {
    async next(name) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no "event: ${name}" within ${stepMs} ms; got ${buffer}`)),
          stepMs,
        );
      });
      try {
        for (;;) {
          const end = buffer.search(/\r?\n\r?\n/);
          if (end !== -1) {
            const frame = buffer.slice(0, end);
            buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
            const fields = new Map<string, string>();
            for (const line of frame.split(/\r?\n/)) {
              const colon = line.indexOf(":");
              if (colon <= 0) continue;
              const field = line.slice(0, colon);
              const value = line.slice(colon + 1).replace(/^ /, "");
              fields.set(
                field,
                field === "data" && fields.has("data") ? `${fields.get("data")}\n${value}` : value,
              );
            }
            if (fields.get("event") === name) {
              return { id: fields.get("id"), data: fields.get("data") ?? "" };
            }
            continue;
          }
          const { done, value } = await Promise.race([reader.read(), timeout]);
          check(!done, `the stream ended before "event: ${name}"; got ${buffer}`);
          buffer += value;
        }
      } finally {
        clearTimeout(timer);
      }
    },
    async close() {
      controller.abort();
      await reader.cancel().catch(() => {});
    },
  };
}

/** fetch that gives up after `stepMs` (or when `init.signal` aborts). */
async function fetchWithin(url: string, init: RequestInit, stepMs: number): Promise<Response> {
  const signal = init.signal
    ? AbortSignal.any([init.signal, AbortSignal.timeout(stepMs)])
    : AbortSignal.timeout(stepMs);
  try {
    return await fetch(url, { ...init, signal });
  } catch (error) {
    throw new Error(`${init.method ?? "GET"} ${url}: ${(error as Error).message}`);
  }
}

function check(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

/** COMMAND ARGS to completion, with `env` added to this process's environment. */
async function run(command: readonly string[], args: string[], env: Record<string, string>) {
  const { code, stdout, stderr } = await new Deno.Command(command[0], {
    args: [...command.slice(1), ...args],
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(STEP_MS),
  }).output();
  const decoder = new TextDecoder();
  return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
}

/** `COMMAND ARGS` in the background, its output collected. */
function spawn(command: readonly string[], args: string[], env: Record<string, string>) {
  const child = new Deno.Command(command[0], {
    args: [...command.slice(1), ...args],
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let err = "";
  const collect = async (stream: ReadableStream<Uint8Array>, add: (s: string) => void) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) add(chunk);
  };
  const pumps = Promise.all([
    collect(child.stdout, () => {}),
    collect(child.stderr, (s) => (err += s)),
  ]);
  const status = child.status.then(async (s) => (await pumps, s));
  let exited = false;
  void status.then(() => (exited = true));
  return {
    stderr: () => err,
    /** The URL from the "alarmd listening" log line. */
    async listening(): Promise<string> {
      const deadline = Date.now() + STEP_MS;
      for (;;) {
        const url = /"msg":"alarmd listening","url":"(http:\/\/[^"]+)"/.exec(err)?.[1];
        if (url) return url;
        check(!exited, `alarmd exited before listening:\n${err}`);
        check(Date.now() < deadline, `alarmd did not listen within ${STEP_MS} ms:\n${err}`);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    },
    /** SIGTERM (Windows has none: terminated), then the exit code. */
    async stop(): Promise<number> {
      if (!exited) {
        try {
          child.kill(Deno.build.os === "windows" ? "SIGKILL" : "SIGTERM");
        } catch {
          // already gone
        }
      }
      return (await status).code;
    },
  };
}

/** Removes `dir`; a file still held open for a moment (Windows) gets a few more tries. */
async function removeDir(dir: string): Promise<void> {
  for (let attempt = 0;; attempt++) {
    try {
      return await Deno.remove(dir, { recursive: true });
    } catch (error) {
      if (attempt >= 10) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

if (import.meta.main) {
  let target: string | undefined;
  let url: string | undefined;
  let streams = 1;
  let i = 0;
  for (; i < Deno.args.length && Deno.args[i].startsWith("--"); i++) {
    const [flag, value] = [Deno.args[i], Deno.args[++i]];
    if (flag === "--target") target = value;
    else if (flag === "--url") url = value;
    else if (flag === "--streams") streams = Number(value);
    else {
      console.error(`smoke: unknown option ${flag} (accepted: --target, --url, --streams)`);
      Deno.exit(2);
    }
  }
  const command = Deno.args.slice(i);
  // A path (dist/alarmd…), not a name to look up on PATH.
  if (command.length > 0 && /[\\/]/.test(command[0])) command[0] = Deno.realPathSync(command[0]);
  try {
    if (url) {
      const secret = Deno.env.get("ALARMD_JWT_SECRET");
      if (!secret) throw new Error("--url needs ALARMD_JWT_SECRET, the deployment's secret");
      await smokeDeployment(url, secret, { streams });
    } else {
      if (command.length === 0) throw new Error("give the executable to start, or --url");
      await smokeExecutable(command, { target });
    }
    console.log("smoke: every check passed");
  } catch (error) {
    console.error(`smoke: FAILED: ${(error as Error).message}`);
    Deno.exit(1);
  }
}
