import type { LiveBus } from "../domain/ports.ts";
import { createLocalListeners } from "./local_listeners.ts";

/**
 * The single-instance bus: publish calls every subscriber synchronously, so a change reaches
 * local connection queues before the create that caused it answers. Nothing can be missed, so
 * it never reports a gap.
 */
export function createMemoryBus(options: { onError?: (error: unknown) => void } = {}): LiveBus {
  const local = createLocalListeners(options.onError);
  return {
    publish: local.deliver,
    subscribe: local.subscribe,
    onGap: local.onGap,
    ready: () => Promise.resolve(),
    close() {
      local.clear();
      return Promise.resolve();
    },
  };
}
