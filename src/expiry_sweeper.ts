import type { AlarmStore } from "./domain/ports.ts";
import type { Logger } from "./log.ts";
import { errorFields } from "./log.ts";

const SWEEP_INTERVAL_MS = 30_000;

export interface ExpirySweeper {
  stop(): void;
}

/**
 * Deletes alarms past retention at once, then every SWEEP_INTERVAL_MS. A failed sweep is only
 * logged: reads already skip expired alarms, and the next sweep tries again.
 */
export function startExpirySweeper(store: AlarmStore, logger: Logger): ExpirySweeper {
  const sweep = () =>
    store.sweepExpired().then(
      (n) => n > 0 && logger.info("expired alarms swept", { count: n }),
      (error) => logger.warn("sweep failed", errorFields(error)),
    );
  void sweep();
  const timer = setInterval(sweep, SWEEP_INTERVAL_MS);
  return { stop: () => clearInterval(timer) };
}
