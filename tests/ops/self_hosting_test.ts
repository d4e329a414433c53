/**
 * The self-hosting kit, checked where no image registry is reachable: the Dockerfile, the
 * compose example with its nginx configuration, and the systemd unit are read and held to what
 * alarmd needs (the files it compiles, real ALARMD_* settings with valid values, a stream path
 * that is not buffered, liveness health checks, state on a volume); the unit goes through
 * `systemd-analyze verify` and its offline security review. The image itself is built and the
 * compose example run in the GitHub workflow (.github/workflows/ci.yml, job `container`).
 */
import assert from "node:assert/strict";
import { parse } from "yaml";
import { COMPILE_FLAGS, YOUNG_GENERATION_FLAG } from "../../scripts/compile.ts";
import { CONFIG_KEYS, envName, loadConfig } from "../../src/config.ts";
import { openApiDocument } from "../../src/http/openapi.ts";
import { BODY_LIMITS } from "../../src/http/publisher_routes.ts";
import { TEST_SECRET } from "../helpers/test_server.ts";

const ROOT = new URL("../../", import.meta.url);
const read = (path: string) => Deno.readTextFile(new URL(path, ROOT));
const KNOWN_ENV = new Set(CONFIG_KEYS.map(envName));

/** Fails unless every name is a real setting and the values load (secrets filled in). */
function assertSettings(env: Record<string, string>, where: string) {
  for (const name of Object.keys(env)) {
    if (name.startsWith("ALARMD_")) {
      assert.ok(KNOWN_ENV.has(name), `${where}: ${name} is no setting`);
    }
  }
  // A `${VAR:?message}` reference is filled in by compose from the operator's environment.
  const filled = Object.fromEntries(
    Object.entries(env).map(([k, v]) => [k, /^\$\{\w+:\?.*\}$/.test(v) ? TEST_SECRET : v]),
  );
  assert.doesNotThrow(() => loadConfig(filled, {}), `${where}: settings do not load`);
}

/** "512M", "1G", "800" (bytes) → bytes; systemd and compose both use 1024 steps. */
function bytes(text: string): number {
  const match = /^(\d+)\s*([KMGT]?)i?B?$/i.exec(String(text).trim());
  assert.ok(match, `not a size: ${text}`);
  return Number(match[1]) * 1024 ** " KMGT".indexOf(match[2].toUpperCase() || " ");
}

/** The path of the event stream, from the API's own description. */
function streamPath(): string {
  const paths = Object.entries(openApiDocument("test").paths as Record<string, unknown>);
  const streams = paths.filter(([, ops]) => JSON.stringify(ops).includes("text/event-stream"));
  assert.equal(streams.length, 1, "one stream endpoint");
  return streams[0][0];
}

// ---------------------------------------------------------------------------------------------
// Dockerfile

interface Instruction {
  readonly stage: number;
  readonly keyword: string;
  readonly args: string;
}

/** The Dockerfile's instructions (continuations joined, comments dropped), with their stage. */
function dockerInstructions(text: string): Instruction[] {
  const joined = text.split("\n").filter((l) => !/^\s*#/.test(l)).join("\n")
    .replace(/\\\n/g, " ");
  const found: Instruction[] = [];
  let stage = -1;
  for (const line of joined.split("\n")) {
    const match = /^\s*([A-Za-z]+)\s+(.*?)\s*$/.exec(line);
    if (!match) continue;
    const keyword = match[1].toUpperCase();
    if (keyword === "FROM") stage++;
    found.push({ stage, keyword, args: match[2].replace(/\s+/g, " ") });
  }
  return found;
}

const dockerfile = dockerInstructions(await read("Dockerfile"));
const lastStage = Math.max(...dockerfile.map((i) => i.stage));
const inStage = (stage: number, keyword: string) =>
  dockerfile.filter((i) => i.stage === stage && i.keyword === keyword);
/** COPY sources of the build stage (not --from another stage), as repository paths. */
const copied = inStage(0, "COPY").flatMap((i) => {
  const parts = i.args.split(" ").filter((p) => !p.startsWith("--"));
  return parts.slice(0, -1);
});

Deno.test("Dockerfile: a build stage that compiles with deno task compile, then a minimal runtime", async () => {
  assert.ok(lastStage >= 1, "multi-stage");
  const [build] = inStage(0, "FROM");
  assert.match(build.args, /^denoland\/deno:\$\{DENO_VERSION\} AS build$/i);
  assert.ok(inStage(0, "RUN").some((i) => /deno task compile\b/.test(i.args)), "deno task compile");
  const [runtime] = inStage(lastStage, "FROM");
  assert.doesNotMatch(runtime.args, /deno/, "the runtime image carries no Deno, only alarmd");
  assert.match(runtime.args, /distroless|scratch|slim|alpine/, runtime.args);

  // The Deno that builds the image is the one the tests and the release binaries use.
  const arg = dockerfile.find((i) => i.keyword === "ARG" && i.args.startsWith("DENO_VERSION="));
  const installed = /^DENO_VERSION="([^"]+)"/m.exec(await read("scripts/install_deps.sh"))![1];
  assert.equal(arg?.args, `DENO_VERSION=${installed}`);
});

