/**
 * RFC 8291 message encryption (`aes128gcm`, RFC 8188, one record) on the runtime's own crypto,
 * so it runs the same under `deno run` and in a compiled binary. WebCrypto makes the ephemeral
 * P-256 pair and the ECDH agreement (off the event loop); node:crypto's synchronous HKDF and
 * AES-GCM do the rest, since a WebCrypto call per small step costs more than the step.
 *
 * The ephemeral public key is read from the PKCS#8 export, which already holds it: exporting it
 * "raw" makes the runtime derive it again with a scalar multiplication, as costly as the ECDH
 * itself. No padding: payloads are small and a full-size record would multiply the bytes sent.
 */
import { createCipheriv, hkdfSync, randomBytes } from "node:crypto";
import type { PushSubscriptionRecord } from "../domain/push.ts";
import { decodeBase64Url, pushKeysProblem } from "../domain/push_endpoints.ts";

/** The RFC 8188 record size announced in the header; one record always fits in it. */
const RECORD_SIZE = 4096;
/** Salt (16), record size (4), key id length (1), key id (a 65-byte P-256 point). */
const HEADER_BYTES = 86;
/** What a push service must accept in all (RFC 8291 section 4), less the header and the tag. */
export const MAX_PLAINTEXT_BYTES = RECORD_SIZE - HEADER_BYTES - 17;

const ECDH_P256 = { name: "ECDH", namedCurve: "P-256" } as const;
const encoder = new TextEncoder();
const KEY_INFO = encoder.encode("WebPush: info\0");
const CEK_INFO = encoder.encode("Content-Encoding: aes128gcm\0");
const NONCE_INFO = encoder.encode("Content-Encoding: nonce\0");
/** How a PKCS#8 P-256 key ends when it carries its public key: `[1] BIT STRING` + the point. */
const PUBLIC_KEY_TAIL = [0xa1, 0x44, 0x03, 0x42, 0x00, 0x04];

/** The sender's side of one message; fixed only by tests, to check RFC 8291's worked example. */
export interface EphemeralKeys {
  readonly privateKey: CryptoKey;
  /** Uncompressed P-256 point. */
  readonly publicKey: Uint8Array;
  readonly salt: Uint8Array;
}

/**
 * The request body for `payload`, readable only by the browser holding `keys`. Keys that are not
 * a point on P-256 and a 16-byte secret are refused, with the subscription check's own reason.
 */
export async function encryptPayload(
  keys: PushSubscriptionRecord["keys"],
  payload: string,
  ephemeral?: EphemeralKeys,
): Promise<Uint8Array<ArrayBuffer>> {
  const keysProblem = pushKeysProblem(keys);
  if (keysProblem) throw new Error(keysProblem);
  const browserKey = decodeBase64Url(keys.p256dh)!;
  const authSecret = decodeBase64Url(keys.auth)!;
  const plaintext = encoder.encode(payload);
  if (plaintext.length > MAX_PLAINTEXT_BYTES) {
    throw new Error(`the payload is ${plaintext.length} bytes, at most ${MAX_PLAINTEXT_BYTES} fit`);
  }
  const browserPublic = await crypto.subtle.importKey("raw", browserKey, ECDH_P256, false, []);
  const local = ephemeral ?? await ephemeralKeys();
  const shared = await crypto.subtle.deriveBits(
    { name: "ECDH", public: browserPublic },
    local.privateKey,
    256,
  );
  // RFC 8291 section 3.4: IKM = HKDF(auth, ECDH secret, "WebPush: info\0" || ua_public || as_public)
  const ikm = hkdf(
    authSecret,
    new Uint8Array(shared),
    concat(KEY_INFO, browserKey, local.publicKey),
    32,
  );
  // RFC 8188 section 2.2 and 2.3: the content key and the nonce come from the salt and IKM.
  const cek = hkdf(local.salt, ikm, CEK_INFO, 16);
  const nonce = hkdf(local.salt, ikm, NONCE_INFO, 12);
  const cipher = createCipheriv("aes-128-gcm", cek, nonce);
  // One record, the last: the plaintext, then the delimiter 0x02 and no padding.
  const head = cipher.update(plaintext);
  const delimiter = cipher.update(new Uint8Array([2]));
  const tail = cipher.final();
  const header = new Uint8Array(21);
  header.set(local.salt);
  new DataView(header.buffer).setUint32(16, RECORD_SIZE);
  header[20] = local.publicKey.length;
  return concat(header, local.publicKey, head, delimiter, tail, cipher.getAuthTag());
}

async function ephemeralKeys(): Promise<EphemeralKeys> {
  const pair = await crypto.subtle.generateKey(ECDH_P256, true, ["deriveBits"]) as CryptoKeyPair;
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  const at = pkcs8.length - 65 - (PUBLIC_KEY_TAIL.length - 1);
  const carried = at >= 0 && PUBLIC_KEY_TAIL.every((byte, i) => pkcs8[at + i] === byte);
  const publicKey = carried
    ? pkcs8.slice(pkcs8.length - 65)
    : new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  return { privateKey: pair.privateKey, publicKey, salt: new Uint8Array(randomBytes(16)) };
}

function hkdf(salt: Uint8Array, ikm: Uint8Array, info: Uint8Array, bytes: number): Uint8Array {
  return new Uint8Array(hkdfSync("sha256", ikm, salt, info, bytes));
}

function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
