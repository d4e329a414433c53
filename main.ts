/**
 * alarmd's entry point: reads the process's arguments, environment and signals, and hands them
 * to the CLI. Nothing else in the code base touches Deno.args or Deno.env.
 */
import { runCli } from "./src/cli/run.ts";

if (import.meta.main) {
  const encoder = new TextEncoder();
  const { promise: stopSignal, resolve } = Promise.withResolvers<string>();
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    if (Deno.build.os === "windows" && signal === "SIGTERM") continue;
    Deno.addSignalListener(signal, () => resolve(signal));
  }
  const code = await runCli({
    args: Deno.args,
    env: Deno.env.toObject(),
    stdout: (text) => Deno.stdout.writeSync(encoder.encode(text)),
    stderr: (text) => Deno.stderr.writeSync(encoder.encode(text)),
    stopSignal,
  });
  Deno.exit(code);
}
