import type { AlarmChange } from "../domain/ports.ts";

/** The subscriber lists every bus adapter keeps for its own instance. */
export function createLocalListeners(onError?: (error: unknown) => void) {
  const changes = new Set<(change: AlarmChange) => void>();
  const gaps = new Set<() => void>();
  const call = <T>(listeners: Set<(arg: T) => void>, arg: T) => {
    for (const listener of listeners) {
      try {
        listener(arg);
      } catch (error) {
        onError?.(error);
      }
    }
  };
  return {
    deliver: (change: AlarmChange) => call(changes, change),
    gap: () => call(gaps, undefined),
    subscribe(listener: (change: AlarmChange) => void) {
      changes.add(listener);
      return () => changes.delete(listener);
    },
    onGap(listener: () => void) {
      gaps.add(listener);
      return () => gaps.delete(listener);
    },
    clear() {
      changes.clear();
      gaps.clear();
    },
  };
}
