/**
 * Tokens from an identity provider: alarmd fetches the provider's JWKS (RS256/ES256) and must
 * accept exactly what that key set signs, with the algorithm pinned by the key type.
 */
import assert from "node:assert/strict";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { AuthUnavailableError } from "../../src/domain/errors.ts";
import { createJwtAuthenticator } from "../../src/http/auth.ts";
import { startTestServer } from "../helpers/test_server.ts";

/**
 * An identity provider's JWKS endpoint. `port` serves on a given port (one the test chose while
 * nothing listened there); `basicAuth` ("user:pass") makes it answer 401 without those
 * credentials; `failing` makes it answer 500 until cleared.
 */
async function jwksServer(options: { port?: number; basicAuth?: string } = {}) {
  const rsa = await generateKeyPair("RS256", { extractable: true });
  const ec = await generateKeyPair("ES256", { extractable: true });
  const keys = [
    { ...(await exportJWK(rsa.publicKey)), kid: "rsa-1", alg: "RS256", use: "sig" },
    { ...(await exportJWK(ec.publicKey)), kid: "ec-1", alg: "ES256", use: "sig" },
  ];
  let fetches = 0;
  let failing = false;
  const expected = options.basicAuth ? `Basic ${btoa(options.basicAuth)}` : null;
  const server = Deno.serve(
    { port: options.port ?? 0, hostname: "127.0.0.1", onListen() {} },
    (request) => {
      fetches++;
      if (expected && request.headers.get("authorization") !== expected) {
        return new Response("credentials required", { status: 401 });
      }
      if (failing) return new Response("down for maintenance", { status: 500 });
      return Response.json({ keys });
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}/.well-known/jwks.json`,
    rsa,
    ec,
    rsaJwk: keys[0],
    get fetches() {
      return fetches;
    },
    set failing(value: boolean) {
      failing = value;
    },
    close: () => server.shutdown(),
  };
}

/** A loopback port with nothing listening on it (a provider that cannot be reached). */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

const sign = (claims: Record<string, unknown>, alg: string, kid: string) =>
  new SignJWT(claims).setProtectedHeader({ alg, kid }).setSubject("kim");

Deno.test("RS256 and ES256 tokens from the JWKS are accepted; keys are fetched once and cached", async () => {
  const idp = await jwksServer();
  try {
    await using server = await startTestServer({ jwtSecret: undefined, jwtJwksUrl: idp.url });
    const rs = await sign({}, "RS256", "rsa-1").setExpirationTime("5m").sign(idp.rsa.privateKey);
    const es = await sign({ scope: "alarms:publish" }, "ES256", "ec-1").setExpirationTime("5m")
      .sign(idp.ec.privateKey);
    for (const token of [rs, es]) {
      const res = await server.fetch("/api/v1/users/alarms/unread-count", { token });
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { unread: 0 });
    }
    const created = await server.fetch("/api/v1/alarms", {
      method: "POST",
      token: es,
      json: { userId: "kim", type: "x" },
    });
    assert.equal(created.status, 201);
    await created.body?.cancel();
    assert.equal(idp.fetches, 1, "the key set is cached");
  } finally {
    await idp.close();
  }
});

Deno.test("HS/RS confusion, alg none, unknown keys and not-yet-valid tokens are refused", async () => {
  const idp = await jwksServer();
  try {
    await using server = await startTestServer({ jwtSecret: undefined, jwtJwksUrl: idp.url });
    // The classic confusion: HS256 "signed" with the RSA public key as the HMAC secret.
    const publicPem = new TextEncoder().encode(JSON.stringify(idp.rsaJwk));
    const confused = await sign({}, "HS256", "rsa-1").setExpirationTime("5m").sign(publicPem);
    const otherKey = await generateKeyPair("RS256");
    const unknown = await sign({}, "RS256", "rsa-1").setExpirationTime("5m")
      .sign(otherKey.privateKey);
    const notYet = await sign({}, "RS256", "rsa-1").setNotBefore("10m").setExpirationTime("20m")
      .sign(idp.rsa.privateKey);
    const noExp = await sign({}, "RS256", "rsa-1").sign(idp.rsa.privateKey);
    const unsigned = `${btoa(JSON.stringify({ alg: "none", typ: "JWT" }))}.${
      btoa(JSON.stringify({ sub: "kim", exp: Math.floor(Date.now() / 1000) + 300 }))
    }.`.replaceAll("=", "");
    const cases: [string, string, RegExp][] = [
      ["HS256 signed with the public key", confused, /algorithm/],
      ["signed by a key not in the set", unknown, /signature|key/],
      ["nbf in the future", notYet, /not valid yet/],
      ["no exp", noExp, /exp/],
      ["alg none", unsigned, /algorithm|invalid/],
    ];
    for (const [what, token, message] of cases) {
      const res = await server.fetch("/api/v1/users/alarms/unread-count", { token });
      assert.equal(res.status, 401, what);
      const body = await res.json();
      assert.equal(body.error.code, "unauthorized", what);
      assert.match(body.error.message, message, `${what}: ${body.error.message}`);
    }
  } finally {
    await idp.close();
  }
});

Deno.test("with both a secret and a JWKS, each key type verifies only its own algorithm", async () => {
  const idp = await jwksServer();
  try {
    await using server = await startTestServer({ jwtJwksUrl: idp.url });
    const hs = await server.userToken("kim");
    const rs = await sign({}, "RS256", "rsa-1").setExpirationTime("5m").sign(idp.rsa.privateKey);
    for (const token of [hs, rs]) {
      const res = await server.fetch("/api/v1/users/alarms/unread-count", { token });
      assert.equal(res.status, 200);
      await res.body?.cancel();
    }
    const publicAsSecret = new TextEncoder().encode(JSON.stringify(idp.rsaJwk));
    const confused = await sign({}, "HS256", "rsa-1").setExpirationTime("5m").sign(publicAsSecret);
    const res = await server.fetch("/api/v1/users/alarms/unread-count", { token: confused });
    assert.equal(res.status, 401);
    await res.body?.cancel();
  } finally {
    await idp.close();
  }
});

Deno.test("an unreachable key set is 503 auth_unavailable with Retry-After, logged without its credentials, readyz is 503; once reachable the token is accepted", async () => {
  const port = closedPort();
  const url = `http://idp-user:s3cret-pass@127.0.0.1:${port}/.well-known/jwks.json`;
  await using server = await startTestServer({ jwtSecret: undefined, jwtJwksUrl: url });
  const signer = await generateKeyPair("RS256");
  const token = await sign({}, "RS256", "rsa-1").setExpirationTime("5m").sign(signer.privateKey);

  const refused = await server.fetch("/api/v1/users/alarms/unread-count", { token });
  assert.equal(refused.status, 503, "not 401: the token may be fine");
  assert.ok(Number(refused.headers.get("retry-after")) >= 1);
  assert.equal(refused.headers.get("www-authenticate"), null);
  const body = await refused.json();
  assert.equal(body.error.code, "auth_unavailable");
  assert.doesNotMatch(JSON.stringify(body), /127\.0\.0\.1|s3cret/, "no internals to the client");

  const logged = server.logs.filter((l) => l.msg === "cannot fetch the JWT key set");
  assert.ok(logged.length >= 1, "the failure is logged");
  assert.equal(logged[0].level, "error");
  assert.equal(logged[0].url, `http://***@127.0.0.1:${port}/.well-known/jwks.json`);
  assert.match(String(logged[0].error), /refused|connect/i);
  assert.doesNotMatch(JSON.stringify(server.logs), /s3cret|idp-user/, "credentials never logged");

  // JWKS only, never fetched: no key at all, so this instance cannot serve.
  const notReady = await server.fetch("/readyz");
  assert.equal(notReady.status, 503);
  assert.ok(Number(notReady.headers.get("retry-after")) >= 1);
  const readiness = await notReady.json();
  assert.equal(readiness.error.code, "unavailable");
  assert.match(readiness.error.message, /JWT key/);
  assert.doesNotMatch(readiness.error.message, /s3cret/);

  // The provider comes up (and wants the URL's credentials): within a few seconds, accepted.
  const idp = await jwksServer({ port, basicAuth: "idp-user:s3cret-pass" });
  try {
    const good = await sign({}, "RS256", "rsa-1").setExpirationTime("5m").sign(idp.rsa.privateKey);
    const deadline = Date.now() + 5_000;
    let res: Response;
    for (;;) {
      res = await server.fetch("/api/v1/users/alarms/unread-count", { token: good });
      if (res.status !== 503 || Date.now() > deadline) break;
      await res.body?.cancel();
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { unread: 0 });
    const ready = await server.fetch("/readyz");
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { status: "ready" });
    // The token signed by a key the provider does not list is refused as before.
    const forged = await server.fetch("/api/v1/users/alarms/unread-count", { token });
    assert.equal(forged.status, 401);
    await forged.body?.cancel();
  } finally {
    await idp.close();
  }
});

