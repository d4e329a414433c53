/**
 * Builds the single alarmd executable. The one place that lists what the binary needs:
 * `deno task compile`, the release workflow and the compiled-binary test all call this.
 *
 *   deno task compile [--target <rust triple>] [--output <path>]
 *
 * `deno compile` fetches a `denort` runtime for the target unless DENORT_BIN names one.
 */
/**
 * V8's young generation capped at 8 MB (its default is 16): a burst of connects then leaves the
 * heap far less unused space, for a lower rate at saturation (docs/performance.md, "Idle
 * memory"). Also in `deno task start`, so that both run with the same heap.
 */
export const YOUNG_GENERATION_FLAG = "--v8-flags=--max-semi-space-size=8";

export const COMPILE_FLAGS = [
  "--unstable-kv",
  // --workers shares one port between isolates (reusePort).
  "--unstable-net",
  // Serves HTTP and fetches JWKS keys.
  "--allow-net",
  // The KV file (its path is configuration, so it cannot be narrowed here) and web assets.
  "--allow-read",
  "--allow-write",
  // Configuration comes from ALARMD_* variables.
  "--allow-env",
  "--include",
  "web/",
  // Spawned by `serve --workers N`: not reachable by static imports.
  "--include",
  "src/worker.ts",
  // The Web Push sender's isolate, started with `new Worker`.
  "--include",
  "src/push_worker.ts",
  "--no-check",
  YOUNG_GENERATION_FLAG,
];

export function compileArgs(output: string, target?: string): string[] {
  return [
    "compile",
    ...COMPILE_FLAGS,
    ...(target ? ["--target", target] : []),
    "--output",
    output,
    "main.ts",
  ];
}

if (import.meta.main) {
  let output = "dist/alarmd";
  let target: string | undefined;
  for (let i = 0; i < Deno.args.length; i++) {
    const arg = Deno.args[i];
    if (arg === "--output") output = Deno.args[++i];
    else if (arg === "--target") target = Deno.args[++i];
    else {
      console.error(`compile: unknown argument ${arg} (accepted: --target, --output)`);
      Deno.exit(2);
    }
  }
  const root = new URL("..", import.meta.url);
  const { code } = await new Deno.Command(Deno.execPath(), {
    args: compileArgs(output, target),
    cwd: root,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  Deno.exit(code);
}
