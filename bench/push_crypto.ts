/**
 * The floor under Web Push's CPU: one RFC 8291 `aes128gcm` encryption (a fresh P-256 key pair,
 * ECDH with the browser's key, HKDF for key and nonce, AES-128-GCM) per message, timed with
 * Deno's node:crypto (synchronous), with WebCrypto alone (32 at once; the ephemeral public key
 * exported raw, or read from the PKCS#8 export) and with alarmd's own
 * encryptor (WebCrypto for the key pair and ECDH, node:crypto for the rest, its public key read
 * from the PKCS#8 export), without HTTP or storage.
 *
 *   deno run -A bench/push_crypto.ts [--messages 3000]
 */
import { createCipheriv, createECDH, createHmac, randomBytes } from "node:crypto";
import { encryptPayload } from "../src/push/payload_encryption.ts";

const at = Deno.args.indexOf("--messages");
const N = at === -1 ? 3000 : Number(Deno.args[at + 1]);
const encoder = new TextEncoder();
const payload = encoder.encode("x".repeat(200));
const browser = createECDH("prime256v1");
browser.generateKeys();
const browserKey = new Uint8Array(browser.getPublicKey());
const auth = new Uint8Array(randomBytes(16));
const infoOf = (local: Uint8Array) =>
  new Uint8Array([...encoder.encode("WebPush: info\0"), ...browserKey, ...local]);
const CEK_INFO = encoder.encode("Content-Encoding: aes128gcm\0");
const NONCE_INFO = encoder.encode("Content-Encoding: nonce\0");

/** HKDF-SHA-256 with one block of output, which is all Web Push needs. */
function hkdf(salt: Uint8Array, ikm: Uint8Array, info: Uint8Array, bytes: number) {
  const prk = createHmac("sha256", salt).update(ikm).digest();
  return createHmac("sha256", prk).update(info).update(new Uint8Array([1])).digest()
    .subarray(0, bytes);
}

function withNodeCrypto(): Uint8Array {
  const local = createECDH("prime256v1");
  const localKey = new Uint8Array(local.generateKeys());
  const ikm = hkdf(auth, local.computeSecret(browserKey), infoOf(localKey), 32);
  const salt = randomBytes(16);
  const cipher = createCipheriv(
    "aes-128-gcm",
    hkdf(salt, ikm, CEK_INFO, 16),
    hkdf(salt, ikm, NONCE_INFO, 12),
  );
  cipher.update(payload);
  cipher.update(new Uint8Array([2]));
  cipher.final();
  return new Uint8Array(cipher.getAuthTag());
}

const browserCryptoKey = await crypto.subtle.importKey(
  "raw",
  browserKey,
  { name: "ECDH", namedCurve: "P-256" },
  false,
  [],
);

async function derive(salt: Uint8Array, key: CryptoKey, info: Uint8Array, bits: number) {
  const params = { name: "HKDF", hash: "SHA-256", salt, info };
  return new Uint8Array(await crypto.subtle.deriveBits(params, key, bits));
}

/** `fromPkcs8`: the public key read from the private key's PKCS#8 export, as alarmd does. */
async function withWebCrypto(fromPkcs8: boolean): Promise<Uint8Array> {
  const pair = await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, true, [
    "deriveBits",
  ]) as CryptoKeyPair;
  const localKey = fromPkcs8
    ? new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey)).slice(-65)
    : new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  const secret = await crypto.subtle.deriveBits(
    { name: "ECDH", public: browserCryptoKey },
    pair.privateKey,
    256,
  );
  const secretKey = await crypto.subtle.importKey("raw", secret, "HKDF", false, ["deriveBits"]);
  const ikm = await derive(auth, secretKey, infoOf(localKey), 256);
  const ikmKey = await crypto.subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const cek = await derive(salt, ikmKey, CEK_INFO, 128);
  const iv = await derive(salt, ikmKey, NONCE_INFO, 96);
  const aes = await crypto.subtle.importKey("raw", cek, "AES-GCM", false, ["encrypt"]);
  return new Uint8Array(
    await crypto.subtle.encrypt({ name: "AES-GCM", iv }, aes, new Uint8Array([...payload, 2])),
  );
}

/** CPU ticks (1/100 s) of this process, every thread. */
function ticks(): number {
  const fields = Deno.readTextFileSync("/proc/self/stat").split(" ");
  return Number(fields[13]) + Number(fields[14]);
}

async function measure(name: string, run: () => Promise<void>) {
  await run(); // warm-up
  const t0 = performance.now();
  const c0 = ticks();
  await run();
  const wall = (performance.now() - t0) / N;
  const cpu = (ticks() - c0) * 10 / N;
  console.log(`${name.padEnd(40)} wall ${wall.toFixed(3)} ms/msg   cpu ${cpu.toFixed(3)} ms/msg`);
}

await measure("node:crypto, one at a time", () => {
  for (let i = 0; i < N; i++) withNodeCrypto();
  return Promise.resolve();
});
for (const fromPkcs8 of [false, true]) {
  await measure(`WebCrypto${fromPkcs8 ? ", key from PKCS#8" : ""}, 32 at once`, async () => {
    await Promise.all(Array.from({ length: 32 }, async (_, k) => {
      for (let i = k; i < N; i += 32) await withWebCrypto(fromPkcs8);
    }));
  });
}
const base64Url = (bytes: Uint8Array) =>
  btoa(String.fromCharCode(...bytes)).replaceAll("+", "-")
    .replaceAll("/", "_").replace(/=+$/, "");
const keys = { p256dh: base64Url(browserKey), auth: base64Url(auth) };
const text = new TextDecoder().decode(payload);
await measure("alarmd's encryptor, 32 at once", async () => {
  await Promise.all(Array.from({ length: 32 }, async (_, k) => {
    for (let i = k; i < N; i += 32) await encryptPayload(keys, text);
  }));
});
