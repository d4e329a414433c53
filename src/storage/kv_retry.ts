/** Another process holds SQLite's write lock: wait and try again, it is not a failure. */
export const isBusy = (error: unknown): boolean =>
  error instanceof Error && /database is locked|SQLITE_BUSY|busy/i.test(error.message);

/** How many times a commit is retried on conflicts (another process changed a user) or busy. */
export const RETRIES_ON_CONFLICT = 200;

/** A short random wait that grows with the attempt, so contending writers spread out. */
export function backoff(attempt: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.random() * Math.min(10, 1 + attempt)));
}