Deno.test("the binary and `deno task start` run with the same V8 heap flags", async () => {
  const start: string = JSON.parse(await read("deno.json")).tasks.start;
  const v8Flags = (args: string[]) => args.filter((a) => a.startsWith("--v8-flags"));
  assert.deepEqual(v8Flags(start.split(" ")), [YOUNG_GENERATION_FLAG]);
  assert.deepEqual(v8Flags(COMPILE_FLAGS), [YOUNG_GENERATION_FLAG]);
});

Deno.test("Dockerfile: the build stage copies every file alarmd compiles from, and .dockerignore lets them in", async () => {
  const covered = (path: string) =>
    copied.some((source) => source === path || (source.endsWith("/") && path.startsWith(source)));
  for (const path of ["deno.json", "deno.lock", "main.ts", "scripts/compile.ts"]) {
    assert.ok(covered(path), `${path} is not copied`);
  }
  COMPILE_FLAGS.forEach((flag, i) => {
    if (flag === "--include") assert.ok(covered(COMPILE_FLAGS[i + 1]), COMPILE_FLAGS[i + 1]);
  });
  // Every local module main.ts reaches, as `deno compile` will.
  const { stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "main.ts"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "null",
  }).output();
  const modules: { specifier: string }[] = JSON.parse(new TextDecoder().decode(stdout)).modules;
  const local = modules.map((m) => m.specifier).filter((s) => s.startsWith(ROOT.href));
  assert.ok(local.length > 20, "the module graph was read");
  for (const specifier of local) {
    const path = specifier.slice(ROOT.href.length);
    assert.ok(covered(path), `${path} is imported by main.ts but not copied into the build`);
  }

  const ignore = (await read(".dockerignore")).split("\n").map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  assert.equal(ignore[0], "*", ".dockerignore is an allowlist");
  for (const source of copied) {
    assert.ok(ignore.includes(`!${source}`), `.dockerignore keeps ${source} out of the build`);
  }
});

Deno.test("Dockerfile: non-root, the KV file on a volume, a liveness HEALTHCHECK through alarmd health", () => {
  const user = inStage(lastStage, "USER").at(-1)?.args ?? "root";
  assert.doesNotMatch(user, /^(root|0)(:|$)/, `runs as ${user}`);

  const env: Record<string, string> = {};
  for (const i of inStage(lastStage, "ENV")) {
    for (const m of i.args.matchAll(/(\w+)=(\S+)/g)) env[m[1]] = m[2];
  }
  assertSettings({ ...env, ALARMD_JWT_SECRET: TEST_SECRET }, "Dockerfile ENV");
  const kvDir = env.ALARMD_KV_PATH?.replace(/\/[^/]+$/, "");
  assert.ok(kvDir, "ALARMD_KV_PATH is set");
  const volumes = inStage(lastStage, "VOLUME").map((i) => i.args).join(" ");
  assert.ok(volumes.includes(`"${kvDir}"`) || volumes.split(" ").includes(kvDir), volumes);
  // The volume's mount point belongs to the runtime user, or the KV file cannot be created.
  const owned = inStage(lastStage, "COPY").find((i) => i.args.endsWith(` ${kvDir}`));
  assert.ok(owned?.args.includes(`--chown=${user}`), `${kvDir} is not owned by ${user}`);

  const [health] = inStage(lastStage, "HEALTHCHECK");
  const command = JSON.parse(/CMD (\[.*\])$/.exec(health.args)![1]) as string[];
  const [entrypoint] = JSON.parse(inStage(lastStage, "ENTRYPOINT")[0].args) as string[];
  assert.deepEqual(command, [entrypoint, "health"], "liveness: never --ready");
  assert.ok(
    inStage(lastStage, "COPY").some((i) =>
      i.args.startsWith("--from=build") && i.args.endsWith(` ${entrypoint}`)
    ),
    `${entrypoint} is the compiled binary`,
  );
  const timeout = /--timeout=(\d+)s/.exec(health.args)?.[1];
  assert.ok(Number(timeout) > 5, "docker's timeout is above alarmd health's own 5 s");
});

