/**
 * Tokens from an identity provider: alarmd fetches the provider's JWKS (RS256/ES256) and must
 * accept exactly what that key set signs, with the algorithm pinned by the key type.
 */
import assert from "node:assert/strict";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { startTestServer } from "../helpers/test_server.ts";

async function jwksServer() {
  const rsa = await generateKeyPair("RS256", { extractable: true });
  const ec = await generateKeyPair("ES256", { extractable: true });
  const keys = [
    { ...(await exportJWK(rsa.publicKey)), kid: "rsa-1", alg: "RS256", use: "sig" },
    { ...(await exportJWK(ec.publicKey)), kid: "ec-1", alg: "ES256", use: "sig" },
  ];
  let fetches = 0;
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, () => {
    fetches++;
    return Response.json({ keys });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/.well-known/jwks.json`,
    rsa,
    ec,
    rsaJwk: keys[0],
    get fetches() {
      return fetches;
    },
    close: () => server.shutdown(),
  };
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
