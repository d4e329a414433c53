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