// ---------------------------------------------------------------------------------------------
// compose.yaml and the proxy's configuration

interface Service {
  build?: unknown;
  image?: string;
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
  deploy?: { resources?: { limits?: { memory?: string } } };
}

const compose = parse(await read("compose.yaml")) as {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
};
const services = Object.entries(compose.services);
/** The services built from this repository's Dockerfile. */
const alarmds = services.filter(([, s]) => s.build === ".");
const redis = services.filter(([, s]) => /^redis:/.test(s.image ?? ""));
const proxies = services.filter(([, s]) => /^(nginx|caddy):/.test(s.image ?? ""));

Deno.test("compose.yaml: Redis, two alarmd instances and a proxy, each with a health check", () => {
  assert.ok(alarmds.length >= 2, "two alarmd instances");
  assert.equal(redis.length, 1, "Redis");
  assert.equal(proxies.length, 1, "a proxy");
  assert.equal(services.length, alarmds.length + 2);
  for (const [name, service] of services) {
    assert.ok(service.healthcheck?.test?.length, `${name} has no health check`);
  }
  for (const [name, service] of alarmds) {
    assert.deepEqual(service.healthcheck!.test, ["CMD", "/usr/local/bin/alarmd", "health"], name);
    assert.equal(service.depends_on?.[redis[0][0]]?.condition, "service_healthy", name);
    assert.equal(service.ports, undefined, `${name}: only the proxy is published`);
  }
  const [proxyName, proxy] = proxies[0];
  for (const [name] of alarmds) {
    assert.equal(proxy.depends_on?.[name]?.condition, "service_healthy", `${proxyName} → ${name}`);
  }
  assert.ok(proxy.ports?.length, "the proxy is published");
});

Deno.test("compose.yaml: real settings with valid values, Redis by service name, one KV volume, memory below the limit", () => {
  const sources = new Set<string>();
  for (const [name, service] of alarmds) {
    const env = service.environment ?? {};
    assertSettings(env, `compose.yaml ${name}`);
    assert.match(env.ALARMD_JWT_SECRET, /^\$\{ALARMD_JWT_SECRET:\?.+\}$/, "no secret in the file");
    assert.equal(new URL(env.ALARMD_REDIS_URL).hostname, redis[0][0]);
    const kvDir = env.ALARMD_KV_PATH.replace(/\/[^/]+$/, "");
    const mount = service.volumes?.find((v) => v.split(":")[1] === kvDir);
    assert.ok(mount, `${name}: no volume at ${kvDir}`);
    const source = mount.split(":")[0];
    assert.ok(compose.volumes && source in compose.volumes, `${source} is a named volume`);
    sources.add(source);
    const limit = bytes(service.deploy!.resources!.limits!.memory!);
    const cap = Number(env.ALARMD_MAX_MEMORY_MB) * 1024 * 1024;
    assert.ok(cap > 0 && cap < limit * 0.9, `${name}: ALARMD_MAX_MEMORY_MB below the limit`);
  }
  assert.equal(sources.size, 1, "every instance opens the same KV file");
});

/** A directive of nginx's configuration, with its block when it has one. */
interface Directive {
  readonly name: string;
  readonly args: string[];
  readonly block?: Directive[];
}

function parseNginx(text: string): Directive[] {
  const tokens = [...text.matchAll(/"[^"]*"|'[^']*'|#[^\n]*|[{};]|[^\s{};"'#]+/g)]
    .map((m) => m[0]).filter((t) => !t.startsWith("#"));
  let at = 0;
  const block = (): Directive[] => {
    const directives: Directive[] = [];
    while (at < tokens.length && tokens[at] !== "}") {
      const words: string[] = [];
      while (!["{", ";"].includes(tokens[at])) {
        assert.ok(at < tokens.length, "unterminated directive");
        words.push(tokens[at++]);
      }
      if (tokens[at++] === "{") {
        directives.push({ name: words[0], args: words.slice(1), block: block() });
        assert.equal(tokens[at++], "}");
      } else directives.push({ name: words[0], args: words.slice(1) });
    }
    return directives;
  };
  const top = block();
  assert.equal(at, tokens.length, "unbalanced braces");
  return top;
}

/** "1h", "90s", "60" (seconds) → seconds. */
function seconds(text: string): number {
  const match = /^(\d+)(ms|s|m|h|d)?$/.exec(text);
  assert.ok(match, `not a duration: ${text}`);
  const unit = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 }[match[2] ?? "s"]!;
  return Number(match[1]) * unit;
}

