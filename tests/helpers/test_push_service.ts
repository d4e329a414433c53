/**
 * A push service on a random loopback port, standing where FCM would. It hands out subscriptions
 * (a browser-side P-256 key pair and auth secret), checks each message's VAPID token with jose,
 * decrypts its body with its own RFC 8291 code — written here on WebCrypto, independent of the
 * library alarmd encrypts with, and checked against the RFC's worked example — and records it.
 * Tests script its answers per subscription (a status, headers, a delay). Close it in a
 * `finally` (or `await using`).
 */
import { importJWK, type JWTPayload, jwtVerify } from "jose";
import { waitUntil } from "./wait.ts";

export interface TestPushSubscription {
  readonly id: string;
  /** `http://127.0.0.1:PORT/push/<id>`. */
  readonly endpoint: string;
  /** What `PushSubscription.toJSON().keys` holds: base64url public key and auth secret. */
  readonly keys: { readonly p256dh: string; readonly auth: string };
}

/** One scripted answer; a subscription with none left answers `201`. */
export interface PushAnswer {
  readonly status: number;
  readonly headers?: Record<string, string>;
  /** Wait this long before answering (cut short when the service closes). */
  readonly delayMs?: number;
}

/** A message that arrived, passed the VAPID check and decrypted. */
export interface ReceivedPush {
  readonly subscriptionId: string;
  /** The decrypted payload, as UTF-8 text. */
  readonly payload: string;
  /** Every request header, names in lower case. */
  readonly headers: Record<string, string>;
  readonly ttl: number | null;
  readonly urgency: string | null;
  /** The verified token's claims and the `k=` key it was checked against. */
  readonly vapid: { readonly claims: JWTPayload; readonly publicKey: string };
  /** The body's size in bytes, as sent. */
  readonly bodyBytes: number;
  /** What the service answered. */
  readonly status: number;
}

export interface TestPushService extends AsyncDisposable {
  /** `http://127.0.0.1:PORT`: the audience tokens must name. */
  readonly origin: string;
  /** Every request that reached the service, in order, whatever became of it. */
  readonly requests: readonly { readonly method: string; readonly path: string }[];
  /** Why messages were refused: a bad VAPID token, a body that does not decrypt, … */
  readonly problems: readonly string[];
  subscribe(): Promise<TestPushSubscription>;
  /** Queues answers for the next messages to `subscriptionId`, in order. */
  answer(subscriptionId: string, answers: readonly PushAnswer[]): void;
  /** The messages received (for one subscription, or all), oldest first. */
  received(subscriptionId?: string): ReceivedPush[];
  /** Waits until `count` messages in all have been received; returns them. */
  waitFor(count: number, timeoutMs?: number): Promise<ReceivedPush[]>;
  close(): Promise<void>;
}

/** The browser side of a subscription, as the decryptor needs it. */
export interface Receiver {
  readonly privateKey: CryptoKey;
  readonly publicKey: Uint8Array<ArrayBuffer>;
  readonly authSecret: Uint8Array<ArrayBuffer>;
}

const MAX_TOKEN_LIFETIME_S = 24 * 60 * 60;

