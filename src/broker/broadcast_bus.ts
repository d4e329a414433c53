import type { AlarmChange, LiveBus } from "../domain/ports.ts";
import { createLocalListeners } from "./local_listeners.ts";

/**
 * Fan-out between the isolates of one process (`deno serve --parallel`, workers) over a
 * BroadcastChannel: local subscribers hear a change synchronously, the channel carries it to
 * the other isolates (never back to the sender). In-process delivery cannot drop messages,
 * so it never reports a gap.
 */
export function createBroadcastBus(
  options: { channel?: string; onError?: (error: unknown) => void } = {},
): LiveBus {
  const local = createLocalListeners(options.onError);
  const channel = new BroadcastChannel(options.channel ?? "alarmd:changes");
  channel.onmessage = (event: MessageEvent<AlarmChange>) => local.deliver(event.data);
  return {
    publish(change) {
      local.deliver(change);
      channel.postMessage(change);
    },
    subscribe: local.subscribe,
    onGap: local.onGap,
    ready: () => Promise.resolve(),
    close() {
      channel.close();
      local.clear();
      return Promise.resolve();
    },
  };
}
