/**
 * Signed messages on Redis: `v1.<hex HMAC-SHA256 of the payload>.<payload>`. Each use signs
 * with its own key derived from the deployment's shared key (HMAC of the use's name), so a
 * message signed for one channel never verifies on another; the alarm-change channel, the first
 * use, signs with the shared key itself, as it always has.
 */
export interface HmacSigner {
  /** The wire message for `payload`. */
  sign(payload: string): Promise<string>;
  /** The payload of an authentic wire message, or why `raw` is refused. Never rejects. */
  verify(raw: string): Promise<{ readonly payload: string } | string>;
}

const VERSION_PREFIX = "v1.";
const MAC_HEX_CHARS = 64;
const encoder = new TextEncoder();

/**
 * `key`: the deployment's shared secret (at least 32 bytes); `use`: e.g. "presence", or null for
 * the shared key itself.
 */
export function createHmacSigner(key: Uint8Array, use: string | null): HmacSigner {
  if (key.byteLength < 32) throw new Error("the Redis signing key must be at least 32 bytes");
  const hmacKey = (async () => {
    const hmac = { name: "HMAC", hash: "SHA-256" };
    if (use === null) {
      return crypto.subtle.importKey("raw", key.slice(), hmac, false, ["sign", "verify"]);
    }
    const root = await crypto.subtle.importKey("raw", key.slice(), hmac, false, ["sign"]);
    const derived = await crypto.subtle.sign("HMAC", root, encoder.encode(`alarmd:${use}`));
    return crypto.subtle.importKey("raw", derived, hmac, false, ["sign", "verify"]);
  })();
  return {
    async sign(payload) {
      const mac = await crypto.subtle.sign("HMAC", await hmacKey, encoder.encode(payload));
      return `${VERSION_PREFIX}${toHex(new Uint8Array(mac))}.${payload}`;
    },
    async verify(raw) {
      if (!raw.startsWith(VERSION_PREFIX)) return "not an alarmd envelope";
      const macEnd = VERSION_PREFIX.length + MAC_HEX_CHARS;
      const mac = hexBytes(raw.slice(VERSION_PREFIX.length, macEnd));
      if (mac === null || raw[macEnd] !== ".") return "not an alarmd envelope";
      const payload = raw.slice(macEnd + 1);
      try {
        const ok = await crypto.subtle.verify("HMAC", await hmacKey, mac, encoder.encode(payload));
        return ok ? { payload } : "bad HMAC: not signed with this deployment's key";
      } catch (error) {
        return `HMAC check failed: ${error instanceof Error ? error.message : error}`;
      }
    },
  };
}

function toHex(bytes: Uint8Array): string {
  let hex = "";
  for (const byte of bytes) hex += byte.toString(16).padStart(2, "0");
  return hex;
}

/** The bytes of exactly MAC_HEX_CHARS lowercase hex digits, or null. */
function hexBytes(hex: string): Uint8Array<ArrayBuffer> | null {
  if (!/^[0-9a-f]{64}$/.test(hex)) return null;
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}
