/**
 * Keeps the layers one-way (main.ts → http/ → domain/ ← storage/, broker/, push/) by reading the
 * real module graph, so a stray import fails the suite instead of waiting for a reviewer.
 */
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);
const SRC = new URL("src/", ROOT).href;

interface ModuleInfo {
  specifier: string;
  dependencies?: {
    specifier: string;
    code?: { specifier: string };
    type?: { specifier: string };
  }[];
}

async function moduleGraph(): Promise<Map<string, string[]>> {
  const { stdout, code } = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "main.ts"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "null",
  }).output();
  assert.equal(code, 0);
  const info = JSON.parse(new TextDecoder().decode(stdout)) as { modules: ModuleInfo[] };
  const graph = new Map<string, string[]>();
  for (const module of info.modules) {
    if (!module.specifier.startsWith(SRC)) continue;
    const deps = (module.dependencies ?? []).map((d) =>
      d.code?.specifier ?? d.type?.specifier ?? d.specifier
    );
    graph.set(module.specifier.slice(SRC.length), deps);
  }
  return graph;
}

const layer = (dep: string) => dep.startsWith(SRC) ? dep.slice(SRC.length).split("/")[0] : dep;

Deno.test("domain/ imports nothing but domain/: no hono, no zod, no adapters", async () => {
  const graph = await moduleGraph();
  const domain = [...graph].filter(([file]) => file.startsWith("domain/"));
  assert.ok(domain.length >= 8, "the graph should contain the domain modules");
  for (const [file, deps] of domain) {
    for (const dep of deps) assert.equal(layer(dep), "domain", `${file} imports ${dep}`);
  }
});

Deno.test("domain/ uses no Deno APIs, so it runs anywhere and tests with fakes", async () => {
  for await (const entry of Deno.readDir(new URL("src/domain/", ROOT))) {
    const text = await Deno.readTextFile(new URL(`src/domain/${entry.name}`, ROOT));
    const code = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
    assert.doesNotMatch(code, /\bDeno\./, `src/domain/${entry.name} uses Deno.*`);
  }
});

Deno.test("http/ never imports storage/, broker/ or push/: adapters are injected", async () => {
  const graph = await moduleGraph();
  for (const [file, deps] of graph) {
    if (!file.startsWith("http/")) continue;
    for (const dep of deps) {
      assert.ok(!["storage", "broker", "push"].includes(layer(dep)), `${file} imports ${dep}`);
    }
  }
});

Deno.test("storage/, broker/ and push/ import only domain/ and their own folder, never hono or zod", async () => {
  const graph = await moduleGraph();
  for (const [file, deps] of graph) {
    const own = file.split("/")[0];
    if (!["storage", "broker", "push"].includes(own)) continue;
    for (const dep of deps) {
      const l = layer(dep);
      assert.ok(l === own || l === "domain" || !dep.startsWith("file:"), `${file} imports ${dep}`);
      assert.doesNotMatch(dep, /hono|zod/, `${file} imports ${dep}`);
    }
  }
});

Deno.test("only main.ts reads Deno.env and Deno.args", async () => {
  const offenders: string[] = [];
  const walk = async (dir: URL) => {
    for await (const entry of Deno.readDir(dir)) {
      const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
      if (entry.isDirectory) await walk(url);
      else if (entry.name.endsWith(".ts")) {
        if (/\bDeno\.(env|args)\b/.test(await Deno.readTextFile(url))) offenders.push(url.href);
      }
    }
  };
  await walk(new URL("src/", ROOT));
  assert.deepEqual(offenders, []);
});

// ---------------------------------------------------------------------------------------------
// Rules read from the source text of every file in src/ (not only what main.ts reaches: the
// worker entry and any file not yet wired in count too).

/** Every .ts file under src/, as a path from the repository root ("src/http/app.ts"), sorted. */
async function sourceFiles(): Promise<string[]> {
  const files: string[] = [];
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(new URL(dir, ROOT))) {
      if (entry.isDirectory) await walk(`${dir}${entry.name}/`);
      else if (entry.name.endsWith(".ts")) files.push(`${dir}${entry.name}`);
    }
  };
  await walk("src/");
  return files.sort();
}

const readSource = (file: string) => Deno.readTextFile(new URL(file, ROOT));

/**
 * The module specifiers a file imports: static imports and re-exports (type-only ones too: a
 * type import is a dependency of the design), side-effect imports, and `import("…")` of a
 * literal. Static imports start a line (as `deno fmt` leaves them), so nothing in a comment or
 * a string looks like one; a dynamic import on a comment line is skipped.
 */
