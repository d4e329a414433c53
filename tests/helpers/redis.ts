/**
 * A real redis-server (Debian's package, installed by scripts/install_deps.sh) on a random
 * loopback port, no persistence. Tests that need it call `redisAvailable()` first: under CI
 * a missing server is a failure, elsewhere the test is skipped with the reason printed.
 */
import { delay } from "./wait.ts";

export interface RedisServer extends AsyncDisposable {
  readonly url: string;
  readonly port: number;
  /** Kills the server (SIGKILL: an outage, not a shutdown). */
  kill(): Promise<void>;
  /** Starts it again on the same port. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function redisAvailable(): Promise<string | null> {
  try {
    const { success } = await new Deno.Command("redis-server", {
      args: ["--version"],
      stdout: "null",
    })
      .output();
    if (success) return null;
  } catch {
    // not installed
  }
  const reason = "redis-server is not installed (bash scripts/install_deps.sh installs it)";
  if (Deno.env.get("CI") === "true") throw new Error(`CI needs redis-server: ${reason}`);
  console.log(`redis tests skipped: ${reason}`);
  return reason;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

async function waitForPort(port: number, up: boolean) {
  for (let i = 0; i < 200; i++) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      if (up) return;
    } catch {
      if (!up) return;
    }
    await delay(25);
  }
  throw new Error(`redis on ${port} did not come ${up ? "up" : "down"}`);
}

export async function startRedis(): Promise<RedisServer> {
  const port = freePort();
  let child: Deno.ChildProcess | null = null;
  const spawn = async () => {
    child = new Deno.Command("redis-server", {
      args: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
      stdout: "null",
      stderr: "null",
    }).spawn();
    await waitForPort(port, true);
  };
  const kill = async () => {
    if (!child) return;
    const c: Deno.ChildProcess = child;
    child = null;
    try {
      c.kill("SIGKILL");
    } catch {
      // already gone
    }
    await c.status;
    await waitForPort(port, false);
  };
  await spawn();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    kill,
    restart: spawn,
    stop: kill,
    [Symbol.asyncDispose]: kill,
  };
}

/**
 * Waits until each bus says it can fan out: `ready()` gives up after its own short timeout, which
 * a loaded machine can pass while Redis is still accepting the first connection. Each retry
 * waits a little first: a bus whose connection is not up yet rejects at once, and a loop of
 * immediate rejections would keep the event loop from ever connecting it.
 */
export async function whenReady(...buses: { ready(): Promise<void> }[]): Promise<void> {
  const deadline = Date.now() + 15_000;
  await Promise.all(buses.map(async (bus) => {
    for (;;) {
      try {
        return await bus.ready();
      } catch (error) {
        if (Date.now() > deadline) throw error;
      }
      await delay(20);
    }
  }));
}
