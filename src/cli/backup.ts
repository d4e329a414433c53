/**
 * `alarmd backup FILE`: a consistent copy of the KV file, taken while alarmd keeps serving.
 *
 * A Deno KV file is an SQLite database in WAL mode. The copy is SQLite's online backup
 * (node:sqlite's `backup()`) in a single step, on a connection of this process's own: one read
 * transaction, so the copy is the store as of one commit, however busy alarmd is. alarmd's
 * commits go on meanwhile (WAL readers never block writers); the WAL only cannot be checkpointed
 * past the snapshot until the copy ends, so it grows by what is committed during it
 * (docs/performance.md#backup-while-serving has the figures).
 *
 * One step, not the default of 100 pages a step: a stepped backup starts over whenever another
 * process commits between two steps, so under a steady load it may never finish (against 100
 * commits/s, 1,390 steps for a 12,902-page file). Not `VACUUM INTO`, which would write a
 * compacted copy and was measured to cost publishing the same: it attaches the target as a
 * database, which Deno's node:sqlite allows only with every permission granted, and the compiled
 * alarmd has read, write, net and env ("too many attached databases - max 0").
 *
 * The copy is written to FILE.tmp, checked (SQLite's quick_check, then opened with Deno.openKv),
 * given the store's permissions, fsynced and renamed over FILE: FILE is either the previous file
 * or a complete, checked copy.
 */
import { backup, DatabaseSync } from "node:sqlite";
import { UsageError } from "./args.ts";

/** The backup was tried and failed: the store is missing or unreadable, or the copy is bad. */
export class BackupError extends Error {}

export interface BackupReport {
  readonly file: string;
  /** Rows in the copy's key-value table: every KV entry (expired ones not yet removed too). */
  readonly keys: number;
  readonly bytes: number;
  /**
   * When the copy began (ISO 8601): it holds every commit made before this instant, and none
   * made after `snapshotMs` more.
   */
  readonly snapshotAt: string;
  /** How long the read transaction on the live store lasted: the copy itself. */
  readonly snapshotMs: number;
  /** The check of the copy, and its fsync and rename. */
  readonly verifyMs: number;
  readonly totalMs: number;
}

const isUrl = (path: string) => /^https?:\/\//i.test(path);
const since = (start: number) => Math.round(performance.now() - start);

/** Copies the KV file at `source` to `file`; refuses to replace `file` unless `force`. */
export async function backupKv(
  source: string,
  file: string,
  options: { force: boolean },
): Promise<BackupReport> {
  const started = performance.now();
  if (isUrl(source)) {
    throw new UsageError(
      "ALARMD_KV_PATH (--kv-path) is a KV Connect URL: alarmd backup copies a local KV file; " +
        "back up a remote store where it is kept (the denokv server's file, or its host's backups)",
    );
  }
  if (source === ":memory:") throw new UsageError("ALARMD_KV_PATH is :memory:: nothing to back up");
  const sourceReal = await realPath(source);
  if (sourceReal === null) {
    throw new BackupError(`no KV file at ${source} (set ALARMD_KV_PATH or --kv-path)`);
  }
  const slash = file.lastIndexOf("/");
  const dir = slash === -1 ? "." : slash === 0 ? "/" : file.slice(0, slash);
  const dirReal = await realPath(dir);
  if (dirReal === null) throw new BackupError(`the folder of ${file} does not exist`);
  const fileReal = `${dirReal.replace(/\/$/, "")}/${file.slice(slash + 1)}`;
  if (["", "-wal", "-shm", "-journal"].some((suffix) => fileReal === sourceReal + suffix)) {
    throw new UsageError(`${file} is the KV file itself (or one of its own files)`);
  }
  if (!options.force && await realPath(file) !== null) {
    throw new UsageError(`${file} exists; pass --force to replace it`);
  }

  // Our own scratch name: a run that was killed part-way leaves it, and the next run starts over.
  const tmp = `${file}.tmp`;
  await removeIfPresent(tmp);
  try {
    const snapshotAt = new Date().toISOString();
    const copyStarted = performance.now();
    await copy(source, tmp);
    const snapshotMs = since(copyStarted);
    const verifyStarted = performance.now();
    const keys = await verify(tmp);
    // As private as the store: the copy holds every user's alarms.
    const { mode } = await Deno.stat(sourceReal);
    if (mode !== null && Deno.build.os !== "windows") await Deno.chmod(tmp, mode & 0o777);
    const handle = await Deno.open(tmp, { read: true, write: true });
    try {
      await handle.sync();
    } finally {
      handle.close();
    }
    await Deno.rename(tmp, file);
    await syncFolder(dir);
    const { size } = await Deno.stat(file);
    return {
      file,
      keys,
      bytes: size,
      snapshotAt,
      snapshotMs,
      verifyMs: since(verifyStarted),
      totalMs: since(started),
    };
  } catch (error) {
    for (const suffix of ["", "-wal", "-shm", "-journal"]) await removeIfPresent(tmp + suffix);
    throw error instanceof BackupError ? error : new BackupError(messageOf(error));
  }
}

/**
 * The online backup on a connection of our own. Opened read-write although it only reads: a
 * read-only connection leaves `-wal` and `-shm` files behind next to a store alarmd is not
 * running on, where the last read-write connection to close removes them.
 */
async function copy(source: string, target: string) {
  let db: DatabaseSync;
  try {
    // Waits out a writer's brief exclusive moments (WAL recovery, a checkpoint's reset).
    db = new DatabaseSync(source, { timeout: 10_000 });
  } catch (error) {
    throw new BackupError(`cannot open ${source}: ${messageOf(error)}`);
  }
  try {
    let table: unknown;
    try {
      table = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'kv'").get();
    } catch (error) {
      throw new BackupError(`${source} is not a Deno KV file: ${messageOf(error)}`);
    }
    if (!table) throw new BackupError(`${source} is not a Deno KV file: it has no kv table`);
    // All pages in one step (rate -1): one read transaction, never restarted by alarmd's commits.
    await backup(db, target, { rate: -1 });
  } finally {
    db.close();
  }
}

/** Checks the copy page by page, counts its entries and opens it as Deno KV; returns the count. */
async function verify(path: string): Promise<number> {
  const db = new DatabaseSync(path);
  let keys: number;
  try {
    const check = db.prepare("PRAGMA quick_check").all().map((row) => row.quick_check);
    if (check.length !== 1 || check[0] !== "ok") {
      throw new BackupError(`the copy failed SQLite's quick_check: ${check.join("; ")}`);
    }
    keys = Number(db.prepare("SELECT count(*) AS n FROM kv").get()?.n);
  } finally {
    db.close();
  }
  const kv = await Deno.openKv(path);
  try {
    // Reads an entry through Deno KV itself, so a file it would not accept fails here.
    for await (const _ of kv.list({ prefix: [] }, { limit: 1 })) break;
  } finally {
    kv.close();
  }
  return keys;
}

async function realPath(path: string): Promise<string | null> {
  try {
    return await Deno.realPath(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

async function removeIfPresent(path: string) {
  try {
    await Deno.remove(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

/** Makes the rename durable: on Linux a folder's entries are fsynced through the folder. */
async function syncFolder(dir: string) {
  if (Deno.build.os === "windows") return;
  const handle = await Deno.open(dir, { read: true });
  try {
    await handle.sync();
  } finally {
    handle.close();
  }
}

const messageOf = (error: unknown) => error instanceof Error ? error.message : String(error);
