/**
 * Shared by the OpenAPI tests: the live document of a test server, and Deno subprocesses that
 * resolve npm packages through this repository's deno.json and deno.lock (pinned versions,
 * checked integrity) while running in a temp directory.
 */
import { fileURLToPath } from "node:url";
import type { TestServer } from "../helpers/test_server.ts";

export const REPO_CONFIG = fileURLToPath(new URL("../../deno.json", import.meta.url));

/** `/openapi.json` as the server serves it. */
export async function liveDocument(server: TestServer): Promise<Record<string, unknown>> {
  const res = await server.fetch("/openapi.json");
  if (res.status !== 200) throw new Error(`/openapi.json answered ${res.status}`);
  return await res.json();
}

export interface Ran {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** `deno <args>` in `cwd`, with the repository's config (import map, lock file). */
export async function runDeno(
  args: readonly string[],
  options: { cwd: string; env?: Record<string, string> },
): Promise<Ran> {
  const [subcommand, ...rest] = args;
  const output = await new Deno.Command(Deno.execPath(), {
    args: [subcommand, `--config=${REPO_CONFIG}`, ...rest],
    cwd: options.cwd,
    env: { NO_COLOR: "1", ...options.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** A fresh temp directory, removed on dispose. */
export async function tempDir(prefix: string): Promise<AsyncDisposable & { path: string }> {
  const path = await Deno.makeTempDir({ prefix });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}
