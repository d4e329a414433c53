/** alarmd as a real child process (`deno run main.ts …`), for CLI, signal and crash tests. */
import { delay } from "./wait.ts";

const ROOT = new URL("../../", import.meta.url);

export interface AlarmdProcess extends AsyncDisposable {
  readonly pid: number;
  stdout(): string;
  stderr(): string;
  waitForStdout(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Sends the signal and resolves with the exit code. */
  stop(signal?: Deno.Signal): Promise<number>;
  readonly status: Promise<Deno.CommandStatus>;
}

export async function startProcess(
  args: string[],
  env: Record<string, string>,
  options: {
    waitFor?: RegExp;
    timeoutMs?: number;
    command?: string[];
    /** Starts the process under this `ulimit -n`. */
    openFileLimit?: number;
  } = {},
): Promise<AlarmdProcess> {
  let argv = [
    ...(options.command ??
      [Deno.execPath(), "run", "--unstable-kv", "--unstable-net", "-A", "main.ts"]),
    ...args,
  ];
  if (options.openFileLimit) {
    // The shell lowers its own limit, then becomes the command, which inherits it.
    argv = ["sh", "-c", `ulimit -n ${options.openFileLimit} && exec "$0" "$@"`, ...argv];
  }
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    cwd: ROOT,
    env: { NO_COLOR: "1", ALARMD_PORT: "0", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  let err = "";
  const collect = async (stream: ReadableStream<Uint8Array>, add: (s: string) => void) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) add(chunk);
  };
  const pumps = Promise.all([
    collect(child.stdout, (s) => (out += s)),
    collect(child.stderr, (s) => (err += s)),
  ]);
  const status = child.status.then(async (s) => {
    await pumps;
    return s;
  });
  let exited = false;
  void status.then(() => (exited = true));

  async function waitForStdout(pattern: RegExp, timeoutMs = options.timeoutMs ?? 20_000) {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(out)) {
      if (exited) throw new Error(`alarmd exited before ${pattern}: ${out}\n${err}`);
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${pattern}: ${out}\n${err}`);
      }
      await delay(20);
    }
    return out;
  }

  const stop = async (signal: Deno.Signal = "SIGTERM") => {
    if (!exited) {
      try {
        child.kill(signal);
      } catch {
        // already gone
      }
    }
    return (await status).code;
  };
  if (options.waitFor) {
    try {
      await waitForStdout(options.waitFor);
    } catch (error) {
      await stop("SIGKILL");
      throw error;
    }
  }
  return {
    pid: child.pid,
    stdout: () => out,
    stderr: () => err,
    waitForStdout,
    stop,
    status,
    [Symbol.asyncDispose]: async () => {
      await stop("SIGKILL");
    },
  };
}

export interface ServeProcess extends AlarmdProcess {
  readonly url: string;
  readonly port: number;
  /** The JSON log lines written to stderr so far. */
  logs(): Record<string, unknown>[];
}

/**
 * `alarmd serve` as a real process with the test secret on 127.0.0.1 and info logs; resolves
 * once it listens (and, with `--workers`, once every isolate has started). Without an
 * ALARMD_KV_PATH it gets a fresh KV file in a temp directory, removed when it stops.
 */
export async function startServeProcess(
  env: Record<string, string>,
  args: string[] = [],
  options: { openFileLimit?: number } = {},
): Promise<ServeProcess> {
  const { TEST_SECRET } = await import("./test_server.ts");
  const ownDir = env.ALARMD_KV_PATH ? null : await Deno.makeTempDir({ prefix: "alarmd-process-" });
  const proc = await startProcess(["serve", ...args], {
    ALARMD_JWT_SECRET: TEST_SECRET,
    ALARMD_HOST: "127.0.0.1",
    ALARMD_LOG_LEVEL: "info",
    ...(ownDir ? { ALARMD_KV_PATH: `${ownDir}/alarmd.kv` } : {}),
    ...env,
  }, { openFileLimit: options.openFileLimit });
  const stop = async (signal: Deno.Signal = "SIGTERM") => {
    const code = await proc.stop(signal);
    if (ownDir) await Deno.remove(ownDir, { recursive: true }).catch(() => {});
    return code;
  };
  const workers = args.includes("--workers");
  for (let i = 0; i < 400; i++) {
    const log = proc.stderr();
    const url = /"msg":"alarmd listening","url":"(http:\/\/[^"]+)"/.exec(log)?.[1];
    if (url && (!workers || log.includes('"msg":"workers started"'))) {
      return {
        ...proc,
        url,
        port: Number(new URL(url).port),
        logs: () =>
          proc.stderr().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l)),
        stop,
        [Symbol.asyncDispose]: async () => void await stop("SIGKILL"),
      };
    }
    await delay(25);
  }
  await stop("SIGKILL");
  throw new Error(`alarmd did not start: ${proc.stderr()}`);
}
