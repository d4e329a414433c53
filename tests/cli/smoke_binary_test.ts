/**
 * scripts/smoke_binary.ts is what the release workflow runs on every built executable and on
 * the compose example; a check that only ever runs in GitHub Actions would be debugged there.
 * Here it runs on `deno run main.ts` (the same CLI, not compiled) and on a test server, and is
 * shown to fail where it must: a proxy that buffers streams, a wrong secret.
 */
import assert from "node:assert/strict";
import { smokeDeployment, smokeExecutable } from "../../scripts/smoke_binary.ts";
import { startTestServer, TEST_SECRET } from "../helpers/test_server.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

Deno.test("the release smoke check passes on `deno run main.ts`: version, serve, health, token, publish, stream, stop", async () => {
  const lines: string[] = [];
  await smokeExecutable(
    [Deno.execPath(), "run", "--unstable-kv", "--unstable-net", "-A", MAIN],
    { target: Deno.build.target, log: (line) => lines.push(line) },
  );
  const checks = lines.map((line) => /^ok {2}([^:]+):/.exec(line)?.[1]);
  assert.deepEqual(checks, [
    "--version",
    "serve",
    "health",
    "health --ready",
    "token",
    "GET /healthz",
    "GET /",
    "GET /docs",
    "1 stream(s) of smoke-user",
    "POST /api/v1/alarms",
    "every stream got event",
    "stopped (exit 0); health then exits 1",
  ], lines.join("\n"));
});

Deno.test("the smoke check refuses an executable built for another target", async () => {
  await assert.rejects(
    smokeExecutable([Deno.execPath(), "run", "-A", MAIN], {
      target: "riscv64gc-unknown-linux-gnu",
      log: () => {},
    }),
    /--version names \S+, not riscv64gc-unknown-linux-gnu/,
  );
});

Deno.test("the deployment smoke check: three streams each get the alarm; a wrong secret fails", async () => {
  await using server = await startTestServer();
  const lines: string[] = [];
  await smokeDeployment(server.url, TEST_SECRET, { streams: 3, log: (l) => lines.push(l) });
  assert.match(lines.at(-1)!, /^ok {2}every stream got event: alarm id: \S+ \(\d+ ms\)$/);
  await assert.rejects(
    smokeDeployment(server.url, "another-secret-that-is-long-enough-for-hs256", {
      log: () => {},
    }),
    /subscribe: 401/,
  );
});

/**
 * A reverse proxy to `target`. Buffering, it passes an answer on only once it has 64 KiB of
 * it, or all of it: what nginx does to an event stream without `proxy_buffering off` (up to its
 * buffer size).
 */
function proxyTo(target: string, buffering: boolean) {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    const upstream = await fetch(`${target}${url.pathname}${url.search}`, {
      method: req.method,
      headers: req.headers,
      body: req.body,
    });
    const init = { status: upstream.status, headers: upstream.headers };
    if (!buffering) return new Response(upstream.body, init);
    const chunks: Uint8Array[] = [];
    let size = 0;
    for await (const chunk of upstream.body ?? []) {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= 65_536) break;
    }
    return new Response(new Blob(chunks as BlobPart[]), init);
  });
}

Deno.test("the deployment smoke check passes through a streaming proxy and fails behind one that buffers", async () => {
  await using server = await startTestServer();
  const streaming = proxyTo(server.url, false);
  const buffering = proxyTo(server.url, true);
  try {
    await smokeDeployment(`http://127.0.0.1:${streaming.addr.port}`, TEST_SECRET, {
      streams: 2,
      log: () => {},
      stepMs: 5_000,
    });
    await assert.rejects(
      smokeDeployment(`http://127.0.0.1:${buffering.addr.port}`, TEST_SECRET, {
        log: () => {},
        stepMs: 1_500,
      }),
      /subscribe: .*(abort|timed out)/i,
    );
  } finally {
    // alarmd ends its streams first, so the proxies' reads of them end too.
    await server.close();
    await Promise.all([streaming.shutdown(), buffering.shutdown()]);
  }
});

Deno.test("the smoke script's command line: --url with ALARMD_JWT_SECRET passes, without it fails", async () => {
  await using server = await startTestServer();
  const script = new URL("../../scripts/smoke_binary.ts", import.meta.url).pathname;
  const run = async (env: Record<string, string>) => {
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", script, "--url", server.url, "--streams", "2"],
      env: { NO_COLOR: "1", ...env },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    return {
      code,
      stdout: new TextDecoder().decode(stdout),
      stderr: new TextDecoder().decode(stderr),
    };
  };
  const passed = await run({ ALARMD_JWT_SECRET: TEST_SECRET });
  assert.equal(passed.code, 0, passed.stderr);
  assert.match(passed.stdout, /^ok {2}2 stream\(s\) of smoke-\S+: connect event received$/m);
  assert.match(passed.stdout, /smoke: every check passed\n$/);
  const failed = await run({});
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /smoke: FAILED: --url needs ALARMD_JWT_SECRET/);
});
