/**
 * `/openapi.json` passes Redocly's recommended ruleset: no errors, no warnings, nothing ignored.
 * The CLI is pinned (a release may add rules: bump it on purpose and fix the document) and runs
 * in an empty temp directory, so no redocly.yaml or ignore file can weaken the rules.
 */
import assert from "node:assert/strict";
import { openApiDocument } from "../../src/http/openapi.ts";
import { startTestServer } from "../helpers/test_server.ts";
import { liveDocument, runDeno, tempDir } from "./openapi_support.ts";

const REDOCLY_CLI = "npm:@redocly/cli@2.77.0";

interface LintReport {
  totals: { errors: number; warnings: number; ignored: number };
  problems: {
    ruleId: string;
    severity: string;
    message: string;
    location: { source?: { ref?: string }; pointer?: string }[];
  }[];
}

/** One file per run: given several, the JSON format prints one report after another. */
async function lint(dir: string, file: string): Promise<{ code: number; report: LintReport }> {
  const ran = await runDeno(
    ["run", "-A", REDOCLY_CLI, "lint", "--extends=recommended", "--format=json", file],
    { cwd: dir, env: { REDOCLY_TELEMETRY: "off", REDOCLY_SUPPRESS_UPDATE_NOTICE: "true" } },
  );
  let report: LintReport;
  try {
    report = JSON.parse(ran.stdout);
  } catch {
    throw new Error(`redocly printed no JSON report (exit ${ran.code}):\n${ran.stderr}`);
  }
  return { code: ran.code, report };
}

const describe = (report: LintReport) =>
  report.problems
    .map((p) => {
      const at = `${p.location[0]?.source?.ref}${p.location[0]?.pointer}`;
      return `${p.severity} ${p.ruleId} at ${at}: ${p.message}`;
    })
    .join("\n");

Deno.test("openapi.json passes Redocly's recommended ruleset with 0 errors and 0 warnings", async () => {
  await using server = await startTestServer();
  await using dir = await tempDir("alarmd-openapi-lint-");
  const doc = await liveDocument(server);
  await Deno.writeTextFile(`${dir.path}/openapi.json`, JSON.stringify(doc, null, 2));
  // The same document as served with ALARMD_PUBLIC_URL set (an absolute server first).
  const withPublicUrl = openApiDocument(String((doc.info as { version: string }).version), {
    publicUrl: "https://alarms.example.org/",
  });
  await Deno.writeTextFile(`${dir.path}/public.json`, JSON.stringify(withPublicUrl, null, 2));

  // A control: the same document without what the ruleset asks for must be reported, so a
  // linter that ran no rules (or did not run) cannot pass for a clean one.
  const broken = structuredClone(doc) as {
    servers?: unknown;
    info: { license?: unknown };
    paths: Record<string, Record<string, Record<string, unknown>>>;
  };
  delete broken.servers;
  delete broken.info.license;
  const health = broken.paths["/healthz"].get;
  delete health.operationId;
  delete health.security;
  health.responses = { 200: { description: "alive" } };
  await Deno.writeTextFile(`${dir.path}/broken.json`, JSON.stringify(broken, null, 2));

  const [served, publicUrl, control] = await Promise.all([
    lint(dir.path, "openapi.json"),
    lint(dir.path, "public.json"),
    lint(dir.path, "broken.json"),
  ]);

  for (const clean of [served, publicUrl]) {
    assert.deepEqual(
      clean.report.totals,
      { errors: 0, warnings: 0, ignored: 0 },
      describe(clean.report),
    );
    assert.equal(clean.code, 0);
  }

  assert.notEqual(control.code, 0, "the broken control passed the linter");
  assert.deepEqual(
    [...new Set(control.report.problems.map((p) => p.ruleId))].sort(),
    [
      "info-license",
      "no-empty-servers",
      "operation-4xx-response",
      "operation-operationId",
      "security-defined",
    ],
    describe(control.report),
  );
});
