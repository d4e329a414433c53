/**
 * Listeners called in order with one value each. A listener that throws is reported, never
 * allowed to stop the others: one broken subscriber must not silence every other tab.
 */
export interface ListenerSet<T> {
  /** Calls every listener with `value`. */
  emit(value: T): void;
  /** Adds `listener`; returns the function that removes it. */
  add(listener: (value: T) => void): () => void;
  clear(): void;
}

export function createListenerSet<T>(onError?: (error: unknown) => void): ListenerSet<T> {
  const listeners = new Set<(value: T) => void>();
  return {
    emit(value) {
      for (const listener of listeners) {
        try {
          listener(value);
        } catch (error) {
          onError?.(error);
        }
      }
    },
    add(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    clear: () => listeners.clear(),
  };
}
