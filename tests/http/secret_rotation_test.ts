/**
 * Rotating the keys that verify tokens without cutting anyone off: `ALARMD_JWT_SECRET_PREVIOUS`
 * verifies HS256 tokens signed before a rotation (and never signs), and with a key set (JWKS)
 * the provider publishes the old and the new key side by side, told apart by `kid`.
 */
import assert from "node:assert/strict";
import { exportJWK, generateKeyPair, jwtVerify, SignJWT } from "jose";
import { runCli } from "../../src/cli/run.ts";
import { mintToken } from "../../src/cli/token.ts";
import { ConfigError, describeConfig, loadConfig } from "../../src/config.ts";
import { createJwtAuthenticator } from "../../src/http/auth.ts";
import { createFakeClock } from "../helpers/fake_clock.ts";
import { advance, createAlarm, readToEnd, startLiveServer } from "../helpers/live_fixtures.ts";
import { openSse } from "../helpers/sse_client.ts";
import type { TestServer } from "../helpers/test_server.ts";
import { TEST_SECRET } from "../helpers/test_server.ts";
import { delay, waitUntil } from "../helpers/wait.ts";

/** What an operator rotates to (`openssl rand -base64 48`); TEST_SECRET is the one before. */
const NEW_SECRET = "bmV3LXNlY3JldC1hZnRlci1yb3RhdGlvbi10aGF0LWlzLWxvbmctZW5vdWdoLSE=";
const OLD_SECRET = TEST_SECRET;
const COUNT = "/api/v1/users/alarms/unread-count";
const SUBSCRIBE = "/api/v1/users/alarm/subscribe";

const tokenOf = (secret: string, sub = "kim", ttlMs = 3_600_000, publish = false) =>
  mintToken({ secret, sub, publish, ttlMs });

async function status(server: TestServer, token: string): Promise<number> {
  const res = await server.fetch(COUNT, { token });
  await res.body?.cancel();
  return res.status;
}

Deno.test("during a rotation, tokens signed with the current or the previous secret verify; others do not", async () => {
  await using server = await startLiveServer({
    jwtSecret: NEW_SECRET,
    jwtSecretPrevious: OLD_SECRET,
  });
  assert.equal(await status(server, await tokenOf(NEW_SECRET)), 200, "current secret");
  assert.equal(await status(server, await tokenOf(OLD_SECRET)), 200, "previous secret");
  const publisher = await tokenOf(OLD_SECRET, "backend", 3_600_000, true);
  const created = await server.fetch("/api/v1/alarms", {
    method: "POST",
    token: publisher,
    json: { userId: "kim", type: "rotation" },
  });
  assert.equal(created.status, 201, "a publisher still on the previous secret publishes");
  await created.body?.cancel();

  const other = await tokenOf("a-third-secret-nobody-configured-at-all-0123456789");
  const refused = await server.fetch(COUNT, { token: other });
  assert.equal(refused.status, 401);
  assert.match((await refused.json()).error.message, /signature/);
  // The previous secret checks claims like the current one: an expired token is still expired.
  const expired = await server.fetch(COUNT, { token: await tokenOf(OLD_SECRET, "kim", -60_000) });
  assert.equal(expired.status, 401);
  assert.match((await expired.json()).error.message, /expired/);
});

Deno.test("alarmd token signs with the current secret, never the previous one", async () => {
  let out = "";
  const code = await runCli({
    args: ["token", "--sub", "kim", "--ttl", "5m"],
    env: { ALARMD_JWT_SECRET: NEW_SECRET, ALARMD_JWT_SECRET_PREVIOUS: OLD_SECRET },
    stdout: (text) => (out += text),
    stderr: (text) => assert.fail(`unexpected stderr: ${text}`),
    stopSignal: new Promise(() => {}),
  });
  assert.equal(code, 0);
  const token = out.trim();
  const { payload } = await jwtVerify(token, new TextEncoder().encode(NEW_SECRET));
  assert.equal(payload.sub, "kim");
  await assert.rejects(jwtVerify(token, new TextEncoder().encode(OLD_SECRET)), /signature/);
});

