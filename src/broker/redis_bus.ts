import { Redis } from "ioredis";
import { ALARM_LIMITS, ALARM_TYPE_PATTERN } from "../domain/alarm.ts";
import { UnavailableError } from "../domain/errors.ts";
import type { AlarmChange, LiveBus } from "../domain/ports.ts";
import { isUlid } from "../domain/ulid.ts";
import { createHmacSigner } from "./hmac_signer.ts";
import { createLocalListeners } from "./local_listeners.ts";

export interface RedisBusOptions {
  readonly url: string;
  /**
   * The deployment's shared secret (at least 32 bytes): every message is signed with it, and a
   * message that does not verify is never delivered. Every instance must use the same bytes.
   */
  readonly key: Uint8Array;
  readonly channel?: string;
  /** Failures, including every rejected message (a RejectedMessageError). */
  readonly onError?: (error: unknown) => void;
  /** Connection state changes, for logs and metrics. */
  readonly onState?: (state: "connected" | "disconnected") => void;
}

interface Envelope {
  /** Which instance published: it already delivered locally and ignores its own echo. */
  readonly from: string;
  readonly change: AlarmChange;
}

/** A message on the channel that is not an authentic, well-formed alarmd envelope. */
export class RejectedMessageError extends Error {
  constructor(readonly channel: string, readonly reason: string, readonly preview: string) {
    super(`rejected a message on Redis channel ${channel} (${reason}): ${preview}`);
    this.name = "RejectedMessageError";
  }
}

/** How long readiness waits for Redis before calling it unreachable. */
const READY_TIMEOUT_MS = 2_000;
/** How much of a rejected message the error quotes, so the log names it without flooding. */
const PREVIEW_CHARS = 120;

/**
 * Fan-out across processes and hosts with Redis pub/sub. Local subscribers hear a change
 * synchronously; other instances hear it through Redis. Pub/sub is fire-and-forget, so a
 * change published while Redis is down never reaches the others: it is safe in KV, and when
 * an instance's subscription comes back it reports a gap so its streams catch up from KV.
 * Publishing never queues while disconnected, so an outage cannot grow memory.
 *
 * Whoever can publish on Redis could otherwise hand alarms to any user's streams, so each
 * message carries an HMAC of its exact payload under the deployment's key, and its shape is
 * checked once the HMAC holds. A message that fails either is reported and treated as a gap
 * (the streams re-read KV, which only alarmd writes), never delivered. Signing and verifying
 * are asynchronous (WebCrypto), so both run ahead while messages go out and are delivered in
 * the order they were published and arrived.
 */
