/**
 * alarmd as a real child process (`deno run main.ts serve`) on a random loopback port with a
 * fresh KV file, for tests that measure the server from outside (its resident memory).
 */
import { TEST_SECRET } from "../helpers/test_server.ts";

const ROOT = new URL("../../", import.meta.url);

export interface ServerProcess extends AsyncDisposable {
  readonly pid: number;
  readonly url: string;
  readonly port: number;
  /** JSON log lines the server wrote to stderr so far. */
  logs(): Record<string, unknown>[];
  /** SIGTERM, then SIGKILL if it has not exited within 10 s; resolves with the exit code. */
  stop(): Promise<number>;
}

export async function startServerProcess(env: Record<string, string>): Promise<ServerProcess> {
  const dir = await Deno.makeTempDir({ prefix: "alarmd-process-" });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--unstable-kv", "-A", "main.ts", "serve"],
    cwd: ROOT,
    env: {
      NO_COLOR: "1",
      ALARMD_JWT_SECRET: TEST_SECRET,
      ALARMD_PORT: "0",
      ALARMD_HOST: "127.0.0.1",
      ALARMD_KV_PATH: `${dir}/alarmd.kv`,
      ...env,
    },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let stderr = "";
  const pump = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) stderr += chunk;
  })();
  const status = child.status.then(async (s) => {
    await pump;
    return s;
  });
  let exited = false;
  void status.then(() => (exited = true));

  const logs = () =>
    stderr.split("\n").slice(0, -1).filter((line) => line.startsWith("{")).map((line) =>
      JSON.parse(line)
    );

  let stopping: Promise<number> | null = null;
  const stop = () =>
    stopping ??= (async () => {
      if (!exited) child.kill("SIGTERM");
      const timer = setTimeout(() => !exited && child.kill("SIGKILL"), 10_000);
      const { code } = await status;
      clearTimeout(timer);
      await Deno.remove(dir, { recursive: true });
      return code;
    })();

  const deadline = Date.now() + 20_000;
  let url: string | undefined;
  while (!url) {
    url = logs().find((l) => l.msg === "alarmd listening")?.url as string | undefined;
    if (url) break;
    if (exited || Date.now() > deadline) {
      await stop();
      throw new Error(`alarmd did not start:\n${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    pid: child.pid,
    url,
    port: Number(new URL(url).port),
    logs,
    stop,
    [Symbol.asyncDispose]: async () => void await stop(),
  };
}
