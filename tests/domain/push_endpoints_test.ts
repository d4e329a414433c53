import assert from "node:assert/strict";
import {
  createEndpointPolicy,
  decodeBase64Url,
  pushKeysProblem,
} from "../../src/domain/push_endpoints.ts";

const allowed = (policy: ReturnType<typeof createEndpointPolicy>, endpoints: string[]) =>
  endpoints.filter((e) => policy.allows(e));

Deno.test("the default list admits the known push services over https on their default port", () => {
  const policy = createEndpointPolicy();
  const endpoints = [
    "https://fcm.googleapis.com/fcm/send/dXNlcjE:APA91b",
    "https://fcm.googleapis.com:443/fcm/send/abc",
    "https://FCM.GoogleAPIs.com/fcm/send/abc",
    "https://updates.push.services.mozilla.com/wpush/v2/gAAAAA",
    "https://web.push.apple.com/QGuQyavXutnMpqJ",
    "https://wns2-par02p.notify.windows.com/w/?token=BQYAAA",
  ];
  assert.deepEqual(allowed(policy, endpoints), endpoints);
  for (const endpoint of endpoints) assert.equal(policy.refusal(endpoint), null, endpoint);
});

Deno.test("host matching has a dot boundary and a wildcard never admits its bare suffix", () => {
  const policy = createEndpointPolicy();
  const refused = [
    "https://fcm.googleapis.com.evil.example/fcm/send/abc",
    "https://evilfcm.googleapis.com/fcm/send/abc",
    "https://sub.fcm.googleapis.com/fcm/send/abc",
    "https://fcm.googleapis.com./fcm/send/abc",
    "https://push.services.mozilla.com/wpush/v2/x",
    "https://evilpush.services.mozilla.com/wpush/v2/x",
    "https://updates.push.services.mozilla.com.evil.example/x",
    "https://push.apple.com/x",
    "https://a..push.apple.com/x",
    "https://notify.windows.com/x",
    "https://example.com/fcm.googleapis.com",
    "https://example.com/?u=https://fcm.googleapis.com/",
  ];
  assert.deepEqual(allowed(policy, refused), []);
  assert.match(policy.refusal(refused[0]) ?? "", /not a known push service/);
});

Deno.test("the default list refuses other schemes, ports, credentials and IP literals", () => {
  const policy = createEndpointPolicy();
  const cases: [string, RegExp][] = [
    ["http://fcm.googleapis.com/fcm/send/abc", /https:/],
    ["wss://fcm.googleapis.com/fcm/send/abc", /https:/],
    ["https://fcm.googleapis.com:8443/fcm/send/abc", /default port/],
    ["https://user:pw@fcm.googleapis.com/fcm/send/abc", /credentials/],
    ["https://user@fcm.googleapis.com/fcm/send/abc", /credentials/],
    ["https://fcm.googleapis.com@169.254.169.254/latest", /credentials/],
    ["https://169.254.169.254/latest/meta-data", /IP address/],
    ["https://127.0.0.1/push", /IP address/],
    ["https://0x7f.1/push", /IP address/],
    ["https://2130706433/push", /IP address/],
    ["https://[::1]/push", /IP address/],
    ["https://[::ffff:7f00:1]/push", /IP address/],
    ["not a url", /not a URL/],
    ["", /not a URL/],
    ["/fcm/send/abc", /not a URL/],
  ];
  for (const [endpoint, reason] of cases) {
    assert.match(policy.refusal(endpoint) ?? "allowed", reason, endpoint);
    assert.equal(policy.allows(endpoint), false, endpoint);
  }
});

Deno.test("listed origins replace the default and must match scheme, host and port exactly", () => {
  const policy = createEndpointPolicy([" https://push.example.com", "http://127.0.0.1:9000 "]);
  assert.deepEqual(
    allowed(policy, [
      "https://push.example.com/p/1",
      "https://push.example.com:443/p/1",
      "http://127.0.0.1:9000/push/abc",
      "https://fcm.googleapis.com/fcm/send/abc",
      "http://push.example.com/p/1",
      "https://push.example.com:8443/p/1",
      "https://a.push.example.com/p/1",
      "http://127.0.0.1:9001/push/abc",
      "https://127.0.0.1:9000/push/abc",
      "http://localhost:9000/push/abc",
      "http://u:p@127.0.0.1:9000/push/abc",
    ]),
    [
      "https://push.example.com/p/1",
      "https://push.example.com:443/p/1",
      "http://127.0.0.1:9000/push/abc",
    ],
  );
  assert.match(policy.refusal("https://fcm.googleapis.com/x") ?? "", /not an allowed origin/);
  assert.match(policy.refusal("http://u:p@127.0.0.1:9000/x") ?? "", /credentials/);
});