Deno.test("the proxy's nginx.conf: the stream path is not buffered and outlives the heartbeat; the upstreams are the compose services", async () => {
  const [, proxy] = proxies[0];
  const mount = proxy.volumes!.find((v) => v.startsWith("./"))!;
  const file = mount.split(":")[0].slice(2);
  const config = parseNginx(await read(file));

  const upstream = config.find((d) => d.name === "upstream")!;
  const servers = upstream.block!.filter((d) => d.name === "server").map((d) => d.args[0]);
  assert.deepEqual(servers.sort(), alarmds.map(([name]) => `${name}:8080`).sort());

  const server = config.find((d) => d.name === "server")!.block!;
  const locations = server.filter((d) => d.name === "location");
  const path = streamPath();
  const stream = locations.find((l) => l.args.at(-1) === path);
  assert.ok(stream, `no location for ${path}`);
  const directive = (d: Directive[], name: string) => d.find((x) => x.name === name)?.args;
  assert.deepEqual(directive(stream.block!, "proxy_buffering"), ["off"]);
  assert.deepEqual(directive(stream.block!, "proxy_http_version"), ["1.1"]);
  assert.deepEqual(directive(stream.block!, "proxy_pass"), [`http://${upstream.args[0]}`]);
  const heartbeat = loadConfig({}, {}).heartbeatMs / 1000;
  const readTimeout = seconds(directive(stream.block!, "proxy_read_timeout")![0]);
  assert.ok(readTimeout >= 4 * heartbeat, `proxy_read_timeout ${readTimeout} s`);

  // Everything else, batches of 500 alarms included, reaches alarmd.
  const rest = locations.find((l) => l.args.at(-1) === "/")!;
  // alarmd believes the headers of every private address: the edge proxy must write the client's
  // address itself, never append to one a client sent.
  for (const location of [stream, rest]) {
    const headers = location.block!.filter((d) => d.name === "proxy_set_header");
    const forwarded = headers.find((d) => d.args[0].toLowerCase() === "x-forwarded-for");
    assert.deepEqual(forwarded?.args, ["X-Forwarded-For", "$remote_addr"]);
  }
  assert.deepEqual(directive(rest.block!, "proxy_pass"), [`http://${upstream.args[0]}`]);
  const bodyLimit = bytes(directive(rest.block!, "client_max_body_size")![0]);
  assert.ok(bodyLimit >= BODY_LIMITS.batch, `client_max_body_size ${bodyLimit}`);
});

Deno.test("the nginx parser reads blocks, quoted strings and comments", () => {
  assert.deepEqual(
    parseNginx('a 1; # note\nb { c "x y"; d {} }'),
    [
      { name: "a", args: ["1"] },
      {
        name: "b",
        args: [],
        block: [{ name: "c", args: ['"x y"'] }, { name: "d", args: [], block: [] }],
      },
    ],
  );
  assert.throws(() => parseNginx("a { b;"));
});

// ---------------------------------------------------------------------------------------------
// The systemd unit

const UNIT = "deploy/alarmd.service";

/** The unit's settings by section; repeated keys keep every value. */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#") || line.startsWith(";")) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section) {
      current = new Map();
      sections.set(section[1], current);
      continue;
    }
    const eq = line.indexOf("=");
    assert.ok(current && eq > 0, `not a setting: ${line}`);
    const key = line.slice(0, eq);
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1)]);
  }
  return sections;
}