function importSpecifiers(text: string): string[] {
  const found: string[] = [];
  const fromClause = /^[ \t]*(?:import|export)\b[^;'"`]*?\bfrom\s*["']([^"']+)["']/gm;
  const bare = /^[ \t]*import\s*["']([^"']+)["']/gm;
  for (const match of text.matchAll(fromClause)) found.push(match[1]);
  for (const match of text.matchAll(bare)) found.push(match[1]);
  for (const line of text.split("\n")) {
    if (/^\s*(\/\/|\/\*|\*)/.test(line)) continue;
    for (const match of line.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g)) found.push(match[1]);
  }
  return found;
}

/** `specifier` as a path from the repository root when it is relative, else null. */
function resolveRelative(from: string, specifier: string): string | null {
  if (!specifier.startsWith("./") && !specifier.startsWith("../")) return null;
  const url = new URL(specifier, new URL(from, ROOT));
  return url.href.startsWith(ROOT.href) ? url.href.slice(ROOT.href.length) : null;
}

/** src/ file → the src/ files it imports by relative path, from the source text. */
async function importGraph(): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  for (const file of await sourceFiles()) {
    const deps = importSpecifiers(await readSource(file))
      .map((specifier) => resolveRelative(file, specifier))
      .filter((dep): dep is string => dep !== null && dep.startsWith("src/"));
    graph.set(file, [...new Set(deps)]);
  }
  return graph;
}

/**
 * The cycles a depth-first walk of `graph` closes (at least one in every part of the graph that
 * has any), each once, as a path that starts at its smallest file and returns to it:
 * ["a.ts", "b.ts", "a.ts"].
 */
function findCycles(graph: Map<string, readonly string[]>): string[][] {
  const cycles = new Map<string, string[]>();
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (node: string) => {
    state.set(node, "open");
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === "open") {
        const loop = stack.slice(stack.indexOf(next));
        const start = loop.indexOf([...loop].sort()[0]);
        const path = [...loop.slice(start), ...loop.slice(0, start)];
        cycles.set(path.join(" → "), [...path, path[0]]);
      } else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(node, "done");
  };
  for (const node of [...graph.keys()].sort()) if (!state.has(node)) visit(node);
  return [...cycles.values()];
}

Deno.test("the rules below read imports the way they are written", () => {
  const text = [
    'import assert from "node:assert/strict";',
    "import type { A } from './a.ts';",
    "import {",
    "  b,",
    "  type C,",
    '} from "../b.ts";',
    'export { d } from "./d.ts";',
    'export * from "./e.ts";',
    'import "./f.ts";',
    'const g = await import("./g.ts");',
    '// import { h } from "./h.ts";',
    ' * const i = await import("./i.ts");',
    'const from = "./j.ts";',
  ].join("\n");
  assert.deepEqual(importSpecifiers(text), [
    "node:assert/strict",
    "./a.ts",
    "../b.ts",
    "./d.ts",
    "./e.ts",
    "./f.ts",
    "./g.ts",
  ]);
  const graph = new Map([
    ["src/a.ts", ["src/b.ts"]],
    ["src/b.ts", ["src/c.ts", "src/d.ts"]],
    ["src/c.ts", ["src/a.ts"]],
    ["src/d.ts", ["src/d.ts"]],
    ["src/e.ts", ["src/a.ts"]],
  ]);
  assert.deepEqual(findCycles(graph), [
    ["src/a.ts", "src/b.ts", "src/c.ts", "src/a.ts"],
    ["src/d.ts", "src/d.ts"],
  ]);
  assert.deepEqual(findCycles(new Map([["src/a.ts", ["src/b.ts"]], ["src/b.ts", []]])), []);
});

Deno.test("no import cycles among src/ files", async () => {
  const graph = await importGraph();
  assert.ok(graph.size >= 40, `only ${graph.size} files in src/`);
  assert.ok(graph.get("src/server.ts")?.includes("src/config.ts"), "the graph misses imports");
  const cycles = findCycles(graph).map((cycle) => cycle.join(" → "));
  assert.deepEqual(cycles, [], `import cycles:\n${cycles.join("\n")}`);
});

/**
 * The files that may import `node:*`: the transport built on `node:http`. Everything else runs
 * on web-standard and Deno APIs (Web Crypto, TextEncoder, Uint8Array, Deno.* in the process
 * code), so that domain, storage, broker and the request pipeline never depend on Node's
 * runtime. Process code (src/worker.ts, src/memory_limit.ts, src/open_file_limit.ts, src/cli/)
 * may, when no Deno API does the job; each such file is added here with its reason. Every entry
 * must still use node:*, so the list does not outlive its reason.
 */
const NODE_IMPORTERS = new Map([
  ["src/http/node_transport.ts", "the node:http server: listener, sockets, request adapter"],
  ["src/http/node_sse_sink.ts", "the FrameSink over a node:http ServerResponse"],
  [
    "src/push/payload_encryption.ts",
    "Web Push encryption: node:crypto's synchronous HKDF and AES-GCM cost a quarter less CPU per " +
    "message than a WebCrypto call per step (bench/push_crypto.ts)",
  ],
  [
    "src/cli/backup.ts",
    "`alarmd backup`: node:sqlite's online backup of the KV file, on a connection of its own, " +
    "is the one way Deno offers to copy it consistently while alarmd writes (Deno.Kv has none)",
  ],
]);

