/**
 * compose.yaml without Docker: deploy/nginx.conf (real nginx, Debian's package) in front of two
 * alarmd processes with compose.yaml's own settings, sharing one KV file and a Redis, and the
 * release smoke check through it: the stream is not buffered, and four streams reach both
 * instances. The containers themselves are built and run in the GitHub workflow.
 */
import assert from "node:assert/strict";
import { parse } from "yaml";
import { smokeDeployment } from "../../scripts/smoke_binary.ts";
import { startServeProcess } from "../helpers/process.ts";
import { redisAvailable, startRedis } from "../helpers/redis.ts";
import { TEST_SECRET } from "../helpers/test_server.ts";
import { delay } from "../helpers/wait.ts";

const ROOT = new URL("../../", import.meta.url);

async function nginxAvailable(): Promise<string | null> {
  try {
    const { success } = await new Deno.Command("nginx", { args: ["-v"], stderr: "null" }).output();
    if (success) return null;
  } catch {
    // not installed
  }
  const reason = "nginx is not installed (bash scripts/install_deps.sh installs it)";
  if (Deno.env.get("CI") === "true") throw new Error(`CI needs nginx: ${reason}`);
  console.log(`nginx test skipped: ${reason}`);
  return reason;
}

const skip = (await redisAvailable()) ?? (await nginxAvailable());

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** deploy/nginx.conf with its upstreams at `upstreams` and listening on 127.0.0.1:`port`. */
async function nginxConfig(upstreams: string[], port: number): Promise<string> {
  let text = await Deno.readTextFile(new URL("deploy/nginx.conf", ROOT));
  const servers = [...text.matchAll(/^\s*server\s+(\S+:\d+);/gm)];
  assert.equal(servers.length, upstreams.length, "one upstream server per instance");
  servers.forEach((
    match,
    i,
  ) => (text = text.replace(`server ${match[1]};`, `server ${upstreams[i]};`)));
  assert.match(text, /^\s*listen 80;/m);
  return text.replace(/^(\s*)listen 80;/m, `$1listen 127.0.0.1:${port};`);
}

Deno.test({
  name:
    "deploy/nginx.conf in front of two instances with compose.yaml's settings: the release smoke check passes, streams on both",
  ignore: skip !== null,
  async fn() {
    const compose = parse(await Deno.readTextFile(new URL("compose.yaml", ROOT)));
    const settings: Record<string, string> = compose.services["alarmd-a"].environment;
    const dir = await Deno.makeTempDir({ prefix: "alarmd-nginx-" });
    await using redis = await startRedis();
    const env = {
      ...settings,
      ALARMD_JWT_SECRET: TEST_SECRET,
      ALARMD_KV_PATH: `${dir}/alarmd.kv`,
      ALARMD_REDIS_URL: redis.url,
    };
    await using a = await startServeProcess(env);
    await using b = await startServeProcess(env);

    const port = freePort();
    for (const sub of ["body", "proxy", "fastcgi", "uwsgi", "scgi"]) {
      await Deno.mkdir(`${dir}/${sub}`);
    }
    await Deno.writeTextFile(
      `${dir}/alarmd.conf`,
      await nginxConfig([a, b].map((p) => `127.0.0.1:${p.port}`), port),
    );
    await Deno.writeTextFile(
      `${dir}/nginx.conf`,
      `daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log stderr warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  include ${dir}/alarmd.conf;
}
`,
    );
    const nginx = new Deno.Command("nginx", {
      args: ["-p", dir, "-c", `${dir}/nginx.conf`, "-e", "stderr"],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const errors = new Response(nginx.stderr).text();
    try {
      for (let i = 0;; i++) {
        try {
          (await Deno.connect({ hostname: "127.0.0.1", port })).close();
          break;
        } catch (error) {
          if (i > 200) throw error;
          await delay(25);
        }
      }
      const lines: string[] = [];
      await smokeDeployment(`http://127.0.0.1:${port}`, TEST_SECRET, {
        streams: 4,
        log: (line) => lines.push(line),
      });
      assert.match(lines.at(-1)!, /^ok {2}every stream got event: alarm/);
      // nginx balanced the streams over both instances; Redis carried the alarm between them.
      for (const instance of [a, b]) {
        const opened = instance.logs().filter((l) => l.msg === "stream opened").length;
        assert.ok(opened >= 1, `an instance served ${opened} streams`);
      }
    } finally {
      nginx.kill("SIGTERM");
      await nginx.status;
      const log = await errors;
      assert.doesNotMatch(log, /\[(emerg|alert|crit|error)\]/, log);
      await a.stop();
      await b.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
