import { kvKeys } from "./kv_keys.ts";

/** How long after seeing another writer this process keeps checking users one by one. */
const SHARED_MODE_MS = 5_000;

/**
 * The writer claim on the KV key ["w"]: while a process holds it, its commits check that key
 * alone (one check however many users a batch touches) instead of every touched user's state.
 * Every other writer changes ["w"], by claiming it or on every commit in shared mode, so a
 * holder notices any other write at its next commit and goes back to shared mode.
 */
export interface WriterClaim {
  /**
   * The claim's versionstamp when this process writes alone, else null (shared mode). Tries to
   * claim when nobody else wrote since this process last did and no batch of ours is in flight
   * (a shared batch committing after the claim would change ["w"] and undo it).
   */
  current(batchesInFlight: number): string | null | Promise<string | null>;
  /** A commit made with `claim` succeeded at `versionstamp`. */
  committed(claim: string | null, versionstamp: string): void;
  /** A commit made with `claim` failed its checks: someone else wrote. */
  conflicted(claim: string | null): void;
}

/** `onFreshStart` runs when cached user states can no longer be trusted (claimed or lost). */
export function createWriterClaim(kv: Deno.Kv, onFreshStart: () => void): WriterClaim {
  /** ["w"]'s versionstamp while this process holds the claim. */
  let held: string | null = null;
  /** ["w"]'s versionstamp as of this process's last write of it. */
  let lastWritten: string | null | undefined = undefined;
  let claiming: Promise<string | null> | null = null;
  let sharedUntil = 0;

  async function tryClaim(): Promise<string | null> {
    const current = (await kv.get(kvKeys.writerClaim)).versionstamp;
    if (lastWritten !== undefined && current !== lastWritten) {
      // Someone else has written since this process last did: keep checking users one by one.
      lastWritten = current;
      sharedUntil = performance.now() + SHARED_MODE_MS;
      return null;
    }
    const result = await kv.atomic()
      .check({ key: kvKeys.writerClaim, versionstamp: current })
      .set(kvKeys.writerClaim, 1)
      .commit();
    if (!result.ok) {
      sharedUntil = performance.now() + SHARED_MODE_MS;
      return null;
    }
    // States cached in shared mode were only checked when a commit touched them.
    onFreshStart();
    held = lastWritten = result.versionstamp;
    return held;
  }

  return {
    current(batchesInFlight) {
      if (held !== null) return held;
      if (claiming) return claiming;
      if (performance.now() < sharedUntil || batchesInFlight > 0) return null;
      return claiming ??= tryClaim().finally(() => (claiming = null));
    },
    committed(claim, versionstamp) {
      // Shared commits set ["w"]. Batches may finish out of order: keep the newest.
      if (claim === null && (lastWritten == null || versionstamp > lastWritten)) {
        lastWritten = versionstamp;
      }
    },
    conflicted(claim) {
      if (claim === null || held !== claim) return;
      held = null;
      sharedUntil = performance.now() + SHARED_MODE_MS;
      onFreshStart();
    },
  };
}