Deno.test("with a secret as well, an unreachable key set leaves HS256 working and readyz degraded", async () => {
  const url = `http://127.0.0.1:${closedPort()}/jwks.json`;
  await using server = await startTestServer({ jwtJwksUrl: url });
  const ready = await server.fetch("/readyz");
  assert.equal(ready.status, 200);
  const body = await ready.json();
  assert.equal(body.status, "degraded");
  assert.match(body.reasons.join(" "), /JWT key set/);

  const hs = await server.fetch("/api/v1/users/alarms/unread-count", {
    token: await server.userToken("kim"),
  });
  assert.equal(hs.status, 200);
  await hs.body?.cancel();
  const signer = await generateKeyPair("ES256");
  const es = await sign({}, "ES256", "ec-1").setExpirationTime("5m").sign(signer.privateKey);
  const refused = await server.fetch("/api/v1/users/alarms/unread-count", { token: es });
  assert.equal(refused.status, 503);
  assert.equal((await refused.json()).error.code, "auth_unavailable");
});

Deno.test("when the key set cannot be refreshed, its cached keys go on verifying, readiness is degraded, and a key it lacks is 503", async () => {
  const idp = await jwksServer();
  let now = Date.now();
  const failures: { url: string; error: string }[] = [];
  const authenticate = createJwtAuthenticator({
    jwksUrl: idp.url,
    now: () => now,
    onKeySetError: (failure) => failures.push(failure),
  });
  try {
    const token = (n: number, kid = "rsa-1", key = idp.rsa.privateKey) =>
      sign({ n }, "RS256", kid).setExpirationTime("1h").sign(key);
    assert.equal((await authenticate(await token(1))).userId, "kim");
    assert.deepEqual(await authenticate.keySetStatus(), { state: "ready" });
    assert.equal(idp.fetches, 1);

    idp.failing = true;
    now += 11 * 60_000; // older than the key set's maximum age: the next use refreshes it
    assert.equal((await authenticate(await token(2))).userId, "kim", "the cached key verifies");
    const status = await authenticate.keySetStatus();
    assert.equal(status.state, "stale");
    assert.match(status.state === "stale" ? status.reason : "", /HTTP 500.*cached keys/);
    assert.ok(failures.length >= 1);
    assert.match(failures[0].error, /HTTP 500/);

    // A key the cached set lacks may be new at the provider: not 401, but unavailable.
    const other = await generateKeyPair("RS256");
    const unknown = await token(3, "rsa-2", other.privateKey);
    now += 2_000;
    await assert.rejects(authenticate(unknown), AuthUnavailableError);

    idp.failing = false;
    now += 2_000;
    assert.deepEqual(await authenticate.keySetStatus(), { state: "ready" });
    await assert.rejects(authenticate(unknown), /key is unknown|signature/);
  } finally {
    await idp.close();
  }
});
