import { Redis } from "ioredis";
import { createListenerSet } from "../domain/listener_set.ts";
import type { PresenceChannel, PresenceMessage } from "../domain/presence.ts";
import { presenceMessageProblem } from "../domain/presence.ts";
import { createHmacSigner } from "./hmac_signer.ts";
import { RejectedMessageError } from "./redis_bus.ts";

export interface RedisPresenceOptions {
  readonly url: string;
  /**
   * The deployment's shared secret (the Redis bus's key): messages are signed with a key derived
   * from it for presence alone, and one that does not verify never reaches a member.
   */
  readonly key: Uint8Array;
  /** Default `alarmd:presence`, apart from the alarm changes. */
  readonly channel?: string;
  /** Failures, including every rejected message (a RejectedMessageError). */
  readonly onError?: (error: unknown) => void;
}

/** How much of a rejected message the error quotes. */
const PREVIEW_CHARS = 120;

/**
 * The presence channel on Redis pub/sub, with connections of its own (a subscriber and a
 * publisher), so presence never queues behind the alarm changes. It is `up` while both are
 * connected and the subscription holds: a member that cannot hear the others, or cannot be
 * heard, does not know presence. Messages go out in send order and reach listeners in arrival
 * order, though signing and verifying (WebCrypto) are asynchronous; nothing queues while Redis
 * is down (the member sends a full snapshot when it is back).
 */
export function createRedisPresenceChannel(options: RedisPresenceOptions): PresenceChannel {
  const name = options.channel ?? "alarmd:presence";
  const onError = (error: unknown) => options.onError?.(error);
  const signer = createHmacSigner(options.key, "presence");
  const messages = createListenerSet<PresenceMessage>(onError);
  const states = createListenerSet<boolean>(onError);
  const common = { maxRetriesPerRequest: 1, retryStrategy: (n: number) => Math.min(n * 100, 2000) };
  const publisher = new Redis(options.url, { ...common, enableOfflineQueue: false });
  const subscriber = new Redis(options.url, { ...common, enableOfflineQueue: false });
  let subscribed = false;
  let up = false;
  let closed = false;
  let sending: Promise<void> = Promise.resolve();
  let delivering: Promise<void> = Promise.resolve();

  const update = () => {
    const now = !closed && subscribed && subscriber.status === "ready" &&
      publisher.status === "ready";
    if (now === up) return;
    up = now;
    states.emit(up);
  };
  subscriber.on("error", onError);
  publisher.on("error", onError);
  subscriber.on("ready", () => {
    subscriber.subscribe(name).then(() => {
      subscribed = true;
      update();
    }, onError);
  });
  subscriber.on("close", () => {
    subscribed = false;
    update();
  });
  publisher.on("ready", update);
  publisher.on("close", update);

  subscriber.on("message", (channel: string, raw: string) => {
    if (channel !== name) return;
    const verified = signer.verify(raw);
    delivering = delivering.then(async () => {
      const result = await verified;
      if (closed) return;
      let problem = typeof result === "string" ? result : null;
      let message: unknown = null;
      if (typeof result !== "string") {
        try {
          message = JSON.parse(result.payload);
          const shape = presenceMessageProblem(message);
          if (shape !== null) problem = `bad shape: ${shape}`;
        } catch {
          problem = "payload is not JSON";
        }
      }
      if (problem === null) {
        messages.emit(message as PresenceMessage);
        return;
      }
      const preview = raw.length > PREVIEW_CHARS ? `${raw.slice(0, PREVIEW_CHARS)}…` : raw;
      onError(new RejectedMessageError(name, problem, preview));
    }).catch(onError);
  });

  return {
    send(message) {
      if (closed) return;
      const signed = signer.sign(JSON.stringify(message));
      sending = sending.then(async () => {
        const wire = await signed;
        if (publisher.status === "ready") publisher.publish(name, wire).catch(onError);
      }).catch(onError);
    },
    onMessage: messages.add,
    onState: states.add,
    get up() {
      return up;
    },
    async close() {
      // What was sent before close (a `bye`) still goes out.
      await sending;
      closed = true;
      messages.clear();
      states.clear();
      await Promise.allSettled([subscriber.quit(), publisher.quit()]);
      subscriber.disconnect();
      publisher.disconnect();
    },
  };
}