Deno.test("once the previous secret is removed (a restart), its tokens get 401; the current ones keep working", async () => {
  const dir = await Deno.makeTempDir({ prefix: "alarmd-rotation-" });
  try {
    const before = await tokenOf(OLD_SECRET);
    const after = await tokenOf(NEW_SECRET);
    {
      await using server = await startLiveServer(
        { jwtSecret: NEW_SECRET, jwtSecretPrevious: OLD_SECRET },
        { dir },
      );
      assert.equal(await status(server, before), 200);
      assert.equal(await status(server, after), 200);
    }
    await using server = await startLiveServer({ jwtSecret: NEW_SECRET }, { dir });
    const res = await server.fetch(COUNT, { token: before });
    assert.equal(res.status, 401, "the previous secret's token, verified before the restart");
    assert.equal((await res.json()).error.code, "unauthorized");
    const stream = await server.fetch(`${SUBSCRIBE}?access_token=${before}`);
    assert.equal(stream.status, 401);
    await stream.body?.cancel();
    assert.equal(await status(server, after), 200);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a stream opened with a previous-secret token keeps delivering until the token expires", async () => {
  const clock = createFakeClock();
  await using server = await startLiveServer(
    { jwtSecret: NEW_SECRET, jwtSecretPrevious: OLD_SECRET, writeTimeoutMs: 3_600_000 },
    { clock },
  );
  const publisher = await tokenOf(NEW_SECRET, "backend", 3_600_000, true);
  const res = await fetch(`${server.url}${SUBSCRIBE}`, {
    headers: { authorization: `Bearer ${await tokenOf(OLD_SECRET, "kim", 90_000)}` },
  });
  assert.equal(res.status, 200);
  const end = readToEnd(res);
  await waitUntil(() => server.server.connectionCount("kim") === 1, "the stream is open");

  await advance(clock, 85_000);
  const alarm = await createAlarm(server, publisher, "kim");
  await delay(50);
  assert.equal(server.server.connectionCount("kim"), 1, "still open while the token is valid");

  await advance(clock, 10_000);
  const { text } = await end;
  assert.ok(text.includes(`id: ${alarm.id}\nevent: alarm\n`), "the alarm was delivered");
  const closed = server.logs.filter((l) => l.msg === "stream closed");
  assert.deepEqual(closed.map((l) => l.reason), ["token_expired"]);
});

Deno.test("ALARMD_JWT_SECRET_PREVIOUS: at least 32 bytes, never shown, and never alone", async () => {
  const short = () =>
    loadConfig({ ALARMD_JWT_SECRET: NEW_SECRET, ALARMD_JWT_SECRET_PREVIOUS: "x" }, {});
  assert.throws(short, ConfigError);
  assert.throws(
    short,
    /ALARMD_JWT_SECRET_PREVIOUS \(--jwt-secret-previous\) .*32 bytes.*got \(hidden\)$/,
  );

  assert.throws(
    () => loadConfig({ ALARMD_JWT_SECRET_PREVIOUS: OLD_SECRET }, {}),
    /ALARMD_JWT_SECRET_PREVIOUS \(--jwt-secret-previous\) needs ALARMD_JWT_SECRET/,
  );
  const config = loadConfig({}, { "jwt-secret": NEW_SECRET, "jwt-secret-previous": OLD_SECRET });
  assert.equal(config.jwtSecretPrevious, OLD_SECRET);
  const described = JSON.stringify(describeConfig(config));
  assert.ok(!described.includes(OLD_SECRET) && !described.includes(NEW_SECRET), described);
  assert.equal(describeConfig(config).jwtSecretPrevious, "(set)");

  let err = "";
  const code = await runCli({
    args: ["serve"],
    env: { ALARMD_JWT_SECRET_PREVIOUS: OLD_SECRET },
    stdout: () => {},
    stderr: (text) => (err += text),
    stopSignal: new Promise(() => {}),
  });
  assert.equal(code, 2);
  assert.match(err, /^alarmd: ALARMD_JWT_SECRET_PREVIOUS .*needs ALARMD_JWT_SECRET/);
  assert.ok(!err.includes(OLD_SECRET));
});

/** An identity provider whose published keys the test changes. */
function rotatingJwks() {
  let keys: Record<string, unknown>[] = [];
  let fetches = 0;
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, () => {
    fetches++;
    return Response.json({ keys });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/.well-known/jwks.json`,
    publish(next: Record<string, unknown>[]) {
      keys = next;
    },
    get fetches() {
      return fetches;
    },
    close: () => server.shutdown(),
  };
}

async function signingKey(kid: string) {
  const pair = await generateKeyPair("ES256", { extractable: true });
  const jwk = { ...(await exportJWK(pair.publicKey)), kid, alg: "ES256", use: "sig" };
  const sign = (ttl = "1h") =>
    new SignJWT({}).setProtectedHeader({ alg: "ES256", kid }).setSubject("kim")
      .setExpirationTime(ttl).sign(pair.privateKey);
  return { jwk, sign };
}

Deno.test("key set rotation by kid: key A, then A and B (tokens of both verify), then B alone (A's get 401)", async () => {
  const idp = rotatingJwks();
  let now = Date.now();
  const authenticate = createJwtAuthenticator({ jwksUrl: idp.url, now: () => now });
  try {
    const a = await signingKey("key-a");
    const b = await signingKey("key-b");
    idp.publish([a.jwk]);
    const aToken = await a.sign();
    assert.equal((await authenticate(aToken)).userId, "kim");

    // The provider adds B and starts signing with it. A token naming B, a key the set lacks,
    // fetches the set again (at most every 30 s).
    idp.publish([a.jwk, b.jwk]);
    now += 31_000;
    const bToken = await b.sign();
    assert.equal((await authenticate(bToken)).userId, "kim", "B's token, a new kid");
    assert.equal((await authenticate(aToken)).userId, "kim", "A's token in between");
    assert.equal((await authenticate(await a.sign())).userId, "kim", "a fresh A token too");
    assert.equal(idp.fetches, 2);

    // A is withdrawn. The set is refreshed once it is 10 minutes old (as /readyz, or the first
    // token verified after that, does); from then on A's tokens are refused, cached or not.
    idp.publish([b.jwk]);
    now += 10 * 60_000;
    assert.deepEqual(await authenticate.keySetStatus(), { state: "ready" });
    assert.equal(idp.fetches, 3);
    await assert.rejects(authenticate(aToken), /key is unknown/, "A's token, verified before");
    await assert.rejects(authenticate(await a.sign()), /key is unknown/, "a new A token");
    assert.equal((await authenticate(bToken)).userId, "kim", "B's token goes on working");
  } finally {
    await idp.close();
  }
});

Deno.test("a running server with a key set of two kids verifies tokens of both from one fetch", async () => {
  const idp = rotatingJwks();
  try {
    const a = await signingKey("key-a");
    const b = await signingKey("key-b");
    idp.publish([a.jwk, b.jwk]);
    await using server = await startLiveServer({ jwtSecret: undefined, jwtJwksUrl: idp.url });
    const aToken = await a.sign();
    const bToken = await b.sign();
    assert.equal(await status(server, aToken), 200);
    assert.equal(await status(server, bToken), 200);
    await using stream = await openSse(server.url + SUBSCRIBE, { token: bToken });
    assert.equal(stream.status, 200);
    await stream.next((e) => e.event === "connect");
    assert.equal(idp.fetches, 1, "one fetch serves both kids");
  } finally {
    await idp.close();
  }
});