export function startTestPushService(): Promise<TestPushService> {
  const subscriptions = new Map<string, { receiver: Receiver; answers: PushAnswer[] }>();
  const requests: { method: string; path: string }[] = [];
  const verified = new Map<string, ReceivedPush["vapid"]>();
  const problems: string[] = [];
  const messages: ReceivedPush[] = [];
  const closing = new AbortController();

  const refuse = (status: number, problem: string) => {
    problems.push(problem);
    return new Response(problem, { status });
  };

  const handle = async (request: Request): Promise<Response> => {
    const { pathname } = new URL(request.url);
    requests.push({ method: request.method, path: pathname });
    const id = /^\/push\/([A-Za-z0-9_-]+)$/.exec(pathname)?.[1];
    const subscription = id === undefined ? undefined : subscriptions.get(id);
    const body = new Uint8Array(await request.arrayBuffer());
    if (request.method !== "POST" || !id || !subscription) {
      return new Response(null, { status: 404 });
    }
    if (request.headers.get("content-encoding") !== "aes128gcm") {
      return refuse(415, `${id}: Content-Encoding is ${request.headers.get("content-encoding")}`);
    }
    let vapid: ReceivedPush["vapid"];
    try {
      // A sender reuses one token for a while; a real push service checks it once, and so does
      // this one (the expiry is still checked on every message).
      const authorization = request.headers.get("authorization") ?? "";
      const known = verified.get(authorization);
      if (known && Number(known.claims.exp) * 1000 > Date.now()) vapid = known;
      else {
        vapid = await verifyVapid(authorization, origin, Date.now());
        verified.set(authorization, vapid);
      }
    } catch (error) {
      return refuse(403, `${id}: VAPID: ${(error as Error).message}`);
    }
    let payload: string;
    try {
      const plaintext = await decryptAes128gcm(body, subscription.receiver);
      payload = new TextDecoder("utf-8", { fatal: true }).decode(plaintext);
    } catch (error) {
      return refuse(400, `${id}: cannot decrypt: ${(error as Error).message}`);
    }
    const answer = subscription.answers.shift() ?? { status: 201 };
    const ttl = request.headers.get("ttl");
    messages.push({
      subscriptionId: id,
      payload,
      headers: Object.fromEntries(request.headers),
      ttl: ttl === null ? null : Number(ttl),
      urgency: request.headers.get("urgency"),
      vapid,
      bodyBytes: body.length,
      status: answer.status,
    });
    if (answer.delayMs) await pause(answer.delayMs, closing.signal);
    const noBody = answer.status === 204 || answer.status === 304;
    return new Response(noBody ? null : `answer ${answer.status}`, {
      status: answer.status,
      headers: answer.headers,
    });
  };

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handle);
  const origin = `http://127.0.0.1:${server.addr.port}`;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    closing.abort();
    await server.shutdown();
  };

  return Promise.resolve({
    origin,
    requests,
    problems,
    async subscribe() {
      const receiver = await newReceiver();
      const id = crypto.randomUUID().replaceAll("-", "");
      subscriptions.set(id, { receiver, answers: [] });
      return {
        id,
        endpoint: `${origin}/push/${id}`,
        keys: { p256dh: toBase64Url(receiver.publicKey), auth: toBase64Url(receiver.authSecret) },
      };
    },
    answer(subscriptionId, answers) {
      const subscription = subscriptions.get(subscriptionId);
      if (!subscription) throw new Error(`no subscription ${subscriptionId}`);
      subscription.answers.push(...answers);
    },
    received(subscriptionId) {
      return messages.filter((m) =>
        subscriptionId === undefined || m.subscriptionId === subscriptionId
      );
    },
    async waitFor(count, timeoutMs = 5000) {
      await waitUntil(() => messages.length >= count, `${count} pushes arrived`, timeoutMs);
      return [...messages];
    },
    close,
    [Symbol.asyncDispose]: close,
  });
}

/** A browser's side of a subscription: an ECDH P-256 key pair and a 16-byte auth secret. */
export async function newReceiver(): Promise<Receiver> {
  const pair = await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, true, [
    "deriveBits",
  ]);
  return {
    privateKey: pair.privateKey,
    publicKey: new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey)),
    authSecret: crypto.getRandomValues(new Uint8Array(16)),
  };
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done);
    if (signal.aborted) done();
  });
}

export const toBase64Url = (bytes: Uint8Array) =>
  bytes.toBase64({ alphabet: "base64url", omitPadding: true });

export const fromBase64Url = (text: string) =>
  Uint8Array.fromBase64(text, { alphabet: "base64url" });

/**
 * Checks an `Authorization: vapid t=<JWT>, k=<key>` header (RFC 8292 section 3): an ES256
 * signature by the `k=` key, `aud` equal to `audience`, an `exp` in the future and at most a day
 * ahead of `nowMs`, a `sub` that is a `mailto:` or `https:` URL. Throws saying what failed.
 */
export async function verifyVapid(
  authorization: string | null,
  audience: string,
  nowMs: number,
): Promise<ReceivedPush["vapid"]> {
  const scheme = /^vapid\s+(.*)$/i.exec(authorization ?? "");
  if (!scheme) throw new Error(`Authorization is not vapid: ${authorization}`);
  const params = new Map(
    scheme[1].split(",").map((part) => {
      const at = part.indexOf("=");
      return [part.slice(0, at).trim(), part.slice(at + 1).trim()] as const;
    }),
  );
  const token = params.get("t");
  const publicKey = params.get("k");
  if (!token || !publicKey) throw new Error("Authorization lacks t= or k=");
  const point = fromBase64Url(publicKey);
  if (point.length !== 65 || point[0] !== 0x04) throw new Error("k= is not an uncompressed point");
  const key = await importJWK({
    kty: "EC",
    crv: "P-256",
    x: toBase64Url(point.subarray(1, 33)),
    y: toBase64Url(point.subarray(33)),
  }, "ES256");
  const { payload } = await jwtVerify(token, key, {
    algorithms: ["ES256"],
    audience,
    currentDate: new Date(nowMs),
    requiredClaims: ["aud", "exp", "sub"],
  });
  if (typeof payload.aud !== "string") throw new Error("aud is not one origin");
  if (payload.exp! > nowMs / 1000 + MAX_TOKEN_LIFETIME_S) throw new Error("exp is over 24 h ahead");
  if (!/^(mailto:.+|https:\/\/.+)$/.test(String(payload.sub))) {
    throw new Error(`sub is not a mailto: or https: URL: ${payload.sub}`);
  }
  return { claims: payload, publicKey };
}

