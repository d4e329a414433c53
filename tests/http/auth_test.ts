/**
 * Identity (api.md: Identity, Errors): where a token may travel, which tokens are refused, the
 * publish scope, and that a user only ever sees or changes their own alarms.
 */
import assert from "node:assert/strict";
import { generateKeyPair, SignJWT, UnsecuredJWT } from "jose";
import { startTestServer, TEST_SECRET } from "../helpers/test_server.ts";
import type { AlarmJson } from "../helpers/api_client.ts";
import {
  createOk,
  expectError,
  expectJson,
  expectNoContent,
  listAll,
  listPage,
  markRead,
  remove,
  unreadCount,
} from "../helpers/api_client.ts";

const KEY = new TextEncoder().encode(TEST_SECRET);
const nowSeconds = () => Math.floor(Date.now() / 1000);

interface Claims {
  sub?: unknown;
  exp?: number;
  scope?: string;
  iss?: string;
  aud?: string;
}

/** An HS256 token with exactly the given claims, signed with `key` (default: the server's). */
function sign(claims: Claims, options: { alg?: string; key?: Uint8Array } = {}) {
  return new SignJWT({ ...claims } as Record<string, unknown>)
    .setProtectedHeader({ alg: options.alg ?? "HS256", typ: "JWT" })
    .sign(options.key ?? KEY);
}

const valid = (sub = "kim"): Claims => ({ sub, exp: nowSeconds() + 600 });

const LIST = "/api/v1/users/alarms";

Deno.test("a request without a token is 401 unauthorized with a JSON error", async () => {
  await using server = await startTestServer();
  const cases: [string, string][] = [
    ["GET", LIST],
    ["GET", `${LIST}/unread-count`],
    ["POST", `${LIST}/read-all`],
    ["POST", `${LIST}/01J00000000000000000000000/read`],
    ["DELETE", `${LIST}/01J00000000000000000000000`],
    ["POST", "/api/v1/alarms"],
    ["POST", "/api/v1/alarms/batch"],
    ["GET", "/api/v1/users/alarm/subscribe"],
  ];
  for (const [method, path] of cases) {
    const init = method === "POST" ? { method, json: { userId: "kim", type: "t" } } : { method };
    await expectError(await server.fetch(path, init), 401, "unauthorized");
  }
  assert.deepEqual(await listAll(server, await server.userToken("kim")), []);
});

Deno.test("a token is accepted in the Authorization header, the alarmd_token cookie and the access_token query", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  const kim = await server.userToken("kim");

  const viaHeader = await expectJson<AlarmJson>(
    await server.fetch("/api/v1/alarms", {
      method: "POST",
      headers: { authorization: `Bearer ${publisher}` },
      json: { userId: "kim", type: "header" },
    }),
    201,
  );
  const viaCookie = await expectJson<AlarmJson>(
    await server.fetch("/api/v1/alarms", {
      method: "POST",
      // A page of alarmd's own origin (a cookie from anywhere else is refused: see below).
      headers: { cookie: `theme=dark; alarmd_token=${publisher}`, "sec-fetch-site": "same-origin" },
      json: { userId: "kim", type: "cookie" },
    }),
    201,
  );
  const viaQuery = await expectJson<AlarmJson>(
    await server.fetch(`/api/v1/alarms?access_token=${publisher}`, {
      method: "POST",
      json: { userId: "kim", type: "query" },
    }),
    201,
  );
  const expected = [viaQuery, viaCookie, viaHeader];

  const header = await server.fetch(LIST, { headers: { authorization: `Bearer ${kim}` } });
  assert.deepEqual((await expectJson<{ items: AlarmJson[] }>(header, 200)).items, expected);
  const cookie = await server.fetch(LIST, {
    headers: { cookie: `alarmd_token=${kim}`, origin: server.url },
  });
  assert.deepEqual((await expectJson<{ items: AlarmJson[] }>(cookie, 200)).items, expected);
  const query = await server.fetch(`${LIST}?access_token=${kim}&limit=2`);
  assert.deepEqual(
    (await expectJson<{ items: AlarmJson[] }>(query, 200)).items,
    expected.slice(0, 2),
  );

  const count = await server.fetch(`${LIST}/unread-count`, {
    headers: { cookie: `alarmd_token=${kim}`, "sec-fetch-site": "same-origin" },
  });
  assert.deepEqual(await expectJson(count, 200), { unread: 3 });
  await expectNoContent(
    await server.fetch(`${LIST}/${viaQuery.id}/read?access_token=${kim}`, { method: "POST" }),
  );
  assert.equal(await unreadCount(server, kim), 2);
});

