/**
 * The encryptor against RFC 8291's worked example byte for byte (given the example's ephemeral
 * key and salt), and against the test push service's independent decryptor with fresh keys.
 */
import assert from "node:assert/strict";
import { encryptPayload, MAX_PLAINTEXT_BYTES } from "../../src/push/payload_encryption.ts";
import { RFC8291_EXAMPLE as RFC } from "../helpers/rfc8291_example.ts";
import {
  decryptAes128gcm,
  fromBase64Url,
  newReceiver,
  toBase64Url,
} from "../helpers/test_push_service.ts";

const RFC_KEYS = { p256dh: RFC.uaPublic, auth: RFC.authSecret };

async function rfcEphemeral() {
  const publicKey = fromBase64Url(RFC.asPublic);
  const jwk = {
    kty: "EC",
    crv: "P-256",
    x: toBase64Url(publicKey.subarray(1, 33)),
    y: toBase64Url(publicKey.subarray(33)),
    d: RFC.asPrivate,
  };
  const privateKey = await crypto.subtle.importKey(
    "jwk",
    jwk,
    { name: "ECDH", namedCurve: "P-256" },
    false,
    ["deriveBits"],
  );
  return { privateKey, publicKey, salt: fromBase64Url(RFC.salt) };
}

Deno.test("the encryptor produces RFC 8291's worked example from its keys and salt", async () => {
  const body = await encryptPayload(RFC_KEYS, RFC.plaintext, await rfcEphemeral());
  assert.equal(toBase64Url(body), RFC.body);
});

Deno.test("each message has its own salt and ephemeral key, and the browser reads it", async () => {
  const receiver = await newReceiver();
  const keys = { p256dh: toBase64Url(receiver.publicKey), auth: toBase64Url(receiver.authSecret) };
  const payload = JSON.stringify({ title: "Kim commented", body: "é ✓ 🔔" });
  const [a, b] = await Promise.all([encryptPayload(keys, payload), encryptPayload(keys, payload)]);
  assert.notEqual(toBase64Url(a.subarray(0, 16)), toBase64Url(b.subarray(0, 16)));
  assert.notEqual(toBase64Url(a.subarray(21, 86)), toBase64Url(b.subarray(21, 86)));
  for (const body of [a, b]) {
    assert.equal(new TextDecoder().decode(await decryptAes128gcm(body, receiver)), payload);
  }
});

Deno.test("the largest payload that fits is encrypted, one byte more is refused", async () => {
  const receiver = await newReceiver();
  const keys = { p256dh: toBase64Url(receiver.publicKey), auth: toBase64Url(receiver.authSecret) };
  const largest = "x".repeat(MAX_PLAINTEXT_BYTES);
  const body = await encryptPayload(keys, largest);
  assert.equal(body.length, 4096);
  assert.equal(new TextDecoder().decode(await decryptAes128gcm(body, receiver)), largest);
  await assert.rejects(encryptPayload(keys, `${largest}x`), /at most 3993 fit/);
});

Deno.test("keys that are not a P-256 point and a 16-byte secret are refused", async () => {
  await assert.rejects(
    encryptPayload({ p256dh: RFC.uaPublic.slice(0, 40), auth: RFC.authSecret }, "x"),
    /keys\.p256dh must be a base64url 65-byte uncompressed P-256 point/,
  );
  await assert.rejects(
    encryptPayload({ p256dh: RFC.uaPublic, auth: "AAAA" }, "x"),
    /keys\.auth must be a base64url 16-byte secret/,
  );
  const offCurve = toBase64Url(new Uint8Array([4, ...new Uint8Array(64).fill(1)]));
  await assert.rejects(
    encryptPayload({ p256dh: offCurve, auth: RFC.authSecret }, "x"),
    /keys\.p256dh is not a point on P-256/,
  );
});
