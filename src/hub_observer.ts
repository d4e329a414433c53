import type { Clock } from "./domain/ports.ts";
import type { LiveHubObserver } from "./domain/live_hub.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";

/** What the live hub reports, turned into metrics and log lines. */
export function createHubObserver(
  deps: { metrics: Metrics; logger: Logger; clock: Clock },
): LiveHubObserver {
  const { metrics, logger, clock } = deps;
  return {
    opened: (c) => {
      metrics.connectionsOpened.inc();
      logger.info("stream opened", { userId: c.userId, connectionId: c.id });
    },
    closed: (c, reason) => {
      metrics.connectionsClosed.inc({ reason });
      if (reason === "slow_client" || reason === "write_timeout") metrics.slowClientsDropped.inc();
      logger.info("stream closed", {
        userId: c.userId,
        connectionId: c.id,
        reason,
        durationMs: clock.now() - c.openedAt,
      });
    },
    alarmSent: (alarm, replayed) => {
      if (replayed) {
        metrics.alarmsReplayed.inc();
        return;
      }
      metrics.alarmsDelivered.inc();
      metrics.deliveryLatency.observe(
        Math.max(0, clock.now() - Date.parse(alarm.createdAt)) / 1000,
      );
    },
    refused: (scope) => metrics.connectionsRefused.inc({ scope }),
  };
}
