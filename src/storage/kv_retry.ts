/** Another process holds SQLite's write lock: wait and try again, it is not a failure. */
export const isBusy = (error: unknown): boolean =>
  error instanceof Error && /database is locked|SQLITE_BUSY|busy/i.test(error.message);

/** How many times a commit is retried on conflicts (another process changed a user) or busy. */
export const RETRIES_ON_CONFLICT = 200;

/** A short random wait that grows with the attempt, so contending writers spread out. */
export function backoff(attempt: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.random() * Math.min(10, 1 + attempt)));
}

/** Commits what `build` stages, waiting out another process's write lock (rethrown if it lasts). */
export async function commitUnlessBusy(
  build: () => Deno.AtomicOperation,
): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
  for (let attempt = 0;; attempt++) {
    try {
      return await build().commit();
    } catch (error) {
      if (!isBusy(error) || attempt >= RETRIES_ON_CONFLICT) throw error;
      await backoff(attempt);
    }
  }
}
