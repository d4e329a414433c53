/**
 * `alarmd health [--ready] [--url URL]` as a real process against a real server: exit 0 on a
 * 200, 1 with the reason on anything else, 2 for a usage error.
 */
import assert from "node:assert/strict";
import {
  checkHealth,
  defaultHealthUrl,
  HEALTH_TIMEOUT_MS,
  healthEndpoint,
} from "../../src/cli/health.ts";
import { startTestServer } from "../helpers/test_server.ts";

const ROOT = new URL("../../", import.meta.url);

/** Runs `deno run main.ts health …` with only `env` (and NO_COLOR) in its environment. */
async function health(args: string[], env: Record<string, string> = {}) {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--unstable-kv", "-A", "main.ts", "health", ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
}

function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

Deno.test("health exits 0 when /healthz answers 200, and prints what it answered", async () => {
  await using server = await startTestServer();
  const { code, stdout, stderr } = await health(["--url", server.url]);
  assert.equal(code, 0, stderr);
  assert.equal(stderr, "");
  assert.match(stdout, /^alarmd health: http:\/\/127\.0\.0\.1:\d+\/healthz: 200 /);
  assert.match(stdout, /"status":"ok"/);
  assert.equal(stdout.split("\n").length, 2, "one line");
});

Deno.test("health asks http://127.0.0.1:$ALARMD_PORT by default; --ready asks /readyz", async () => {
  await using server = await startTestServer();
  const port = new URL(server.url).port;
  const live = await health([], { ALARMD_PORT: port });
  assert.equal(live.code, 0, live.stderr);
  assert.ok(live.stdout.includes(`http://127.0.0.1:${port}/healthz: 200`), live.stdout);
  const ready = await health(["--ready"], { ALARMD_PORT: port, ALARMD_HOST: "0.0.0.0" });
  assert.equal(ready.code, 0, ready.stderr);
  assert.match(ready.stdout, new RegExp(`127\\.0\\.0\\.1:${port}/readyz: 200 .*"status":"ready"`));
});

Deno.test("--ready exits 1 with the reason while the instance is alive but not ready", async () => {
  // JWKS only, at a closed port: no key can ever verify a token, so /readyz is 503.
  await using server = await startTestServer({
    jwtSecret: undefined,
    jwtJwksUrl: `http://127.0.0.1:${closedPort()}/.well-known/jwks.json`,
  });
  const ready = await health(["--ready", "--url", server.url]);
  assert.equal(ready.code, 1);
  assert.equal(ready.stdout, "");
  assert.match(ready.stderr, /^alarmd health: http:\/\/127\.0\.0\.1:\d+\/readyz: answered 503: /);
  assert.match(ready.stderr, /JWT key/, "alarmd's own message is the reason");
  assert.equal(ready.stderr.trimEnd().split("\n").length, 1, ready.stderr);

  // Liveness is what a container health check asks: the process serves, so no restart.
  const live = await health(["--url", server.url]);
  assert.equal(live.code, 0, live.stderr);
});

Deno.test("health exits 1 naming the refused connection when nothing listens", async () => {
  const port = closedPort();
  for (const args of [[], ["--ready"]]) {
    const { code, stdout, stderr } = await health(args, { ALARMD_PORT: String(port) });
    assert.equal(code, 1);
    assert.equal(stdout, "");
    const path = args.length ? "readyz" : "healthz";
    assert.match(stderr, new RegExp(`^alarmd health: http://127\\.0\\.0\\.1:${port}/${path}: `));
    assert.match(stderr, /cannot connect \(.*refused/i);
  }
});

Deno.test("health refuses a malformed --url, a port of 0 and a bad setting with exit 2", async () => {
  const cases: [string[], Record<string, string>, RegExp][] = [
    [["--url", "ftp://127.0.0.1"], {}, /^alarmd: --url must be an http\(s\) URL/],
    [["--url", "not a url"], {}, /^alarmd: --url must be an http\(s\) URL/],
    [[], { ALARMD_PORT: "0" }, /^alarmd: ALARMD_PORT is 0 .*--url/],
    [[], { ALARMD_PORT: "eighty" }, /^alarmd: ALARMD_PORT \(--port\)/],
    [["--url"], {}, /^alarmd: --url needs a value/],
  ];
  for (const [args, env, expected] of cases) {
    const { code, stdout, stderr } = await health(args, env);
    assert.equal(code, 2, `${args.join(" ")} ${JSON.stringify(env)}: ${stderr}`);
    assert.equal(stdout, "");
    assert.match(stderr, expected);
  }
});

Deno.test("checkHealth: a redirect or a 500 is a failure, a silent server times out", async () => {
  const answers = new Map([
    ["/redirect/healthz", () => Response.redirect("https://127.0.0.1/healthz", 301)],
    ["/broken/healthz", () => new Response("<h1>Bad gateway</h1>\n", { status: 502 })],
  ]);
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) =>
      (answers.get(new URL(req.url).pathname) ?? (() => new Response("?", { status: 404 })))(),
  );
  // Accepts connections and never answers.
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of silent) held.push(conn);
  })();
  try {
    const base = `http://127.0.0.1:${server.addr.port}`;
    const redirected = await checkHealth(healthEndpoint(`${base}/redirect`, false));
    assert.deepEqual(redirected, { ok: false, report: `${base}/redirect/healthz: answered 301` });
    const broken = await checkHealth(healthEndpoint(`${base}/broken/`, false));
    assert.deepEqual(broken, {
      ok: false,
      report: `${base}/broken/healthz: answered 502: <h1>Bad gateway</h1>`,
    });
    const started = Date.now();
    const quiet = await checkHealth(
      healthEndpoint(`http://127.0.0.1:${silent.addr.port}`, true),
      { timeoutMs: 300 },
    );
    assert.equal(quiet.ok, false);
    assert.match(quiet.report, /\/readyz: no answer within 0\.3 s$/);
    assert.ok(Date.now() - started < HEALTH_TIMEOUT_MS, "the given timeout, not the default");
  } finally {
    silent.close();
    await accepting.catch(() => {});
    for (const conn of held) conn.close();
    await server.shutdown();
  }
});

Deno.test("the default URL is loopback for a wildcard address, else the configured one", () => {
  assert.equal(defaultHealthUrl({ host: "0.0.0.0", port: 8080 }), "http://127.0.0.1:8080");
  assert.equal(defaultHealthUrl({ host: "::", port: 9000 }), "http://127.0.0.1:9000");
  assert.equal(defaultHealthUrl({ host: "10.1.2.3", port: 80 }), "http://10.1.2.3:80");
  assert.equal(defaultHealthUrl({ host: "::1", port: 8080 }), "http://[::1]:8080");
  assert.throws(() => defaultHealthUrl({ host: "0.0.0.0", port: 0 }), /--url/);
  assert.equal(
    healthEndpoint("https://alarms.example.com/alarmd?x=1", true).href,
    "https://alarms.example.com/alarmd/readyz",
  );
  assert.equal(
    healthEndpoint("http://127.0.0.1:8080", false).href,
    "http://127.0.0.1:8080/healthz",
  );
});