Deno.test("the systemd unit: dynamic user, state directory for the KV file, high open-file limit, restart on failure, memory cap below MemoryMax", async () => {
  const service = parseUnit(await read(UNIT)).get("Service")!;
  const one = (key: string) => {
    const values = service.get(key);
    assert.equal(values?.length, 1, `${key} once`);
    return values[0];
  };
  assert.equal(one("DynamicUser"), "yes");
  assert.equal(one("Restart"), "on-failure");
  assert.ok(Number(one("LimitNOFILE")) >= 65_536, "LimitNOFILE");
  assert.match(one("ExecStart"), /^\/\S+\/alarmd serve$/);

  const env: Record<string, string> = {};
  for (const assignment of service.get("Environment") ?? []) {
    const [, name, value] = /^"?(\w+)=(.*?)"?$/.exec(assignment)!;
    env[name] = value;
  }
  assertSettings({ ...env, ALARMD_JWT_SECRET: TEST_SECRET }, UNIT);
  assert.equal(env.ALARMD_JWT_SECRET, undefined, "the secret lives in the EnvironmentFile");
  assert.ok(service.get("EnvironmentFile")?.length, "an EnvironmentFile for the secret");
  const stateDir = `/var/lib/${one("StateDirectory")}/`;
  assert.ok(env.ALARMD_KV_PATH.startsWith(stateDir), `the KV file is under ${stateDir}`);

  const cap = Number(env.ALARMD_MAX_MEMORY_MB) * 1024 * 1024;
  const max = bytes(one("MemoryMax"));
  assert.ok(cap > 0 && cap <= max * 0.85, "ALARMD_MAX_MEMORY_MB well below MemoryMax");
  // alarmd exits within 10 s of SIGTERM; systemd must not kill it before.
  assert.ok(seconds(one("TimeoutStopSec")) > 10);
  assert.equal(service.get("KillSignal")?.[0] ?? "SIGTERM", "SIGTERM");
  // V8 compiles code at run time: this setting would stop it.
  assert.equal(service.get("MemoryDenyWriteExecute"), undefined);
});

/** systemd-analyze, or why it cannot run here. */
const analyzer = await (async (): Promise<string | { skip: string }> => {
  try {
    const { code } = await new Deno.Command("systemd-analyze", {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    }).output();
    return code === 0 ? "systemd-analyze" : { skip: `systemd-analyze --version exited ${code}` };
  } catch {
    const reason =
      "systemd-analyze is not installed (bash scripts/install_deps.sh installs systemd)";
    if (Deno.env.get("CI") === "true") throw new Error(`CI needs systemd-analyze: ${reason}`);
    return { skip: reason };
  }
})();
if (typeof analyzer !== "string") console.log(`systemd unit checks skipped: ${analyzer.skip}`);

/** The unit, copied to a temp directory with ExecStart pointing at an executable stand-in. */
async function unitCopy(dir: string): Promise<string> {
  const stub = `${dir}/alarmd`;
  await Deno.writeTextFile(stub, "#!/bin/sh\n");
  await Deno.chmod(stub, 0o755);
  const text = (await read(UNIT)).replace(/^ExecStart=\S+/m, `ExecStart=${stub}`);
  const unit = `${dir}/alarmd.service`;
  await Deno.writeTextFile(unit, text);
  return unit;
}

Deno.test({
  name: "systemd-analyze verify finds nothing wrong with the unit, and its security review says OK",
  ignore: typeof analyzer !== "string",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "alarmd-unit-" });
    try {
      const unit = await unitCopy(dir);
      const run = async (args: string[]) => {
        const { code, stdout, stderr } = await new Deno.Command("systemd-analyze", {
          args,
          env: { SYSTEMD_COLORS: "0", SYSTEMD_PAGER: "cat" },
          stdout: "piped",
          stderr: "piped",
        }).output();
        const decoder = new TextDecoder();
        return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
      };
      // Unknown keys and unparsable values are only warnings (exit 0): any output fails.
      const verify = await run(["verify", "--man=no", "--generators=no", unit]);
      assert.equal(verify.code, 0, verify.stderr);
      assert.equal(verify.stderr + verify.stdout, "");

      const security = await run(["security", "--offline=yes", "--no-pager", unit]);
      const level = /Overall exposure level for alarmd\.service: ([\d.]+) (\w+)/.exec(
        security.stdout + security.stderr,
      );
      assert.ok(level, security.stdout + security.stderr);
      assert.ok(Number(level[1]) <= 2, `exposure ${level[1]} ${level[2]}`);

      // The check itself catches a mistake.
      const broken = (await Deno.readTextFile(unit)).replace("Restart=on-failure", "Restart=often");
      await Deno.writeTextFile(unit, broken);
      const caught = await run(["verify", "--man=no", "--generators=no", unit]);
      assert.match(caught.stderr, /Failed to parse service restart specifier/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
