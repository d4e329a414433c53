/**
 * Which push subscriptions alarmd accepts: the endpoint must be on a push service it trusts (a
 * subscription must never make alarmd call into a private network), and the browser's keys must
 * be ones a message can be encrypted to. Pure: the http layer answers `400` with the reason, and
 * the sender checks the endpoint again before each request.
 */

/** The push services browsers use; `*.` admits any subdomain, never the bare suffix. */
export const KNOWN_PUSH_HOSTS: readonly string[] = [
  "fcm.googleapis.com",
  "*.push.services.mozilla.com",
  "*.push.apple.com",
  "*.notify.windows.com",
];

export interface EndpointPolicy {
  /** Why alarmd will not send to `endpoint`, or null when it may. */
  readonly refusal: (endpoint: string) => string | null;
  /** `refusal(endpoint) === null`, in the shape the sender takes. */
  readonly allows: (endpoint: string) => boolean;
}

/**
 * The known push services over `https:` on their default port, or, when `allowedOrigins` lists
 * any, exactly those origins (scheme, host and port) instead. An empty list means the default,
 * as an unset `ALARMD_PUSH_ALLOWED_ORIGINS` does. Throws a TypeError naming a listed entry that
 * is not a bare `http:` or `https:` origin.
 */
export function createEndpointPolicy(allowedOrigins: readonly string[] = []): EndpointPolicy {
  const origins = allowedOrigins.map((o) => o.trim()).filter((o) => o !== "");
  const check = origins.length > 0
    ? listedOriginCheck(new Set(origins.map(bareOrigin)))
    : knownHostCheck;
  const refusal = (endpoint: string): string | null => {
    let url: URL;
    try {
      url = new URL(endpoint);
    } catch {
      return "the endpoint is not a URL";
    }
    if (url.username !== "" || url.password !== "") return "the endpoint carries credentials";
    return check(url);
  };
  return { refusal, allows: (endpoint) => refusal(endpoint) === null };
}

function listedOriginCheck(origins: ReadonlySet<string>) {
  return (url: URL) => origins.has(url.origin) ? null : `${url.origin} is not an allowed origin`;
}

function knownHostCheck(url: URL): string | null {
  if (url.protocol !== "https:") return "push endpoints must use https:";
  if (url.port !== "") return "push endpoints must use the default port";
  if (isIpLiteral(url.hostname)) return "push endpoints must name a host, not an IP address";
  if (!KNOWN_PUSH_HOSTS.some((pattern) => hostMatches(url.hostname, pattern))) {
    return `${url.hostname} is not a known push service`;
  }
  return null;
}

/** Exact match, or for `*.suffix` a host ending in `.suffix` whose labels are all non-empty. */
function hostMatches(host: string, pattern: string): boolean {
  if (!pattern.startsWith("*.")) return host === pattern;
  const suffix = pattern.slice(1);
  return host.length > suffix.length && host.endsWith(suffix) && !host.split(".").includes("");
}

/** The URL parser has already turned decimal, octal and hex IPv4 forms into dotted quads. */
function isIpLiteral(host: string): boolean {
  return host.startsWith("[") || /^\d+\.\d+\.\d+\.\d+$/.test(host);
}

function bareOrigin(entry: string): string {
  let url: URL;
  try {
    url = new URL(entry);
  } catch {
    throw new TypeError(`push origin "${entry}" is not a URL`);
  }
  const bare = (url.protocol === "http:" || url.protocol === "https:") &&
    url.username === "" && url.password === "" && url.pathname === "/" &&
    url.search === "" && url.hash === "";
  if (!bare) {
    throw new TypeError(`push origin "${entry}" must be just scheme://host[:port] (http or https)`);
  }
  return url.origin;
}

/** The base64url subscription keys as the browser sends them (`PushSubscription.toJSON()`). */
export interface PushKeys {
  readonly p256dh: string;
  readonly auth: string;
}

/**
 * What is wrong with a subscription's keys, or null: `p256dh` must be an uncompressed P-256
 * point on the curve (a point off it could leak the sender's ephemeral key through ECDH) and
 * `auth` a 16-byte secret. base64url with or without padding.
 */
export function pushKeysProblem(keys: PushKeys): string | null {
  const p256dh = decodeBase64Url(keys.p256dh);
  if (p256dh?.length !== 65 || p256dh[0] !== 0x04) {
    return "keys.p256dh must be a base64url 65-byte uncompressed P-256 point";
  }
  if (!isP256Point(p256dh)) return "keys.p256dh is not a point on P-256";
  const auth = decodeBase64Url(keys.auth);
  if (!auth || auth.length !== 16) return "keys.auth must be a base64url 16-byte secret";
  return null;
}

/** The bytes of base64url text (padding tolerated), or null when it is not base64url. */
export function decodeBase64Url(text: string): Uint8Array<ArrayBuffer> | null {
  if (typeof text !== "string" || !/^[A-Za-z0-9_-]*={0,2}$/.test(text)) return null;
  try {
    return Uint8Array.fromBase64(text, { alphabet: "base64url" });
  } catch {
    return null;
  }
}

// P-256 (SEC 2, section 2.4.2): y² = x³ - 3x + b over the prime field p.
const P = 2n ** 256n - 2n ** 224n + 2n ** 192n + 2n ** 96n - 1n;
const B = 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn;

/**
 * Whether `point` is `0x04 || x || y` with (x, y) on the curve. WebCrypto's raw import does not
 * always check this, so whoever imports a public key from outside asks here first.
 */
export function isP256Point(point: Uint8Array): boolean {
  if (point.length !== 65 || point[0] !== 0x04) return false;
  const x = toBigInt(point.subarray(1, 33));
  const y = toBigInt(point.subarray(33, 65));
  if (x >= P || y >= P) return false;
  return (y * y - (x * x * x - 3n * x + B)) % P === 0n;
}

function toBigInt(bytes: Uint8Array): bigint {
  let n = 0n;
  for (const byte of bytes) n = (n << 8n) | BigInt(byte);
  return n;
}
