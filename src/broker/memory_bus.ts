import type { AlarmChange, LiveBus } from "../domain/ports.ts";

/**
 * The single-isolate bus: publish calls every subscriber synchronously, so a change reaches
 * local connection queues before the create that caused it answers.
 */
export function createMemoryBus(options: { onError?: (error: unknown) => void } = {}): LiveBus {
  const listeners = new Set<(change: AlarmChange) => void>();
  return {
    publish(change) {
      for (const listener of listeners) {
        try {
          listener(change);
        } catch (error) {
          options.onError?.(error);
        }
      }
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      listeners.clear();
      return Promise.resolve();
    },
  };
}
