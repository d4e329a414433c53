/**
 * Keeps the layers one-way (main.ts → http/ → domain/ ← storage/, broker/) by reading the real
 * module graph, so a stray import fails the suite instead of waiting for a reviewer.
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

Deno.test("http/ never imports storage/ or broker/: adapters are injected", async () => {
  const graph = await moduleGraph();
  for (const [file, deps] of graph) {
    if (!file.startsWith("http/")) continue;
    for (const dep of deps) {
      assert.ok(!["storage", "broker"].includes(layer(dep)), `${file} imports ${dep}`);
    }
  }
});

Deno.test("storage/ and broker/ import only domain/ and their own folder, never hono or zod", async () => {
  const graph = await moduleGraph();
  for (const [file, deps] of graph) {
    const own = file.split("/")[0];
    if (own !== "storage" && own !== "broker") continue;
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
