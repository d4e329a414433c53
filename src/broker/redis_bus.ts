import { Redis } from "ioredis";
import { UnavailableError } from "../domain/errors.ts";
import type { AlarmChange, LiveBus } from "../domain/ports.ts";
import { createLocalListeners } from "./local_listeners.ts";

export interface RedisBusOptions {
  readonly url: string;
  readonly channel?: string;
  readonly onError?: (error: unknown) => void;
  /** Connection state changes, for logs and metrics. */
  readonly onState?: (state: "connected" | "disconnected") => void;
}

interface Envelope {
  /** Which instance published: it already delivered locally and ignores its own echo. */
  readonly from: string;
  readonly change: AlarmChange;
}

/**
 * Fan-out across processes and hosts with Redis pub/sub. Local subscribers hear a change
 * synchronously; other instances hear it through Redis. Pub/sub is fire-and-forget, so a
 * change published while Redis is down never reaches the others: it is safe in KV, and when
 * an instance's subscription comes back it reports a gap so its streams catch up from KV.
 * Publishing never queues while disconnected, so an outage cannot grow memory.
 */
export function createRedisBus(options: RedisBusOptions): LiveBus {
  const channel = options.channel ?? "alarmd:changes";
  const id = crypto.randomUUID();
  const local = createLocalListeners(options.onError);
  const common = { maxRetriesPerRequest: 1, retryStrategy: (n: number) => Math.min(n * 100, 2000) };
  const pub = new Redis(options.url, { ...common, enableOfflineQueue: false });
  const sub = new Redis(options.url, { ...common, enableOfflineQueue: true });
  let closed = false;
  let everReady = false;
  let lost = false;

  sub.on("error", (error) => options.onError?.(error));
  pub.on("error", (error) => options.onError?.(error));
  sub.on("close", () => {
    if (closed || !everReady) return;
    if (!lost) options.onState?.("disconnected");
    lost = true;
  });
  sub.on("ready", () => {
    // ioredis re-subscribes on reconnect; whatever was published meanwhile is gone.
    if (lost) {
      lost = false;
      options.onState?.("connected");
      local.gap();
    }
    everReady = true;
  });
  sub.on("message", (_channel: string, raw: string) => {
    let envelope: Envelope;
    try {
      envelope = JSON.parse(raw);
    } catch (error) {
      options.onError?.(error);
      return;
    }
    if (envelope.from !== id) local.deliver(envelope.change);
  });
  const subscribed = sub.subscribe(channel).catch((error) => options.onError?.(error));

  return {
    publish(change) {
      local.deliver(change);
      const envelope: Envelope = { from: id, change };
      pub.publish(channel, JSON.stringify(envelope)).catch((error) => options.onError?.(error));
    },
    subscribe: local.subscribe,
    onGap: local.onGap,
    async ready() {
      await subscribed;
      try {
        await pub.ping();
      } catch {
        throw new UnavailableError("Redis is unreachable");
      }
      if (sub.status !== "ready") throw new UnavailableError("Redis subscription is down");
    },
    async close() {
      closed = true;
      local.clear();
      await Promise.allSettled([sub.quit(), pub.quit()]);
      sub.disconnect();
      pub.disconnect();
    },
  };
}