Deno.test("the access_token query value never reaches the logs", async () => {
  await using server = await startTestServer();
  const kim = await server.userToken("kim");
  await expectJson(await server.fetch(`${LIST}?access_token=${kim}`), 200);
  await expectError(await server.fetch(`${LIST}?access_token=${kim}x`), 401, "unauthorized");
  const signature = kim.split(".")[2];
  const logged = JSON.stringify(server.logs);
  assert.ok(!logged.includes(signature), "a token was logged");
});

Deno.test("a malformed Authorization header or a token that is not a JWT is 401", async () => {
  await using server = await startTestServer();
  const kim = await server.userToken("kim");
  for (
    const authorization of [
      `Basic ${btoa("kim:pw")}`,
      "Bearer",
      "Bearer ",
      `Token ${kim}`,
      "Bearer not-a-jwt",
      "Bearer a.b.c",
      `Bearer ${kim}x`,
      `Bearer ${kim.split(".").slice(0, 2).join(".")}.`,
    ]
  ) {
    const res = await server.fetch(LIST, { headers: { authorization } });
    await expectError(res, 401, "unauthorized");
  }
  await expectError(
    await server.fetch(LIST, {
      headers: { cookie: "alarmd_token=nope", "sec-fetch-site": "same-origin" },
    }),
    401,
    "unauthorized",
  );
  await expectError(await server.fetch(`${LIST}?access_token=nope`), 401, "unauthorized");
});

Deno.test("an expired token is 401", async () => {
  await using server = await startTestServer();
  const expired = await sign({ sub: "kim", exp: nowSeconds() - 60 });
  await expectError(await server.fetch(LIST, { token: expired }), 401, "unauthorized");
  const expiredPublisher = await sign({
    sub: "backend",
    exp: nowSeconds() - 60,
    scope: "alarms:publish",
  });
  const res = await server.fetch("/api/v1/alarms", {
    method: "POST",
    token: expiredPublisher,
    json: { userId: "kim", type: "t" },
  });
  await expectError(res, 401, "unauthorized");
  assert.deepEqual(await listAll(server, await server.userToken("kim")), []);
});

Deno.test("an unsigned token (alg: none) is 401", async () => {
  await using server = await startTestServer();
  const none = new UnsecuredJWT({ scope: "alarms:publish" })
    .setSubject("kim")
    .setExpirationTime(nowSeconds() + 600)
    .encode();
  await expectError(await server.fetch(LIST, { token: none }), 401, "unauthorized");
  const res = await server.fetch("/api/v1/alarms", {
    method: "POST",
    token: none,
    json: { userId: "kim", type: "t" },
  });
  await expectError(res, 401, "unauthorized");
  // The same token with an "HS256" header but no signature.
  const [, payload] = none.split(".");
  const header = btoa(JSON.stringify({ alg: "HS256", typ: "JWT" })).replace(/=+$/, "");
  await expectError(
    await server.fetch(LIST, { token: `${header}.${payload}.` }),
    401,
    "unauthorized",
  );
  assert.deepEqual(await listAll(server, await server.userToken("kim")), []);
});

Deno.test("a token signed with another secret is 401", async () => {
  await using server = await startTestServer();
  const other = new TextEncoder().encode("another-secret-that-is-also-long-enough!!");
  const token = await sign(valid(), { key: other });
  await expectError(await server.fetch(LIST, { token }), 401, "unauthorized");
  const publisher = await sign({ ...valid("backend"), scope: "alarms:publish" }, { key: other });
  const res = await server.fetch("/api/v1/alarms", {
    method: "POST",
    token: publisher,
    json: { userId: "kim", type: "t" },
  });
  await expectError(res, 401, "unauthorized");
});

Deno.test("a token with another algorithm (HS384, HS512, RS256) is 401", async () => {
  await using server = await startTestServer();
  for (const alg of ["HS384", "HS512"]) {
    const token = await sign(valid(), { alg });
    await expectError(await server.fetch(LIST, { token }), 401, "unauthorized");
  }
  const { privateKey } = await generateKeyPair("RS256");
  const rs = await new SignJWT({ ...valid() } as Record<string, unknown>)
    .setProtectedHeader({ alg: "RS256" })
    .sign(privateKey);
  await expectError(await server.fetch(LIST, { token: rs }), 401, "unauthorized");
});

Deno.test("a token without sub, without exp, or with a bad sub is 401", async () => {
  await using server = await startTestServer();
  const cases: Claims[] = [
    { exp: nowSeconds() + 600 },
    { sub: "kim" },
    { sub: "", exp: nowSeconds() + 600 },
    { sub: "k".repeat(129), exp: nowSeconds() + 600 },
    { sub: 42, exp: nowSeconds() + 600 },
  ];
  for (const claims of cases) {
    const token = await sign(claims);
    await expectError(await server.fetch(LIST, { token }), 401, "unauthorized");
  }
  const noExpPublisher = await sign({ sub: "backend", scope: "alarms:publish" });
  const res = await server.fetch("/api/v1/alarms", {
    method: "POST",
    token: noExpPublisher,
    json: { userId: "kim", type: "t" },
  });
  await expectError(res, 401, "unauthorized");
  // The longest allowed sub works.
  const longest = await sign(valid("k".repeat(128)));
  await expectJson(await server.fetch(LIST, { token: longest }), 200);
});

