/**
 * Every client socket holds a descriptor, and a process at its open-file limit cannot accept,
 * open KV files or reach Redis. The budget, from the top: FILE_RESERVE descriptors are never
 * given to client sockets (KV, Redis, key sets, outbound sends); sockets past the rest are
 * closed as they arrive (so accept never fails); streams stop FD_RESERVE short of the limit, so
 * publishers and probes still find sockets when streams are full.
 */
export const FD_RESERVE = 1024;

/** Descriptors kept from client sockets altogether. */
export const FILE_RESERVE = 256;

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

/** Client sockets one isolate may hold, or null when the OS sets no limit. */
export function socketCap(openFiles: number | null, workers = 1): number | null {
  if (openFiles === null) return null;
  return Math.max(1, Math.floor((openFiles - FILE_RESERVE) / workers));
}
