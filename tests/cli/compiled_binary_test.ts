/**
 * Builds the single executable with the same flags users get (`deno task compile`) and runs
 * the CLI smoke checks against it. `deno compile` needs a `denort` runtime, which it downloads;
 * an offline machine has none, so this runs only when one is available (DENORT_BIN, or the zip
 * Deno caches under DENO_DIR) and otherwise says why it is skipped.
 */
import assert from "node:assert/strict";
import { compileArgs } from "../../scripts/compile.ts";
import { startProcess } from "../helpers/process.ts";

const ROOT = new URL("../../", import.meta.url);

async function findDenort(): Promise<{ env: Record<string, string> } | { skip: string }> {
  const explicit = Deno.env.get("DENORT_BIN");
  if (explicit) return { env: { DENORT_BIN: explicit } };
  const { stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
    stderr: "null",
  }).output();
  const denoDir: string = JSON.parse(new TextDecoder().decode(stdout)).denoDir;
  const version = Deno.version.deno;
  const zip = `${denoDir}/dl/release/v${version}/denort-${Deno.build.target}.zip`;
  try {
    await Deno.stat(zip);
    return { env: {} };
  } catch {
    return {
      skip: `no denort runtime: set DENORT_BIN, or cache ${zip} (deno compile downloads it, ` +
        `and this machine is offline)`,
    };
  }
}

const denort = await findDenort();
if ("skip" in denort) console.log(`compiled binary test skipped: ${denort.skip}`);

Deno.test({
  name: "the compiled binary answers --help, serves --dev on a real KV file, and keeps alarms",
  ignore: "skip" in denort,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "alarmd-compile-" });
    try {
      const binary = `${dir}/alarmd${Deno.build.os === "windows" ? ".exe" : ""}`;
      const build = await new Deno.Command(Deno.execPath(), {
        args: compileArgs(binary),
        cwd: ROOT,
        env: "env" in denort ? denort.env : {},
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(build.code, 0, new TextDecoder().decode(build.stderr));

      const help = await new Deno.Command(binary, { args: ["--help"], stdout: "piped" }).output();
      assert.equal(help.code, 0);
      assert.match(new TextDecoder().decode(help.stdout), /ALARMD_KV_PATH/);

      const kvPath = `${dir}/data/alarmd.kv`;
      const run = async () => {
        const proc = await startProcess(["serve", "--dev"], { ALARMD_KV_PATH: kvPath }, {
          command: [binary],
          waitFor: /Watch the stream/,
        });
        const out = proc.stdout();
        return {
          proc,
          url: /on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)![1],
          user: /User token.*\n\s+(\S+)/.exec(out)![1],
          publisher: /Publisher token.*\n\s+(\S+)/.exec(out)![1],
        };
      };
      const first = await run();
      assert.equal((await fetch(`${first.url}/healthz`)).status, 200);
      const created = await fetch(`${first.url}/api/v1/alarms`, {
        method: "POST",
        headers: { authorization: `Bearer ${first.publisher}`, "content-type": "application/json" },
        body: JSON.stringify({ userId: "dev-user", type: "compiled" }),
      });
      assert.equal(created.status, 201);
      const { id } = await created.json();
      assert.equal(await first.proc.stop("SIGTERM"), 0);
      assert.ok((await Deno.stat(kvPath)).isFile, "KV must be the configured file, not memory");

      const second = await run();
      try {
        const list = await fetch(`${second.url}/api/v1/users/alarms`, {
          headers: { authorization: `Bearer ${second.user}` },
        });
        assert.deepEqual((await list.json()).items.map((a: { id: string }) => a.id), [id]);
      } finally {
        assert.equal(await second.proc.stop("SIGTERM"), 0);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
