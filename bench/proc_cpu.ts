/**
 * CPU time from Linux's /proc, for the bench's figures: a process's, and each of its threads'
 * with the thread's name (Deno KV's SQLite threads are `sw-N`, V8's helpers `V8 DefaultWorke`).
 */

/** Clock ticks per second in /proc's stat files (USER_HZ). */
export const TICKS_PER_SECOND = 100;

/** User plus system ticks from a /proc stat file (fields 14 and 15, after the name). */
function statTicks(path: string): number {
  const stat = Deno.readTextFileSync(path);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

/** A whole process's CPU ticks, threads that already ended included. */
export function processTicks(pid: number | "self"): number {
  return statTicks(`/proc/${pid}/stat`);
}

/** Each live thread's CPU ticks; a thread that ends while being read is left out. */
export function threadTicks(pid: number | "self"): { tid: string; name: string; ticks: number }[] {
  const out: { tid: string; name: string; ticks: number }[] = [];
  for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
    try {
      const name = Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/comm`).trim();
      out.push({ tid: task.name, name, ticks: statTicks(`/proc/${pid}/task/${task.name}/stat`) });
    } catch {
      continue;
    }
  }
  return out;
}

/**
 * CPU ticks by kind of thread: "js" is a process's main thread (a Deno program's JS, or an nchan
 * worker), "kv" Deno KV's SQLite threads (`sw-N`), "gc" V8's helper threads (`V8 DefaultWorke`,
 * mostly concurrent GC), "other" the rest (Tokio, --workers isolates). Says which thread bounds a
 * run: one thread can use one core at most.
 */
export type TicksByKind = { js: number; kv: number; gc: number; other: number };

/** Sums each process's threads by kind; a process's JS thread is the one whose id is its pid. */
export function ticksByKind(pids: number[]): TicksByKind {
  const out: TicksByKind = { js: 0, kv: 0, gc: 0, other: 0 };
  for (const pid of pids) {
    for (const { tid, name, ticks } of threadTicks(pid)) {
      const kind = tid === String(pid)
        ? "js"
        : name.startsWith("sw-")
        ? "kv"
        : name.startsWith("V8 ")
        ? "gc"
        : "other";
      out[kind] += ticks;
    }
  }
  return out;
}

/**
 * CPU each kind of thread used since `before` (a `ticksByKind` reading of the same pids): in
 * milliseconds, or in % of one core when given the `ms` that passed.
 */
export function cpuByKindSince(before: TicksByKind, pids: number[], ms?: number): TicksByKind {
  const after = ticksByKind(pids);
  const out: TicksByKind = { js: 0, kv: 0, gc: 0, other: 0 };
  for (const kind of Object.keys(after) as (keyof TicksByKind)[]) {
    const used = (after[kind] - before[kind]) * 1000 / TICKS_PER_SECOND;
    out[kind] = ms === undefined ? used : Math.round(used * 100 / ms);
  }
  return out;
}
