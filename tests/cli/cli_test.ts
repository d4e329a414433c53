import assert from "node:assert/strict";
import { jwtVerify } from "jose";
import { CONFIG_KEYS, envName } from "../../src/config.ts";
import { TEST_SECRET } from "../helpers/test_server.ts";

const ROOT = new URL("../../", import.meta.url);

/** Runs `deno run main.ts …` as a real process, as a user would run the CLI. */
async function alarmd(args: string[], env: Record<string, string> = {}) {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--unstable-kv", "-A", "main.ts", ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
}

Deno.test("--help lists the commands and every setting with its variable and flag", async () => {
  const { code, stdout } = await alarmd(["--help"]);
  assert.equal(code, 0);
  const commands = ["serve", "serve --dev", "token --sub", "health \\[--ready\\]", "backup FILE"];
  for (const command of commands) {
    assert.match(stdout, new RegExp(command));
  }
  for (const key of CONFIG_KEYS) assert.ok(stdout.includes(envName(key)), envName(key));
  assert.match(stdout, /--max-connections-per-user/);
});

Deno.test("--version prints the version from deno.json and the Deno it runs on", async () => {
  const { version } = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  const { code, stdout } = await alarmd(["--version"]);
  assert.equal(code, 0);
  assert.equal(stdout, `alarmd ${version} (deno ${Deno.version.deno}, ${Deno.build.target})\n`);
});

Deno.test("an invalid setting stops start-up with exit 2 and one line naming it", async (t) => {
  const cases: [Record<string, string>, string[], RegExp][] = [
    [{ ALARMD_PORT: "eighty" }, ["serve"], /^alarmd: ALARMD_PORT \(--port\) .*"eighty"/],
    [{ ALARMD_PORT: "70000" }, ["serve"], /^alarmd: ALARMD_PORT \(--port\)/],
    [{}, ["serve", "--heartbeat-ms", "-5"], /^alarmd: ALARMD_HEARTBEAT_MS \(--heartbeat-ms\)/],
    [{ ALARMD_LOG_LEVEL: "loud" }, [], /^alarmd: ALARMD_LOG_LEVEL \(--log-level\)/],
    [
      { ALARMD_JWT_SECRET: "short" },
      ["serve"],
      /^alarmd: ALARMD_JWT_SECRET .*32 bytes.*\(hidden\)/,
    ],
    [{ ALARMD_JWT_JWKS_URL: "ftp://x" }, [], /^alarmd: ALARMD_JWT_JWKS_URL/],
    [{ ALARMD_POTR: "1" }, [], /^alarmd: ALARMD_POTR is not a known setting/],
    [{}, ["serve", "--prot", "1"], /^alarmd: --prot is not a known option/],
    [{}, ["bogus"], /^alarmd: unknown command "bogus"/],
    [{}, ["serve", "bogus"], /^alarmd: unexpected argument "bogus"/],
  ];
  for (const [env, args, expected] of cases) {
    await t.step(`${JSON.stringify(env)} ${args.join(" ")}`, async () => {
      const { code, stderr, stdout } = await alarmd(args, {
        ALARMD_JWT_SECRET: TEST_SECRET,
        ...env,
      });
      assert.equal(code, 2);
      assert.equal(stdout, "");
      assert.match(stderr, expected);
      assert.equal(stderr.trimEnd().split("\n").length, 1, stderr);
      assert.ok(!stderr.includes(TEST_SECRET), "the secret must never be printed");
    });
  }
});

Deno.test("serve without any JWT key refuses to start and says how to fix it", async () => {
  const { code, stderr } = await alarmd(["serve"]);
  assert.equal(code, 2);
  assert.match(stderr, /ALARMD_JWT_SECRET/);
  assert.match(stderr, /--dev/);
});

Deno.test("token mints a JWT that verifies against the configured secret", async () => {
  const { code, stdout } = await alarmd(["token", "--sub", "kim", "--publish", "--ttl", "2h"], {
    ALARMD_JWT_SECRET: TEST_SECRET,
  });
  assert.equal(code, 0);
  const { payload, protectedHeader } = await jwtVerify(
    stdout.trim(),
    new TextEncoder().encode(TEST_SECRET),
  );
  assert.equal(protectedHeader.alg, "HS256");
  assert.equal(payload.sub, "kim");
  assert.equal(payload.scope, "alarms:publish");
  const ttl = (payload.exp as number) - (payload.iat as number);
  assert.equal(ttl, 7200);
});

Deno.test("token without --publish has no scope; issuer and audience come from config", async () => {
  const { code, stdout } = await alarmd(["token", "--sub", "lee"], {
    ALARMD_JWT_SECRET: TEST_SECRET,
    ALARMD_JWT_ISSUER: "https://auth.example",
    ALARMD_JWT_AUDIENCE: "alarmd",
  });
  assert.equal(code, 0);
  const { payload } = await jwtVerify(stdout.trim(), new TextEncoder().encode(TEST_SECRET), {
    issuer: "https://auth.example",
    audience: "alarmd",
  });
  assert.equal(payload.scope, undefined);
  assert.equal((payload.exp as number) - (payload.iat as number), 3600);
});

Deno.test("token refuses a missing secret, a missing --sub and a malformed --ttl", async () => {
  const noSecret = await alarmd(["token", "--sub", "kim"]);
  assert.equal(noSecret.code, 2);
  assert.match(noSecret.stderr, /ALARMD_JWT_SECRET/);
  const noSub = await alarmd(["token"], { ALARMD_JWT_SECRET: TEST_SECRET });
  assert.equal(noSub.code, 2);
  assert.match(noSub.stderr, /--sub/);
  const badTtl = await alarmd(["token", "--sub", "k", "--ttl", "soon"], {
    ALARMD_JWT_SECRET: TEST_SECRET,
  });
  assert.equal(badTtl.code, 2);
  assert.match(badTtl.stderr, /--ttl/);
});
