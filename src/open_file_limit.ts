/**
 * Every stream holds a socket, and a process past its open-file limit (`ulimit -n`) cannot
 * accept anything: measured with `deno task bench` at 19,000 streams under a 20,000 limit, Deno's
 * `node:http` stopped accepting for good once it hit the limit, publishers included. So alarmd
 * keeps this many descriptors for everything but streams (KV files, listeners, publishers' and
 * scrapers' connections, Redis) and refuses streams past the rest with `503`, as it does past
 * ALARMD_MAX_CONNECTIONS.
 */
export const FD_RESERVE = 1024;

/** The soft "Max open files" of a `/proc/<pid>/limits` text; null when unlimited or absent. */
export function parseOpenFileLimit(limits: string): number | null {
  const match = /^Max open files\s+(\S+)/m.exec(limits);
  if (!match || match[1] === "unlimited") return null;
  const n = Number(match[1]);
  return Number.isSafeInteger(n) && n > 0 ? n : null;
}

/** This process's open-file limit, where the OS tells (Linux); null elsewhere. */
export function readOpenFileLimit(): number | null {
  try {
    return parseOpenFileLimit(Deno.readTextFileSync("/proc/self/limits"));
  } catch {
    return null;
  }
}

/**
 * Streams one isolate may hold: the configured cap, lowered to its share of the open files left
 * after the reserve (workers are isolates of one process, so they share its limit).
 */
export function streamCap(configured: number, openFiles: number | null, workers = 1): number {
  if (openFiles === null) return configured;
  return Math.min(configured, Math.max(0, Math.floor((openFiles - FD_RESERVE) / workers)));
}
