/**
 * The test push service checks alarmd's messages, so it is checked first against what alarmd
 * does not produce: the worked example of RFC 8291 section 5 (so that a mistake shared by the
 * sender's encryptor and this decryptor cannot pass) and tokens made by hand with jose.
 */
import assert from "node:assert/strict";
import { SignJWT } from "jose";
import {
  decryptAes128gcm,
  fromBase64Url,
  receiverFromKeys,
  startTestPushService,
  toBase64Url,
  verifyVapid,
} from "../helpers/test_push_service.ts";
import { RFC8291_EXAMPLE } from "../helpers/rfc8291_example.ts";

const RFC = RFC8291_EXAMPLE;

const rfcReceiver = (authSecret: string = RFC.authSecret) =>
  receiverFromKeys(
    fromBase64Url(RFC.uaPublic),
    fromBase64Url(RFC.uaPrivate),
    fromBase64Url(authSecret),
  );

Deno.test("the decryptor reads RFC 8291's worked example", async () => {
  const body = fromBase64Url(RFC.body);
  assert.equal(body.length, 144);
  assert.equal(toBase64Url(body.subarray(0, 16)), RFC.salt);
  assert.equal(new DataView(body.buffer).getUint32(16), 4096);
  assert.equal(body[20], 65);
  assert.equal(toBase64Url(body.subarray(21, 86)), RFC.asPublic);
  const plaintext = await decryptAes128gcm(body, await rfcReceiver());
  assert.equal(new TextDecoder().decode(plaintext), RFC.plaintext);
});

Deno.test("the decryptor refuses a changed byte, the wrong auth secret and a cut body", async () => {
  const receiver = await rfcReceiver();
  const flipped = fromBase64Url(RFC.body);
  flipped[100] ^= 1;
  await assert.rejects(decryptAes128gcm(flipped, receiver));
  const salted = fromBase64Url(RFC.body);
  salted[0] ^= 1;
  await assert.rejects(decryptAes128gcm(salted, receiver));
  await assert.rejects(
    decryptAes128gcm(fromBase64Url(RFC.body), await rfcReceiver("A".repeat(22))),
  );
  await assert.rejects(
    decryptAes128gcm(fromBase64Url(RFC.body).subarray(0, 86), receiver),
    /no record/,
  );
  await assert.rejects(decryptAes128gcm(fromBase64Url(RFC.body).subarray(0, 140), receiver));
});

async function vapidKey() {
  const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ]);
  const k = toBase64Url(new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey)));
  return { privateKey: pair.privateKey, k };
}

const AUD = "http://127.0.0.1:9000";
const NOW = Date.UTC(2026, 11, 1, 12, 0, 0);

function token(key: CryptoKey, claims: Record<string, unknown>) {
  return new SignJWT(claims).setProtectedHeader({ alg: "ES256", typ: "JWT" }).sign(key);
}

Deno.test("verifyVapid accepts a well-formed token and names what is wrong with others", async () => {
  const { privateKey, k } = await vapidKey();
  const other = await vapidKey();
  const good = { aud: AUD, exp: NOW / 1000 + 12 * 3600, sub: "mailto:ops@example.com" };
  const header = async (claims: Record<string, unknown>, key = privateKey, kk = k) =>
    `vapid t=${await token(key, claims)}, k=${kk}`;

  const ok = await verifyVapid(await header(good), AUD, NOW);
  assert.equal(ok.publicKey, k);
  assert.deepEqual(ok.claims, good);

  const bad: [string | null, RegExp][] = [
    [null, /not vapid/],
    [`Bearer ${await token(privateKey, good)}`, /not vapid/],
    [`vapid t=${await token(privateKey, good)}`, /lacks/],
    [await header(good, other.privateKey), /signature/],
    [await header(good, privateKey, other.k), /signature/],
    [await header({ ...good, aud: "http://127.0.0.1:9001" }), /aud/],
    [await header({ ...good, exp: NOW / 1000 - 60 }), /exp/],
    [await header({ ...good, exp: NOW / 1000 + 25 * 3600 }), /over 24 h/],
    [await header({ aud: AUD, exp: good.exp }), /sub/],
    [await header({ ...good, sub: "ops@example.com" }), /sub/],
  ];
  for (const [authorization, reason] of bad) {
    await assert.rejects(verifyVapid(authorization, AUD, NOW), reason, String(authorization));
  }
});

Deno.test("the service answers 404 to an unknown subscription and 403 to a message without VAPID", async () => {
  await using service = await startTestPushService();
  const subscription = await service.subscribe();
  assert.match(subscription.endpoint, /^http:\/\/127\.0\.0\.1:\d+\/push\/[0-9a-f]{32}$/);
  assert.equal(fromBase64Url(subscription.keys.p256dh).length, 65);
  assert.equal(fromBase64Url(subscription.keys.auth).length, 16);

  const unknown = await fetch(`${service.origin}/push/nobody`, { method: "POST", body: "x" });
  assert.equal(unknown.status, 404);
  await unknown.body?.cancel();
  const unsigned = await fetch(subscription.endpoint, {
    method: "POST",
    headers: { "Content-Encoding": "aes128gcm" },
    body: "x",
  });
  assert.equal(unsigned.status, 403);
  await unsigned.body?.cancel();
  assert.deepEqual(service.requests.map((r) => r.path), [
    "/push/nobody",
    `/push/${subscription.id}`,
  ]);
  assert.equal(service.problems.length, 1);
  assert.match(service.problems[0], /VAPID/);
  assert.deepEqual(service.received(), []);
});
