/**
 * Builds the single executable with the same flags users get (`deno task compile`) and runs it
 * as a self-hoster would: the release smoke check (scripts/smoke_binary.ts), `--help`, the inbox
 * and the API reference page, a restart on the same KV file, and `--workers 2` (whose second
 * isolate is a file the binary must carry).
 *
 * `deno compile` needs a `denort` runtime, which it downloads. It runs when DENORT_BIN names
 * one, when Deno has it cached, or when REQUIRE_COMPILED_BINARY=1 says the download must work
 * (the GitHub workflow sets it: there a build that cannot compile fails). Otherwise (this
 * offline machine) it is skipped, and says why.
 */
import assert from "node:assert/strict";
import { compileArgs } from "../../scripts/compile.ts";
import { smokeExecutable } from "../../scripts/smoke_binary.ts";
import { startProcess } from "../helpers/process.ts";
import { publisherToken, TEST_SECRET, userToken } from "../helpers/test_server.ts";
import { delay } from "../helpers/wait.ts";

const ROOT = new URL("../../", import.meta.url);

async function findDenort(): Promise<{ env: Record<string, string> } | { skip: string }> {
  const explicit = Deno.env.get("DENORT_BIN");
  if (explicit) return { env: { DENORT_BIN: explicit } };
  if (Deno.env.get("REQUIRE_COMPILED_BINARY") === "1") return { env: {} };
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
        `and this machine is offline); REQUIRE_COMPILED_BINARY=1 makes it run and fail instead ` +
        `(the GitHub workflow's test job sets it)`,
    };
  }
}

/** The URL from the "alarmd listening" line, once every isolate has started. */
async function listeningWithWorkers(stderr: () => string): Promise<string> {
  for (let i = 0; i < 800; i++) {
    const log = stderr();
    const url = /"msg":"alarmd listening","url":"(http:\/\/[^"]+)"/.exec(log)?.[1];
    if (url && log.includes('"msg":"workers started"')) return url;
    await delay(25);
  }
  throw new Error(`--workers 2 did not start: ${stderr()}`);
}

const denort = await findDenort();
if ("skip" in denort) console.log(`compiled binary test skipped: ${denort.skip}`);

Deno.test({
  name:
    "the compiled binary passes the release smoke check, serves the inbox and /docs, keeps alarms across a restart, and runs --workers 2",
  ignore: "skip" in denort,
  async fn(t) {
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

      await t.step("the release smoke check", async () => {
        await smokeExecutable([binary], { target: Deno.build.target, log: () => {} });
      });

      await t.step("--help", async () => {
        const help = await new Deno.Command(binary, { args: ["--help"], stdout: "piped" })
          .output();
        assert.equal(help.code, 0);
        const text = new TextDecoder().decode(help.stdout);
        assert.match(text, /ALARMD_KV_PATH/);
        assert.match(text, /alarmd health \[--ready\]/);
      });

      const kvPath = `${dir}/data/alarmd.kv`;
      const dev = async () => {
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
      let id = "";
      await t.step("serve --dev on a real KV file: the inbox, /docs, a publish", async () => {
        const first = await dev();
        try {
          for (const [path, marker] of [["/", /<html/i], ["/docs", /openapi\.json/]] as const) {
            const page = await fetch(`${first.url}${path}`);
            assert.equal(page.status, 200, path);
            assert.match(page.headers.get("content-type")!, /text\/html/);
            assert.match(await page.text(), marker, path);
          }
          const created = await fetch(`${first.url}/api/v1/alarms`, {
            method: "POST",
            headers: {
              authorization: `Bearer ${first.publisher}`,
              "content-type": "application/json",
            },
            body: JSON.stringify({ userId: "dev-user", type: "compiled" }),
          });
          assert.equal(created.status, 201);
          id = (await created.json()).id;
        } finally {
          assert.equal(await first.proc.stop("SIGTERM"), 0);
        }
        assert.ok((await Deno.stat(kvPath)).isFile, "KV must be the configured file, not memory");
      });

      await t.step("a restart on the same KV file keeps the alarm", async () => {
        const second = await dev();
        try {
          const list = await fetch(`${second.url}/api/v1/users/alarms`, {
            headers: { authorization: `Bearer ${second.user}` },
          });
          assert.deepEqual((await list.json()).items.map((a: { id: string }) => a.id), [id]);
        } finally {
          assert.equal(await second.proc.stop("SIGTERM"), 0);
        }
      });

      await t.step("--workers 2 on the same file: both isolates serve and deliver", async () => {
        const proc = await startProcess(["serve", "--workers", "2"], {
          ALARMD_KV_PATH: kvPath,
          ALARMD_JWT_SECRET: TEST_SECRET,
          ALARMD_HOST: "127.0.0.1",
          ALARMD_LOG_LEVEL: "info",
        }, { command: [binary] });
        try {
          const url = await listeningWithWorkers(proc.stderr);
          const seen = new Set<number>();
          for (let i = 0; i < 40 && seen.size < 2; i++) {
            const res = await fetch(`${url}/healthz`, { headers: { connection: "close" } });
            seen.add((await res.json()).worker);
          }
          assert.deepEqual([...seen].sort(), [0, 1], "both isolates answer");

          const user = await userToken("dev-user");
          const publisher = await publisherToken("compiled");
          const stream = await fetch(`${url}/api/v1/users/alarm/subscribe`, {
            headers: { authorization: `Bearer ${user}`, "last-event-id": id },
          });
          assert.equal(stream.status, 200);
          const reader = stream.body!.pipeThrough(new TextDecoderStream()).getReader();
          try {
            const ids: string[] = [];
            for (let n = 0; n < 6; n++) {
              const res = await fetch(`${url}/api/v1/alarms`, {
                method: "POST",
                headers: {
                  authorization: `Bearer ${publisher}`,
                  "content-type": "application/json",
                  connection: "close", // each create may land on either isolate
                },
                body: JSON.stringify({ userId: "dev-user", type: "workers", data: { n } }),
              });
              assert.equal(res.status, 201);
              ids.push((await res.json()).id);
            }
            let text = "";
            const deadline = Date.now() + 20_000;
            while (ids.some((i) => !text.includes(`id: ${i}\n`)) && Date.now() < deadline) {
              const { value, done } = await reader.read();
              if (done) break;
              text += value;
            }
            const got = [...text.matchAll(/^id: (\S+)$/gm)].map((m) => m[1]);
            assert.deepEqual(got, ids, text);
            const listed = await fetch(`${url}/api/v1/users/alarms?limit=100`, {
              headers: { authorization: `Bearer ${user}` },
            });
            const items = (await listed.json()).items.map((a: { id: string }) => a.id);
            assert.deepEqual(items, [...ids].reverse().concat(id), "the restarted file's alarm");
          } finally {
            await reader.cancel();
          }
          assert.equal(await proc.stop("SIGTERM"), 0);
          assert.equal(proc.stderr().split('"msg":"alarmd stopped"').length - 1, 2);
        } finally {
          await proc.stop("SIGKILL");
        }
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