Deno.test("publishing without the alarms:publish scope is 403 forbidden", async () => {
  await using server = await startTestServer();
  const tokens = [
    await server.userToken("kim"),
    await sign({ ...valid("backend"), scope: "alarms:read" }),
    await sign({ ...valid("backend"), scope: "alarms:publisher" }),
    await sign({ ...valid("backend"), scope: "alarms:publish:x other" }),
  ];
  for (const token of tokens) {
    const one = await server.fetch("/api/v1/alarms", {
      method: "POST",
      token,
      json: { userId: "kim", type: "t" },
    });
    await expectError(one, 403, "forbidden");
    const batch = await server.fetch("/api/v1/alarms/batch", {
      method: "POST",
      token,
      json: { alarms: [{ userId: "kim", type: "t" }] },
    });
    await expectError(batch, 403, "forbidden");
  }
  assert.deepEqual(await listAll(server, await server.userToken("kim")), []);

  // The scope claim is space-separated: the publish scope among others is enough.
  const several = await sign({ ...valid("backend"), scope: "openid alarms:publish profile" });
  await createOk(server, several, { userId: "kim", type: "t" });
  assert.equal((await listAll(server, await server.userToken("kim"))).length, 1);
});

Deno.test("a user never sees, marks or deletes another user's alarms", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  const kim = await server.userToken("kim");
  const lee = await server.userToken("lee");
  const kims = [
    await createOk(server, publisher, { userId: "kim", type: "t", data: { secret: 1 } }),
    await createOk(server, publisher, { userId: "kim", type: "t", data: { secret: 2 } }),
  ];
  const lees = await createOk(server, publisher, { userId: "lee", type: "t" });

  assert.deepEqual(await listAll(server, lee), [lees]);
  assert.deepEqual(await listAll(server, lee, { unread: "true" }), [lees]);
  assert.equal(await unreadCount(server, lee), 1);
  for (const alarm of kims) {
    await expectError(await markRead(server, lee, alarm.id), 404, "not_found");
    await expectError(await remove(server, lee, alarm.id), 404, "not_found");
  }
  // A cursor made from kim's page does not open kim's list to lee.
  const kimPage = await listPage(server, kim, "limit=1");
  const leeWithKimsCursor = await listPage(
    server,
    lee,
    `cursor=${encodeURIComponent(kimPage.nextCursor!)}`,
  );
  for (const item of leeWithKimsCursor.items) assert.equal(item.userId, "lee");
  await expectNoContent(
    await server.fetch(`${LIST}/read-all`, { method: "POST", token: lee }),
  );

  // kim's alarms are untouched by everything lee did.
  assert.deepEqual(await listAll(server, kim), [...kims].reverse());
  assert.equal(await unreadCount(server, kim), 2);
  // The userId in a request body or query never switches whose alarms are served.
  const sneaky = await server.fetch(`${LIST}?userId=kim`, { token: lee });
  const sneakyPage = await expectJson<{ items: AlarmJson[] }>(sneaky, 200);
  for (const item of sneakyPage.items) assert.equal(item.userId, "lee");
});

Deno.test("issuer and audience are enforced when configured", async () => {
  await using server = await startTestServer({
    jwtIssuer: "https://auth.example.com/",
    jwtAudience: "alarmd",
  });
  const iss = "https://auth.example.com/";
  const aud = "alarmd";
  const right = await sign({ ...valid(), iss, aud });
  await expectJson(await server.fetch(LIST, { token: right }), 200);
  const publisher = await sign({ ...valid("backend"), iss, aud, scope: "alarms:publish" });
  await createOk(server, publisher, { userId: "kim", type: "t" });

  const wrong: Claims[] = [
    { ...valid(), iss: "https://evil.example.com/", aud },
    { ...valid(), iss, aud: "someone-else" },
    { ...valid(), aud },
    { ...valid(), iss },
    valid(),
  ];
  for (const claims of wrong) {
    const token = await sign(claims);
    await expectError(await server.fetch(LIST, { token }), 401, "unauthorized");
  }
  // The test helper's tokens carry neither claim.
  await expectError(
    await server.fetch(LIST, { token: await server.userToken("kim") }),
    401,
    "unauthorized",
  );
  assert.equal((await listAll(server, right)).length, 1);
});