export function createRedisBus(options: RedisBusOptions): LiveBus {
  if (options.key.byteLength < 32) throw new Error("the Redis bus key must be at least 32 bytes");
  const channel = options.channel ?? "alarmd:changes";
  /** This instance, so that it skips its own messages coming back from Redis. */
  const instanceId = crypto.randomUUID();
  const local = createLocalListeners(options.onError);
  // Signed with the deployment's key itself (hmac_signer.ts): the channel's original format.
  const signer = createHmacSigner(options.key, null);
  const common = { maxRetriesPerRequest: 1, retryStrategy: (n: number) => Math.min(n * 100, 2000) };
  const publisher = new Redis(options.url, { ...common, enableOfflineQueue: false });
  const subscriber = new Redis(options.url, { ...common, enableOfflineQueue: true });
  let closed = false;
  let everReady = false;
  let lost = false;
  /** The last message handed to Redis and the last one delivered: each waits for the one before. */
  let sending: Promise<void> = Promise.resolve();
  let delivering: Promise<void> = Promise.resolve();

  subscriber.on("error", (error) => options.onError?.(error));
  publisher.on("error", (error) => options.onError?.(error));
  subscriber.on("close", () => {
    if (closed || !everReady) return;
    if (!lost) options.onState?.("disconnected");
    lost = true;
  });
  subscriber.on("ready", () => {
    // ioredis re-subscribes on reconnect; whatever was published meanwhile is gone.
    if (lost) {
      lost = false;
      options.onState?.("connected");
      local.gap();
    }
    everReady = true;
  });
  subscriber.on("message", (_channel: string, raw: string) => {
    const verified = verify(raw);
    delivering = delivering.then(async () => {
      const result = await verified;
      if (closed) return;
      if (typeof result === "string") {
        const preview = raw.length > PREVIEW_CHARS ? `${raw.slice(0, PREVIEW_CHARS)}…` : raw;
        local.gap();
        options.onError?.(new RejectedMessageError(channel, result, preview));
      } else if (result.from !== instanceId) {
        local.deliver(result.change);
      }
    }).catch((error) => options.onError?.(error));
  });
  const subscribed = subscriber.subscribe(channel).catch((error) => options.onError?.(error));

  /** The envelope in `raw`, or why it is refused. Never rejects. */
  async function verify(raw: string): Promise<Envelope | string> {
    const verified = await signer.verify(raw);
    if (typeof verified === "string") return verified;
    let envelope: unknown;
    try {
      envelope = JSON.parse(verified.payload);
    } catch {
      return "payload is not JSON";
    }
    const problem = envelopeProblem(envelope);
    return problem === null ? envelope as Envelope : `bad shape: ${problem}`;
  }

  /** The wire message for `payload`, or null (reported) if it cannot be signed. Never rejects. */
  function sign(payload: string): Promise<string | null> {
    return signer.sign(payload).catch((error) => {
      options.onError?.(error);
      return null;
    });
  }

  return {
    publish(change) {
      local.deliver(change);
      const envelope: Envelope = { from: instanceId, change };
      const signed = sign(JSON.stringify(envelope));
      // Handed to Redis in publish order; nothing waits for Redis to answer.
      sending = sending.then(async () => {
        const message = await signed;
        if (message === null) return;
        publisher.publish(channel, message).catch((error) => options.onError?.(error));
      }).catch((error) => options.onError?.(error));
    },
    subscribe: local.subscribe,
    onGap: local.onGap,
    async ready() {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new UnavailableError("Redis is unreachable")),
          READY_TIMEOUT_MS,
        );
      });
      try {
        await Promise.race([subscribed, timeout]);
        try {
          await Promise.race([publisher.ping(), timeout]);
        } catch {
          throw new UnavailableError("Redis is unreachable");
        }
      } finally {
        clearTimeout(timer);
      }
      if (subscriber.status !== "ready") throw new UnavailableError("Redis subscription is down");
    },
    async close() {
      // What was published before close still goes out.
      await sending;
      closed = true;
      local.clear();
      await Promise.allSettled([subscriber.quit(), publisher.quit()]);
      subscriber.disconnect();
      publisher.disconnect();
    },
  };
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const isUserId = (v: unknown) =>
  typeof v === "string" && v.length >= 1 && v.length <= ALARM_LIMITS.userIdMax;
const isTime = (v: unknown) =>
  typeof v === "string" && v.length <= 32 && !Number.isNaN(Date.parse(v));

/**
 * What is wrong with an authenticated envelope, or null. Only alarmd instances hold the key, so
 * this catches version skew and bugs rather than attacks; extra alarm fields pass unchanged.
 */
function envelopeProblem(envelope: unknown): string | null {
  if (!isRecord(envelope)) return "envelope is not an object";
  if (typeof envelope.from !== "string") return "from is not a string";
  const change = envelope.change;
  if (!isRecord(change)) return "change is not an object";
  if (change.kind === "created") {
    if (change.prevId !== null && !(typeof change.prevId === "string" && isUlid(change.prevId))) {
      return "prevId is neither null nor an alarm id";
    }
    const alarm = change.alarm;
    if (!isRecord(alarm)) return "alarm is not an object";
    if (typeof alarm.id !== "string" || !isUlid(alarm.id)) return "alarm.id is not an alarm id";
    if (!isUserId(alarm.userId)) return "alarm.userId is not a user id";
    if (typeof alarm.type !== "string" || !ALARM_TYPE_PATTERN.test(alarm.type)) {
      return "alarm.type is not an alarm type";
    }
    if (!isRecord(alarm.data)) return "alarm.data is not an object";
    if (!isTime(alarm.createdAt)) return "alarm.createdAt is not a time";
    if (alarm.readAt !== null && !isTime(alarm.readAt)) return "alarm.readAt is not null or a time";
    const n = alarm.notification;
    if (n != null && (!isRecord(n) || typeof n.title !== "string")) {
      return "alarm.notification is not null or a notification";
    }
    return null;
  }
  if (change.kind === "read" || change.kind === "deleted") {
    if (!isUserId(change.userId)) return "userId is not a user id";
    if (!Array.isArray(change.ids) || !change.ids.every((i) => typeof i === "string")) {
      return "ids is not an array of strings";
    }
    if (!Number.isSafeInteger(change.unread) || (change.unread as number) < 0) {
      return "unread is not a non-negative integer";
    }
    return null;
  }
  if (change.kind === "erased") return isUserId(change.userId) ? null : "userId is not a user id";
  return "kind is not created, read, deleted or erased";
}
