import { createBroadcastPresenceChannel } from "./broker/broadcast_presence.ts";
import { createLocalPresence } from "./broker/local_presence.ts";
import { RejectedMessageError } from "./broker/redis_bus.ts";
import { createRedisPresenceChannel } from "./broker/redis_presence.ts";
import type { Config } from "./config.ts";
import type { LiveHub } from "./domain/live_hub.ts";
import type { Clock } from "./domain/ports.ts";
import type { Presence } from "./domain/presence.ts";
import { PRESENCE_ALIVE_MAX_MS } from "./domain/presence.ts";
import { createSharedPresence } from "./domain/shared_presence.ts";
import type { Logger } from "./log.ts";
import { errorFields } from "./log.ts";
import { loadBusKey } from "./storage/kv_bus_key.ts";

/**
 * Presence as the deployment needs it, chosen like the bus: with Redis every isolate (each
 * worker too) is a member on a Redis channel; with workers alone the isolates share a
 * BroadcastChannel; a lone isolate counts its own streams. Members say they are alive every
 * `min(10 s, ALARMD_HEARTBEAT_MS)`, so one that crashes stops counting within 30 s (sooner with
 * a shorter heartbeat).
 */
export async function openPresence(
  config: Config,
  deps: { kv: Deno.Kv; hub: LiveHub; clock: Clock; logger: Logger },
): Promise<Presence> {
  const { hub, clock, logger } = deps;
  if (!config.redisUrl && config.workers <= 1) return createLocalPresence(hub.liveCounts);
  const onError = (error: unknown) =>
    error instanceof RejectedMessageError
      ? logger.error("rejected a presence message from Redis", {
        channel: error.channel,
        reason: error.reason,
        rejected: error.preview,
      })
      // Connection failures are the bus's to report; presence only says what it cannot know.
      : logger.debug("presence channel error", errorFields(error));
  const channel = config.redisUrl
    ? createRedisPresenceChannel({ url: config.redisUrl, key: await loadBusKey(deps.kv), onError })
    : createBroadcastPresenceChannel({ onError });
  let wasUp = channel.up;
  channel.onState((up) => {
    if (up === wasUp) return;
    wasUp = up;
    if (up) logger.info("presence channel up: counts are known once the other members answer");
    else logger.warn("presence channel down: presence is unknown (503) until it is back");
  });
  return createSharedPresence({
    channel,
    local: hub.liveCounts,
    clock,
    aliveEveryMs: Math.min(PRESENCE_ALIVE_MAX_MS, config.heartbeatMs),
  });
}
