/**
 * A real alarmd on a random loopback port with a fresh KV file in a temp directory, built by
 * the same composition root as production. Close it in a `finally` (or `await using`).
 */
import type { Config } from "../../src/config.ts";
import { loadConfig } from "../../src/config.ts";
import type { Clock } from "../../src/domain/ports.ts";
import { mintToken } from "../../src/cli/token.ts";
import type { RunningServer } from "../../src/server.ts";
import { startServer } from "../../src/server.ts";

export const TEST_SECRET = "test-secret-that-is-long-enough-for-hs256!!";

/** A user token signed with TEST_SECRET. */
export function userToken(sub: string, ttlMs = 3_600_000): Promise<string> {
  return mintToken({ secret: TEST_SECRET, sub, publish: false, ttlMs });
}

/** A token with the alarms:publish scope, signed with TEST_SECRET. */
export function publisherToken(sub = "backend"): Promise<string> {
  return mintToken({ secret: TEST_SECRET, sub, publish: true, ttlMs: 3_600_000 });
}

export interface TestServer extends AsyncDisposable {
  readonly url: string;
  readonly config: Config;
  readonly kvPath: string;
  readonly dir: string;
  readonly server: RunningServer;
  /** JSON log lines the server wrote. */
  readonly logs: Record<string, unknown>[];
  userToken(sub: string, ttlMs?: number): Promise<string>;
  publisherToken(sub?: string): Promise<string>;
  /** fetch against the server; `token` becomes a Bearer header. */
  fetch(path: string, init?: RequestInit & { token?: string; json?: unknown }): Promise<Response>;
  close(): Promise<void>;
}

export async function startTestServer(
  overrides: Partial<Record<keyof Config, unknown>> = {},
  options: { clock?: Clock; dir?: string; keepDir?: boolean } = {},
): Promise<TestServer> {
  const dir = options.dir ?? await Deno.makeTempDir({ prefix: "alarmd-test-" });
  const kvPath = `${dir}/alarmd.kv`;
  const config = loadConfig({}, {}, {
    port: 0,
    host: "127.0.0.1",
    kvPath,
    jwtSecret: TEST_SECRET,
    logLevel: "debug",
    // Rate limits are off unless a test is about them: other tests burst on purpose.
    ratePublishPerSecond: 0,
    rateUserPerSecond: 0,
    rateConnectPerIpPerSecond: 0,
    ...overrides,
  });
  const logs: Record<string, unknown>[] = [];
  const logger = {
    debug: (msg: string, f = {}) => logs.push({ level: "debug", msg, ...f }),
    info: (msg: string, f = {}) => logs.push({ level: "info", msg, ...f }),
    warn: (msg: string, f = {}) => logs.push({ level: "warn", msg, ...f }),
    error: (msg: string, f = {}) => logs.push({ level: "error", msg, ...f }),
  };
  const server = await startServer(config, { clock: options.clock, logger });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await server.shutdown();
    if (!options.keepDir && !options.dir) await Deno.remove(dir, { recursive: true });
  };
  return {
    url: server.url,
    config,
    kvPath,
    dir,
    server,
    logs,
    userToken,
    publisherToken,
    fetch(path, init = {}) {
      const { token, json, ...rest } = init;
      const headers = new Headers(rest.headers);
      if (token) headers.set("authorization", `Bearer ${token}`);
      let body = rest.body;
      if (json !== undefined) {
        headers.set("content-type", "application/json");
        body = JSON.stringify(json);
      }
      return fetch(server.url + path, { ...rest, headers, body });
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
