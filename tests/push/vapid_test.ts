import assert from "node:assert/strict";
import { importJWK, jwtVerify, SignJWT } from "jose";
import {
  generateVapidKeys,
  importVapidKeys,
  VapidKeyError,
  vapidKeysProblem,
} from "../../src/push/vapid.ts";
import { createVapidAuthorizer } from "../../src/push/vapid_authorization.ts";
import { fromBase64Url, toBase64Url, verifyVapid } from "../helpers/test_push_service.ts";

Deno.test("generated VAPID keys are a 65-byte uncompressed point and a 32-byte scalar that sign together", async () => {
  const keys = await generateVapidKeys();
  assert.match(keys.publicKey, /^[A-Za-z0-9_-]{87}$/);
  assert.match(keys.privateKey, /^[A-Za-z0-9_-]{43}$/);
  assert.equal(fromBase64Url(keys.publicKey)[0], 0x04);
  assert.equal(await vapidKeysProblem(keys), null);
  const key = await importVapidKeys(keys);
  assert.equal(key.extractable, false);
  const jwt = await new SignJWT({ sub: "mailto:a@example.com" })
    .setProtectedHeader({ alg: "ES256" }).setAudience("https://x.example").setExpirationTime("1h")
    .sign(key);
  const point = fromBase64Url(keys.publicKey);
  const verifier = await importJWK({
    kty: "EC",
    crv: "P-256",
    x: toBase64Url(point.subarray(1, 33)),
    y: toBase64Url(point.subarray(33)),
  }, "ES256");
  await jwtVerify(jwt, verifier);
  assert.notDeepEqual(await generateVapidKeys(), keys);
});

Deno.test("keys given by the operator are checked: lengths, the curve, and that the halves match", async () => {
  const keys = await generateVapidKeys();
  const other = await generateVapidKeys();
  const offCurve = fromBase64Url(keys.publicKey);
  offCurve[64] ^= 1;
  const cases: [typeof keys, RegExp][] = [
    [{ ...keys, privateKey: other.privateKey }, /does not match/],
    [{ ...keys, publicKey: toBase64Url(offCurve) }, /not on P-256/],
    [{ ...keys, publicKey: keys.publicKey.slice(0, 44) }, /65-byte/],
    [{ ...keys, publicKey: keys.publicKey.replace("_", "/") + "+" }, /65-byte/],
    [{ ...keys, privateKey: keys.privateKey.slice(0, 40) }, /32-byte/],
    [{ ...keys, privateKey: "" }, /32-byte/],
  ];
  for (const [given, reason] of cases) {
    const problem = await vapidKeysProblem(given);
    assert.match(problem ?? "accepted", reason, JSON.stringify(given));
    assert.ok(
      !problem!.includes(given.privateKey) || given.privateKey === "",
      "the private key leaked",
    );
    await assert.rejects(importVapidKeys(given), VapidKeyError);
  }
  assert.equal(await vapidKeysProblem({ ...keys, publicKey: keys.publicKey + "=" }), null);
});

Deno.test("the authorizer signs ES256 tokens for the audience, expiring in 12 h, and refuses lifetimes over a day", async () => {
  const keys = await generateVapidKeys();
  const now = Date.UTC(2026, 11, 1, 12, 0, 0);
  const authorizer = createVapidAuthorizer({ now: () => now });
  const header = await authorizer.authorization(
    "https://fcm.googleapis.com",
    keys,
    "mailto:a@b.example",
  );
  const { claims, publicKey } = await verifyVapid(header, "https://fcm.googleapis.com", now);
  assert.equal(publicKey, keys.publicKey);
  assert.deepEqual(claims, {
    aud: "https://fcm.googleapis.com",
    exp: now / 1000 + 12 * 3600,
    sub: "mailto:a@b.example",
  });
  assert.throws(() => createVapidAuthorizer({ lifetimeMs: 25 * 3_600_000 }), RangeError);
  assert.throws(() => createVapidAuthorizer({ reuseMs: 7 * 3_600_000 }), RangeError);
});

Deno.test("the authorizer forgets a failure, so fixed keys work on the next call", async () => {
  const keys = await generateVapidKeys();
  const authorizer = createVapidAuthorizer();
  const broken = { ...keys, privateKey: (await generateVapidKeys()).privateKey };
  await assert.rejects(authorizer.authorization("https://a.example", broken, "mailto:a@b.example"));
  await assert.rejects(authorizer.authorization("https://a.example", broken, "mailto:a@b.example"));
  const header = await authorizer.authorization("https://a.example", keys, "mailto:a@b.example");
  await verifyVapid(header, "https://a.example", Date.now());
});

Deno.test("the authorizer keeps at most maxEntries tokens, dropping the oldest", async () => {
  const keys = await generateVapidKeys();
  // ES256 signatures here are deterministic: a new token differs from an old one by its exp.
  let now = Date.now();
  const authorizer = createVapidAuthorizer({ maxEntries: 2, now: () => (now += 1000) });
  const token = (aud: string) => authorizer.authorization(aud, keys, "mailto:a@b.example");
  const a = await token("https://a.example");
  await token("https://b.example");
  assert.equal(await token("https://a.example"), a);
  await token("https://c.example");
  await token("https://b.example");
  assert.notEqual(await token("https://a.example"), a, "a was the oldest and should be gone");
});
