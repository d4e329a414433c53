/**
 * The VAPID key pair (RFC 8292): a P-256 ECDSA key whose public half browsers subscribe with and
 * whose private half signs every push. Kept as base64url raw keys (the form browsers and the
 * config use); turned into a WebCrypto signing key only here, after checking that the two halves
 * belong together, since a mismatched pair would make every push service answer `403`.
 */
import type { VapidKeys } from "../domain/push.ts";
import { decodeBase64Url, isP256Point } from "../domain/push_endpoints.ts";

const ECDSA_P256 = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGNATURE = { name: "ECDSA", hash: "SHA-256" } as const;

const toBase64Url = (bytes: Uint8Array) =>
  bytes.toBase64({ alphabet: "base64url", omitPadding: true });

/** A new random key pair. */
export async function generateVapidKeys(): Promise<VapidKeys> {
  const pair = await crypto.subtle.generateKey(ECDSA_P256, true, ["sign", "verify"]);
  const publicKey = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  const { d } = await crypto.subtle.exportKey("jwk", pair.privateKey);
  if (!d) throw new Error("WebCrypto exported a private key without d");
  return { publicKey: toBase64Url(publicKey), privateKey: d };
}

/** Why `keys` cannot sign, or null when they can. */
export async function vapidKeysProblem(keys: VapidKeys): Promise<string | null> {
  try {
    await importVapidKeys(keys);
    return null;
  } catch (error) {
    return error instanceof VapidKeyError ? error.message : "the VAPID keys cannot be imported";
  }
}

/** `keys` is not a usable pair; the message never contains the private key. */
export class VapidKeyError extends Error {
  override name = "VapidKeyError";
}

/**
 * The private key as a non-extractable WebCrypto ECDSA key for ES256. Throws a VapidKeyError
 * when the public key is not an uncompressed P-256 point, the private key is not 32 bytes, or
 * the two do not belong together.
 */
export async function importVapidKeys(keys: VapidKeys): Promise<CryptoKey> {
  const publicBytes = decodeBase64Url(keys.publicKey);
  if (publicBytes?.length !== 65 || publicBytes[0] !== 0x04) {
    throw new VapidKeyError("the VAPID public key must be a base64url 65-byte uncompressed point");
  }
  const privateBytes = decodeBase64Url(keys.privateKey);
  if (privateBytes?.length !== 32) {
    throw new VapidKeyError("the VAPID private key must be a base64url 32-byte scalar");
  }
  if (!isP256Point(publicBytes)) throw new VapidKeyError("the VAPID public key is not on P-256");
  const jwk: JsonWebKey = {
    kty: "EC",
    crv: "P-256",
    x: toBase64Url(publicBytes.subarray(1, 33)),
    y: toBase64Url(publicBytes.subarray(33)),
    d: toBase64Url(privateBytes),
  };
  let signer: CryptoKey;
  try {
    signer = await crypto.subtle.importKey("jwk", jwk, ECDSA_P256, false, ["sign"]);
  } catch {
    throw new VapidKeyError("the VAPID private key does not match the public key");
  }
  // WebCrypto may accept a JWK whose d and (x, y) disagree; a signature tells for sure.
  const verifier = await crypto.subtle.importKey("raw", publicBytes, ECDSA_P256, false, ["verify"]);
  const probe = new TextEncoder().encode("alarmd VAPID key check");
  const signature = await crypto.subtle.sign(SIGNATURE, signer, probe);
  if (!await crypto.subtle.verify(SIGNATURE, verifier, signature, probe)) {
    throw new VapidKeyError("the VAPID private key does not match the public key");
  }
  return signer;
}
