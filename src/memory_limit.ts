/**
 * A container that passes its memory limit is killed, and every stream it holds goes with it.
 * So alarmd refuses new streams while its resident memory is above a cap: ALARMD_MAX_MEMORY_MB,
 * or by default a share of the container's limit (cgroup v2, else v1), which leaves the rest for
 * what the open streams still need. Outside a container there is no default cap.
 */
import type { Clock } from "./domain/ports.ts";

const MIB = 1024 * 1024;

/** The container's limit, cgroup v2 first. Each is at the root of the container's own view. */
export const CGROUP_MEMORY_FILES = [
  "/sys/fs/cgroup/memory.max",
  "/sys/fs/cgroup/memory/memory.limit_in_bytes",
] as const;

/** Share of the container's limit used as the default cap. */
export const CONTAINER_SHARE = 0.8;

/** cgroup v1 reports "no limit" as a number near 2^63; no real limit is a petabyte. */
const UNLIMITED_FROM = 2 ** 50;

/** How often resident memory is read: each reading is a system call. */
export const RSS_SAMPLE_MS = 500;

/** The byte limit in a cgroup memory file's text; null for "max", a huge value or junk. */
export function parseCgroupMemoryLimit(text: string): number | null {
  const value = text.trim();
  if (!/^\d+$/.test(value)) return null;
  const bytes = Number(value);
  return bytes > 0 && bytes < UNLIMITED_FROM ? bytes : null;
}

/** The container's memory limit in bytes, or null when there is none (or it cannot be read). */
export function readContainerMemoryLimit(
  readFile: (path: string) => string = (path) => Deno.readTextFileSync(path),
): number | null {
  for (const path of CGROUP_MEMORY_FILES) {
    let text: string;
    try {
      text = readFile(path);
    } catch {
      continue;
    }
    const bytes = parseCgroupMemoryLimit(text);
    if (bytes !== null) return bytes;
  }
  return null;
}

export interface MemoryCap {
  /** Resident bytes above which new streams are refused, or null for no cap. */
  readonly bytes: number | null;
  /** Where the cap came from, for the start-up log. */
  readonly source: "configured" | "cgroup" | "none";
}

/** The configured cap in MiB wins (0 turns it off); else a share of the container's limit. */
export function memoryCap(
  configuredMb: number | undefined,
  containerBytes: number | null,
): MemoryCap {
  if (configuredMb !== undefined) {
    return { bytes: configuredMb > 0 ? configuredMb * MIB : null, source: "configured" };
  }
  if (containerBytes !== null) {
    return { bytes: Math.floor(containerBytes * CONTAINER_SHARE), source: "cgroup" };
  }
  return { bytes: null, source: "none" };
}

export interface MemoryWatch {
  /** Whether resident memory was above the cap at the last sample; false without a cap. */
  over(): boolean;
  stop(): void;
}

/** Samples `rss()` now and every `intervalMs`, so that checking it per request costs nothing. */
export function watchMemory(options: {
  capBytes: number | null;
  rss: () => number;
  clock: Clock;
  intervalMs?: number;
  /** Called when memory goes above the cap (the first sample included) or back below it. */
  onChange?: (over: boolean, rssBytes: number) => void;
}): MemoryWatch {
  const { capBytes, rss, clock, onChange } = options;
  if (capBytes === null) return { over: () => false, stop() {} };
  let over = false;
  const sample = () => {
    const bytes = rss();
    if ((bytes > capBytes) === over) return;
    over = !over;
    onChange?.(over, bytes);
  };
  sample();
  const timer = clock.setInterval(sample, options.intervalMs ?? RSS_SAMPLE_MS);
  return {
    over: () => over,
    stop: () => clock.clearInterval(timer),
  };
}