const utf8 = (text: string) => new TextEncoder().encode(text);

/**
 * Decrypts an `aes128gcm` Web Push body: RFC 8188 records (header: salt, record size, key id =
 * the sender's ephemeral public key) with the key derived per RFC 8291 section 3.4 from ECDH
 * between `receiver` and that key, mixed with the auth secret. Throws on any inconsistency.
 */
export async function decryptAes128gcm(
  body: Uint8Array,
  receiver: Receiver,
): Promise<Uint8Array> {
  if (body.length < 21) throw new Error("shorter than the RFC 8188 header");
  const salt = body.slice(0, 16);
  const recordSize = new DataView(body.buffer, body.byteOffset + 16, 4).getUint32(0);
  const keyIdLength = body[20];
  if (recordSize < 18) throw new Error(`record size ${recordSize} is below 18`);
  if (keyIdLength !== 65) throw new Error(`key id is ${keyIdLength} bytes, not a P-256 point`);
  if (body.length < 21 + keyIdLength) throw new Error("the key id is cut short");
  const senderKey = body.slice(21, 21 + keyIdLength);

  const senderPublic = await crypto.subtle.importKey(
    "raw",
    senderKey,
    { name: "ECDH", namedCurve: "P-256" },
    false,
    [],
  );
  const ecdhSecret = await crypto.subtle.deriveBits(
    { name: "ECDH", public: senderPublic },
    receiver.privateKey,
    256,
  );
  // RFC 8291 3.4: IKM = HKDF(auth_secret, ecdh_secret, "WebPush: info\0" ua_public as_public)
  const keyInfo = concat(utf8("WebPush: info\0"), receiver.publicKey, senderKey);
  const ikm = await hkdf(receiver.authSecret, new Uint8Array(ecdhSecret), keyInfo, 32);
  // RFC 8188 2.2 and 2.3: the content key and the nonce base come from the salt and IKM.
  const cek = await hkdf(salt, ikm, utf8("Content-Encoding: aes128gcm\0"), 16);
  const nonceBase = await hkdf(salt, ikm, utf8("Content-Encoding: nonce\0"), 12);
  const key = await crypto.subtle.importKey("raw", cek, "AES-GCM", false, ["decrypt"]);

  const ciphertext = body.subarray(21 + keyIdLength);
  if (ciphertext.length === 0) throw new Error("no record");
  const parts: Uint8Array[] = [];
  for (let offset = 0, seq = 0; offset < ciphertext.length; offset += recordSize, seq++) {
    const record = ciphertext.slice(offset, offset + recordSize);
    const last = offset + recordSize >= ciphertext.length;
    if (record.length < 17) throw new Error(`record ${seq} is too short`);
    const iv = nonceBase.slice();
    new DataView(iv.buffer).setUint32(8, new DataView(iv.buffer).getUint32(8) ^ seq);
    const plain = new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv }, key, record));
    let end = plain.length - 1;
    while (end >= 0 && plain[end] === 0) end--;
    if (end < 0) throw new Error(`record ${seq} has no padding delimiter`);
    if (plain[end] !== (last ? 2 : 1)) throw new Error(`record ${seq} has delimiter ${plain[end]}`);
    parts.push(plain.subarray(0, end));
  }
  return concat(...parts);
}

async function hkdf(
  salt: Uint8Array<ArrayBuffer>,
  ikm: Uint8Array<ArrayBuffer>,
  info: Uint8Array<ArrayBuffer>,
  bytes: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const key = await crypto.subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt, info },
    key,
    bytes * 8,
  );
  return new Uint8Array(bits);
}

function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** A receiver from raw keys: for the RFC's worked example, whose private key is given. */
export async function receiverFromKeys(
  publicKey: Uint8Array<ArrayBuffer>,
  privateKey: Uint8Array<ArrayBuffer>,
  authSecret: Uint8Array<ArrayBuffer>,
): Promise<Receiver> {
  const jwk = {
    kty: "EC",
    crv: "P-256",
    x: toBase64Url(publicKey.subarray(1, 33)),
    y: toBase64Url(publicKey.subarray(33)),
    d: toBase64Url(privateKey),
  };
  const key = await crypto.subtle.importKey(
    "jwk",
    jwk,
    { name: "ECDH", namedCurve: "P-256" },
    false,
    [
      "deriveBits",
    ],
  );
  return { privateKey: key, publicKey, authSecret };
}
