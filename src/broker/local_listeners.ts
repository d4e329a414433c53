import { createListenerSet } from "../domain/listener_set.ts";
import type { AlarmChange } from "../domain/ports.ts";

/** The subscriber lists every bus adapter keeps for its own instance. */
export function createLocalListeners(onError?: (error: unknown) => void) {
  const changes = createListenerSet<AlarmChange>(onError);
  const gaps = createListenerSet<void>(onError);
  return {
    deliver: (change: AlarmChange) => changes.emit(change),
    gap: () => gaps.emit(undefined),
    subscribe: (listener: (change: AlarmChange) => void) => changes.add(listener),
    onGap: (listener: () => void) => gaps.add(listener),
    clear() {
      changes.clear();
      gaps.clear();
    },
  };
}