Deno.test("node:* is imported only by the node:http transport and the files listed with it", async () => {
  const users = new Map<string, string[]>();
  for (const file of await sourceFiles()) {
    const node = importSpecifiers(await readSource(file)).filter((s) => s.startsWith("node:"));
    if (node.length > 0) users.set(file, node);
  }
  const outside = [...users].filter(([file]) => !NODE_IMPORTERS.has(file));
  assert.deepEqual(
    outside.map(([file, specifiers]) => `${file}: ${specifiers.join(", ")}`),
    [],
    "node:* outside the transport; use a web-standard or Deno API (Web Crypto, Uint8Array, …)",
  );
  for (const file of NODE_IMPORTERS.keys()) {
    assert.ok(
      users.has(file),
      `${file} is allowed node:* but no longer uses it: drop it from the list`,
    );
  }
});

/**
 * What the command line may import. The CLI parses arguments and the environment into a Config
 * (src/config.ts), logs (src/log.ts), starts the server through its composition root
 * (src/server.ts: startServer, VERSION; `serve --workers` starts src/worker.ts as a Worker by
 * URL, not by import), and mints tokens in its own token.ts. A name that the minting and the
 * verifying side must agree on (the publish scope) belongs in src/domain/, which every layer
 * may import. Routes, auth verification, transports, storage and the broker are the server's
 * internals: the CLI reaching into src/http/ (or storage/, broker/) would tie the command line
 * to how the server is put together.
 */
const CLI_MAY_IMPORT = [
  (dep: string) => dep.startsWith("src/cli/"),
  (dep: string) => dep.startsWith("src/domain/"),
  (dep: string) => ["src/config.ts", "src/log.ts", "src/server.ts"].includes(dep),
];

Deno.test("src/cli/ imports only config, log, server, domain and itself: no src/http/ internals", async () => {
  const graph = await importGraph();
  const cli = [...graph].filter(([file]) => file.startsWith("src/cli/"));
  assert.ok(cli.length >= 3, "the graph should contain the cli modules");
  const offenders = cli.flatMap(([file, deps]) =>
    deps.filter((dep) => !CLI_MAY_IMPORT.some((allowed) => allowed(dep))).map((dep) =>
      `${file} imports ${dep}`
    )
  );
  assert.deepEqual(offenders, []);
});

const MAX_LINES = 300;
const MAX_EXEMPTIONS = 3;

function lineCount(text: string): number {
  return text.split("\n").length - (text.endsWith("\n") ? 1 : 0);
}

/** tests/long_files.json: the only files in src/ allowed over MAX_LINES, each with its reason. */
async function longFileExemptions(): Promise<{ path: string; reason: string }[]> {
  const list = JSON.parse(await Deno.readTextFile(new URL("tests/long_files.json", ROOT)));
  assert.ok(Array.isArray(list), "tests/long_files.json is a JSON array");
  for (const entry of list) {
    assert.deepEqual(Object.keys(entry).sort(), ["path", "reason"], JSON.stringify(entry));
    assert.equal(typeof entry.path, "string", JSON.stringify(entry));
    assert.ok(typeof entry.reason === "string" && entry.reason.trim().length >= 10, entry.path);
  }
  return list;
}

Deno.test(`tests/long_files.json lists at most ${MAX_EXEMPTIONS} src/ files, each really over ${MAX_LINES} lines`, async () => {
  const exemptions = await longFileExemptions();
  assert.ok(exemptions.length <= MAX_EXEMPTIONS, `${exemptions.length} exemptions`);
  const paths = exemptions.map((e) => e.path);
  assert.equal(new Set(paths).size, paths.length, "a file is listed twice");
  for (const { path } of exemptions) {
    assert.match(path, /^src\/.+\.ts$/, path);
    let text: string;
    try {
      text = await readSource(path);
    } catch {
      assert.fail(`${path} is listed in tests/long_files.json but does not exist`);
    }
    const lines = lineCount(text);
    assert.ok(lines > MAX_LINES, `${path} has ${lines} lines: drop it from tests/long_files.json`);
  }
});

Deno.test(`no file in src/ is over ${MAX_LINES} lines unless tests/long_files.json says why`, async () => {
  const exempt = new Set((await longFileExemptions()).map((e) => e.path));
  const long: string[] = [];
  for (const file of await sourceFiles()) {
    const lines = lineCount(await readSource(file));
    if (lines > MAX_LINES && !exempt.has(file)) long.push(`${file}: ${lines} lines`);
  }
  assert.deepEqual(long, [], `split these, or list them with a reason in tests/long_files.json`);
});
