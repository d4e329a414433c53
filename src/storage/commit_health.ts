import { UnavailableError } from "../domain/errors.ts";
import type { Clock } from "../domain/ports.ts";
import { kvKeys } from "./kv_keys.ts";
import { backoff, isBusy, RETRIES_ON_CONFLICT } from "./kv_retry.ts";

/**
 * The probe writes as many bytes as the largest single create (an 8 KiB alarm and its
 * idempotency record), so that a probe that fits means an alarm fits. Its length alternates by
 * one byte: SQLite rewrites a value of the same size in place, which a full disk still takes
 * where a new alarm does not fit.
 */
const PROBE_BYTES = 18 * 1024;
/** While commits fail, readiness probes at most this often; pings in between share its verdict. */
const PROBE_INTERVAL_MS = 5_000;

/**
 * Whether storage can commit, for readiness. Only after a failed commit does `ping` write (a
 * probe, at most one per interval), so polling readiness costs no writes while commits succeed.
 */
export function createCommitHealth(
  kv: Deno.Kv,
  clock: Clock,
  hooks: {
    onError?: (error: unknown) => void;
    onCommit?: (durationMs: number, changes: number) => void;
  },
) {
  let lastCommitFailed = false;
  let probe: { at: number; verdict: Promise<void> } | null = null;
  let flip = 0;

  async function probeWrite(): Promise<void> {
    flip ^= 1;
    const value = new Uint8Array(PROBE_BYTES + flip);
    for (let attempt = 0;; attempt++) {
      const started = performance.now();
      try {
        const atomic = kv.atomic();
        atomic.set(kvKeys.probe, value);
        await atomic.commit();
        lastCommitFailed = false;
        hooks.onCommit?.(performance.now() - started, 0);
        return;
      } catch (error) {
        if (isBusy(error) && attempt < RETRIES_ON_CONFLICT) {
          await backoff(attempt);
          continue;
        }
        hooks.onError?.(error);
        throw new UnavailableError(
          "storage cannot commit: the last write failed, and so did a probe",
        );
      }
    }
  }

  return {
    succeeded() {
      lastCommitFailed = false;
    },
    failed() {
      lastCommitFailed = true;
    },
    ping(): Promise<void> {
      if (!lastCommitFailed) return Promise.resolve();
      const now = clock.now();
      if (probe === null || now - probe.at >= PROBE_INTERVAL_MS || now < probe.at) {
        probe = { at: now, verdict: probeWrite() };
      }
      return probe.verdict;
    },
  };
}
