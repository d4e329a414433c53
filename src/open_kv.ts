/** A file path, not ":memory:" (a second handle would be another database) or KV Connect. */
const isLocalFile = (path: string) => !/^https?:\/\//.test(path) && path !== ":memory:";

/**
 * Opens KV at the configured path, creating the file's folder. Never a bare `Deno.openKv()`,
 * which is in-memory inside a compiled binary.
 */
export async function openKv(path: string): Promise<Deno.Kv> {
  if (isLocalFile(path)) {
    const dir = path.replace(/[\\/][^\\/]*$/, "");
    if (dir && dir !== path) await Deno.mkdir(dir, { recursive: true });
  }
  return await Deno.openKv(path);
}

/**
 * A second handle on the same file for reads, so that they do not queue behind commits (see
 * KvAlarmStoreOptions.readKv); `kv` itself where a second handle would not be the same database.
 */
export async function openReadKv(path: string, kv: Deno.Kv): Promise<Deno.Kv> {
  return isLocalFile(path) ? await Deno.openKv(path) : kv;
}
