import { createListenerSet } from "../domain/listener_set.ts";
import type { PresenceChannel, PresenceMessage } from "../domain/presence.ts";
import { presenceMessageProblem } from "../domain/presence.ts";

/**
 * The presence channel between the isolates of one process (`--workers`): a BroadcastChannel,
 * which reaches every other isolate in order and never drops, so it is always up. Messages are
 * still checked, as on Redis: a bug must not corrupt another isolate's counts.
 */
export function createBroadcastPresenceChannel(
  options: { channel?: string; onError?: (error: unknown) => void } = {},
): PresenceChannel {
  const name = options.channel ?? "alarmd:presence";
  const messages = createListenerSet<PresenceMessage>(options.onError);
  const channel = new BroadcastChannel(name);
  let closed = false;
  channel.onmessage = (event: MessageEvent<unknown>) => {
    const problem = presenceMessageProblem(event.data);
    if (problem === null) messages.emit(event.data as PresenceMessage);
    else options.onError?.(new Error(`ignored a presence message on ${name}: ${problem}`));
  };
  return {
    send(message) {
      if (!closed) channel.postMessage(message);
    },
    onMessage: messages.add,
    onState: () => () => {},
    get up() {
      return !closed;
    },
    close() {
      closed = true;
      channel.close();
      messages.clear();
      return Promise.resolve();
    },
  };
}
