/**
 * The GitHub workflow cannot run here (it needs GitHub's runners and the internet), so its
 * structure is checked here: every workflow file parses; every push to main builds and starts
 * all five release targets, each on a runner of its own OS and architecture; the container and
 * compose example are built and run; the compiled-binary test is made to run; and a tag
 * publishes only after all of that passed. actionlint checks the rest in the workflow itself.
 */
import assert from "node:assert/strict";
import { parse } from "yaml";

const ROOT = new URL("../../", import.meta.url);
const DIR = new URL(".github/workflows/", ROOT);

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
  env?: Record<string, string>;
  if?: string;
  "continue-on-error"?: unknown;
}

interface Job {
  name?: string;
  if?: string;
  needs?: string | string[];
  "runs-on": string;
  permissions?: Record<string, string>;
  strategy?: { "fail-fast"?: boolean; matrix: { include: Record<string, string>[] } };
  steps: Step[];
  "continue-on-error"?: unknown;
}

interface Workflow {
  on: { push?: { branches?: string[]; tags?: string[] }; pull_request?: unknown };
  permissions?: Record<string, string>;
  jobs: Record<string, Job>;
}

const files: string[] = [];
for await (const entry of Deno.readDir(DIR)) {
  if (entry.isFile && /\.ya?ml$/.test(entry.name)) files.push(entry.name);
}
files.sort();
const workflows = new Map<string, Workflow>();
for (const file of files) {
  workflows.set(file, parse(await Deno.readTextFile(new URL(file, DIR))) as Workflow);
}
const ci = workflows.get("ci.yml")!;
const needs = (job: Job) => [job.needs ?? []].flat();
const runs = (job: Job) => job.steps.map((s) => s.run ?? "").join("\n");

/** Each release target and the runner labels of its OS and architecture. */
const TARGET_RUNNERS: Record<string, RegExp> = {
  "x86_64-unknown-linux-gnu": /^ubuntu-(latest|\d\d\.\d\d)$/,
  "aarch64-unknown-linux-gnu": /^ubuntu-\d\d\.\d\d-arm$/,
  "x86_64-apple-darwin": /^macos-(13|\d\d-intel)$/,
  "aarch64-apple-darwin": /^macos-(latest|1[4-9]|2\d)$/,
  "x86_64-pc-windows-msvc": /^windows-(latest|20\d\d)$/,
};

Deno.test("every workflow file parses, grants read-only permissions at the top, and pins every action", () => {
  assert.ok(files.includes("ci.yml"), "ci.yml");
  for (const [file, workflow] of workflows) {
    assert.ok(workflow.jobs && Object.keys(workflow.jobs).length > 0, `${file}: no jobs`);
    assert.deepEqual(workflow.permissions, { contents: "read" }, `${file}: permissions`);
    for (const [id, job] of Object.entries(workflow.jobs)) {
      assert.ok(job["runs-on"], `${file} ${id}: runs-on`);
      for (const step of job.steps) {
        if (!step.uses) continue;
        assert.match(
          step.uses,
          /^([\w.-]+\/[\w.-]+@v\d+(\.\d+)*|docker:\/\/[\w./-]+:\d+\.\d+\.\d+)$/,
          `${file} ${id}: ${step.uses} is not pinned to a version`,
        );
      }
    }
  }
});

Deno.test("ci.yml runs on every push to main, on tags and on pull requests", () => {
  assert.deepEqual(ci.on.push?.branches, ["main"]);
  assert.deepEqual(ci.on.push?.tags, ["v*"]);
  assert.ok("pull_request" in ci.on);
  for (const id of ["workflows", "test", "binaries", "container", "release"]) {
    assert.ok(ci.jobs[id], `job ${id}`);
  }
  // Only the release waits for a tag: the others run on every push.
  for (const [id, job] of Object.entries(ci.jobs)) {
    if (id !== "release") assert.equal(job.if, undefined, `${id} runs on every push`);
  }
});

Deno.test("the test job runs .ci/run and requires the compiled-binary test to run", () => {
  const test = ci.jobs.test;
  const step = test.steps.find((s) => s.run === "bash .ci/run");
  assert.ok(step, "bash .ci/run");
  assert.equal(step.env?.REQUIRE_COMPILED_BINARY, "1");
});

Deno.test("the binaries job builds all five targets, each on a runner of its own OS and architecture, and starts each", () => {
  const job = ci.jobs.binaries;
  assert.equal(job["runs-on"], "${{ matrix.runner }}");
  assert.equal(job.strategy?.["fail-fast"], false, "one broken target does not hide the others");
  const include = job.strategy!.matrix.include;
  assert.deepEqual(include.map((e) => e.target).sort(), Object.keys(TARGET_RUNNERS).sort());
  for (const { target, runner } of include) {
    assert.match(runner, TARGET_RUNNERS[target], `${target} on ${runner}`);
  }
  const script = runs(job);
  assert.match(script, /deno task compile --target "\$\{\{ matrix\.target \}\}"/);
  assert.match(
    script,
    /deno run -A scripts\/smoke_binary\.ts --target "\$\{\{ matrix\.target \}\}" "dist\//,
    "every executable is started on its runner",
  );
  // A tag that is not deno.json's version fails here, before anything is released.
  assert.match(script, /does not match deno\.json's version/);
  assert.ok(job.steps.some((s) => s.uses?.startsWith("actions/upload-artifact@")));
});

Deno.test("the container job builds the image, runs it and the compose example, and smoke-tests through the proxy", () => {
  const script = runs(ci.jobs.container);
  assert.match(script, /docker build -t alarmd:ci \./);
  assert.match(script, /docker compose up -d --build --wait/);
  assert.match(
    script,
    /scripts\/smoke_binary\.ts --url http:\/\/127\.0\.0\.1:8080 --streams [2-9]/,
  );
  assert.match(script, /docker compose down/);
});

Deno.test("the workflow lints its own files with a pinned actionlint", () => {
  const uses = ci.jobs.workflows.steps.map((s) => s.uses ?? "");
  assert.ok(uses.some((u) => /^docker:\/\/rhysd\/actionlint:\d+\.\d+\.\d+$/.test(u)), uses.join());
});

Deno.test("a tag releases only after every other job passed, with SHA256SUMS, and nothing can pass by ignoring a failure", () => {
  const release = ci.jobs.release;
  assert.equal(release.if, "startsWith(github.ref, 'refs/tags/v')");
  assert.deepEqual(
    needs(release).sort(),
    Object.keys(ci.jobs).filter((id) => id !== "release").sort(),
  );
  assert.deepEqual(release.permissions, { contents: "write" });
  assert.match(runs(release), /sha256sum .* > SHA256SUMS/);
  const publish = release.steps.find((s) => s.uses?.startsWith("softprops/action-gh-release@"));
  assert.match(String(publish?.with?.files), /dist\/SHA256SUMS/);
  assert.equal(publish?.with?.fail_on_unmatched_files, true);
  for (const [id, job] of Object.entries(ci.jobs)) {
    assert.equal(job["continue-on-error"], undefined, id);
    for (const step of job.steps) assert.equal(step["continue-on-error"], undefined, `${id}`);
    if (id !== "release") assert.equal(job.permissions, undefined, `${id} only reads`);
  }
});