Deno.test("an empty origin list means the default list", () => {
  for (const list of [[], [""], [" ", ""]]) {
    const policy = createEndpointPolicy(list);
    assert.equal(policy.allows("https://fcm.googleapis.com/fcm/send/abc"), true);
    assert.equal(policy.allows("http://127.0.0.1:9000/push/abc"), false);
  }
});

Deno.test("a listed entry that is not a bare http(s) origin is a TypeError naming it", () => {
  for (
    const entry of [
      "push.example.com",
      "ftp://push.example.com",
      "https://push.example.com/path",
      "https://push.example.com?x=1",
      "https://user@push.example.com",
    ]
  ) {
    assert.throws(
      () => createEndpointPolicy([entry]),
      (e: unknown) => e instanceof TypeError && e.message.includes(entry),
    );
  }
  assert.doesNotThrow(() => createEndpointPolicy(["https://push.example.com/"]));
});

// A real browser subscription's keys (RFC 8291 section 5: the user agent's public key).
const P256DH =
  "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
const AUTH = "BTBZMqHH6r4Tts7J_aSIgg";

Deno.test("subscription keys: a P-256 point and a 16-byte secret, base64url with or without padding", () => {
  assert.equal(pushKeysProblem({ p256dh: P256DH, auth: AUTH }), null);
  assert.equal(pushKeysProblem({ p256dh: P256DH + "=", auth: AUTH + "==" }), null);
});

Deno.test("subscription keys: wrong lengths, compressed or off-curve points and bad base64url are refused", () => {
  const bytes = decodeBase64Url(P256DH)!;
  const b64 = (b: Uint8Array) => b.toBase64({ alphabet: "base64url", omitPadding: true });
  const offCurve = bytes.slice();
  offCurve[64] ^= 1;
  const compressed = bytes.slice(0, 33);
  compressed[0] = 0x02 + (bytes[64] & 1);
  const wrongPrefix = bytes.slice();
  wrongPrefix[0] = 0x05;
  const xTooBig = new Uint8Array(65).fill(0xff);
  xTooBig[0] = 0x04;
  const cases: [{ p256dh: string; auth: string }, RegExp][] = [
    [{ p256dh: b64(offCurve), auth: AUTH }, /not a point on P-256/],
    [{ p256dh: b64(xTooBig), auth: AUTH }, /not a point on P-256/],
    [{ p256dh: b64(compressed), auth: AUTH }, /65-byte uncompressed/],
    [{ p256dh: b64(wrongPrefix), auth: AUTH }, /65-byte uncompressed/],
    [{ p256dh: b64(new Uint8Array(65)), auth: AUTH }, /65-byte uncompressed/],
    [{ p256dh: b64(bytes.slice(0, 64)), auth: AUTH }, /65-byte uncompressed/],
    [{ p256dh: bytes.toBase64(), auth: AUTH }, /65-byte uncompressed/],
    [{ p256dh: P256DH.slice(0, 40) + " " + P256DH.slice(40), auth: AUTH }, /65-byte/],
    [{ p256dh: "", auth: AUTH }, /65-byte uncompressed/],
    [{ p256dh: P256DH, auth: b64(new Uint8Array(15)) }, /16-byte/],
    [{ p256dh: P256DH, auth: b64(new Uint8Array(17)) }, /16-byte/],
    [{ p256dh: P256DH, auth: "BTBZMqHH6r4Tts7J/aSIgg" }, /16-byte/],
    [{ p256dh: P256DH, auth: "" }, /16-byte/],
  ];
  for (const [keys, reason] of cases) {
    assert.match(pushKeysProblem(keys) ?? "accepted", reason, JSON.stringify(keys));
  }
});

Deno.test("every key WebCrypto generates passes the curve check", async () => {
  for (let i = 0; i < 20; i++) {
    const pair = await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, true, [
      "deriveBits",
    ]);
    const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
    const p256dh = raw.toBase64({ alphabet: "base64url", omitPadding: true });
    assert.equal(pushKeysProblem({ p256dh, auth: AUTH }), null, p256dh);
  }
});
