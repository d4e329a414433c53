/**
 * The README is the front door and docs/ holds the rest. These tests keep them honest: the code
 * map names files that exist, no link leads out of the repository, and the README stays short.
 *
 * The link rule: a link (inline, reference, autolink, bare URL that GitHub would link, or an HTML
 * `href`/`src`) is either relative and resolves to a file or folder inside the repository (with
 * its `#anchor`, when it names a heading of a Markdown file), or an absolute http(s) URL to this
 * machine (`127.0.0.1`, `localhost`, `[::1]`), as in examples. Anything else (public URLs, other
 * schemes, root-absolute paths, `../` out of the repository) fails. Code blocks and code spans
 * are not links.
 */
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);
const README_MAX_LINES = 330;

async function exists(url: URL): Promise<boolean> {
  try {
    await Deno.stat(url);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** README.md and every Markdown file under docs/, as repository-relative paths. */
async function markdownFiles(): Promise<string[]> {
  const files = ["README.md"];
  for await (const entry of Deno.readDir(new URL("docs/", ROOT))) {
    if (entry.isFile && entry.name.endsWith(".md")) files.push(`docs/${entry.name}`);
  }
  return files.sort();
}

/** A Markdown file's lines, with the lines of fenced code blocks blanked. */
function outsideFences(markdown: string): string[] {
  const lines: string[] = [];
  let fence: string | null = null;
  for (const line of markdown.split("\n")) {
    const marker = /^\s{0,3}(`{3,}|~{3,})/.exec(line)?.[1];
    if (fence !== null) {
      if (marker && marker[0] === fence[0] && marker.length >= fence.length) fence = null;
      lines.push("");
    } else if (marker) {
      fence = marker;
      lines.push("");
    } else {
      lines.push(line);
    }
  }
  return lines;
}

/** The text outside fenced code blocks, with code spans blanked, line by line. */
function prose(markdown: string): string[] {
  return outsideFences(markdown).map((line) =>
    line.replace(/(`+)(?:(?!\1)[\s\S])*?\1/g, (span) => " ".repeat(span.length))
  );
}

interface Link {
  readonly file: string;
  readonly line: number;
  readonly target: string;
}

/** Every link target in a Markdown file's prose. */
function linksOf(file: string, markdown: string): Link[] {
  const links: Link[] = [];
  prose(markdown).forEach((text, i) => {
    const add = (target: string) => links.push({ file, line: i + 1, target: target.trim() });
    // Inline links and images: [text](target "title") or [text](<target>).
    for (const m of text.matchAll(/\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+["'(][^)]*)?\)/g)) {
      add(m[1].replace(/^<|>$/g, ""));
    }
    // Reference definitions: [id]: target
    const definition = /^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)/.exec(text);
    if (definition) add(definition[1].replace(/^<|>$/g, ""));
    // Autolinks: <scheme:...>
    for (const m of text.matchAll(/<([a-z][a-z0-9+.-]*:[^\s<>]+)>/gi)) add(m[1]);
    // HTML attributes.
    for (const m of text.matchAll(/\b(?:href|src)\s*=\s*["']([^"']+)["']/gi)) add(m[1]);
    // Bare URLs, which GitHub links too (those inside the link forms above are seen twice).
    for (const m of text.matchAll(/(?<![(<"'])\b(?:https?:\/\/|www\.)[^\s<>)\]]+/gi)) {
      add(m[0].replace(/[.,;:!?*_~]+$/, ""));
    }
  });
  return links;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .replace(/`/g, "")
    .replace(/\[([^\]]*)\]\([^)]*\)/g, "$1")
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

/** The anchors a Markdown file's headings get, with GitHub's -1, -2 for repeats. */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of outsideFences(markdown)) {
    const heading = /^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!heading) continue;
    const base = slug(heading[1]);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

const LOCAL_URL = /^https?:\/\/(?:127\.0\.0\.1|localhost|\[::1\])(?::\d+)?(?:[/?#]|$)/i;

/** Why a link is not allowed, or null when it is. */
async function problemWith(link: Link): Promise<string | null> {
  const { target } = link;
  if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith("//") || /^www\./i.test(target)) {
    return LOCAL_URL.test(target) ? null : "points outside the repository (absolute URL)";
  }
  if (target.startsWith("/")) return "is root-absolute; use a path relative to the file";
  const hash = target.indexOf("#");
  const path = decodeURIComponent(hash === -1 ? target : target.slice(0, hash)).replace(
    /\?.*$/,
    "",
  );
  const anchor = hash === -1 ? "" : target.slice(hash + 1);
  const url = path === "" ? new URL(link.file, ROOT) : new URL(path, new URL(link.file, ROOT));
  if (!url.href.startsWith(ROOT.href)) return "leaves the repository";
  if (!(await exists(url))) {
    return `names ${url.href.slice(ROOT.href.length)}, which does not exist`;
  }
  if (anchor !== "" && url.pathname.endsWith(".md")) {
    const anchors = anchorsOf(await Deno.readTextFile(url));
    if (!anchors.has(anchor.toLowerCase())) return `names a heading #${anchor} that does not exist`;
  }
  return null;
}

Deno.test("no Markdown link in README.md or docs/ points outside the repository or to nothing", async () => {
  const problems: string[] = [];
  let checked = 0;
  for (const file of await markdownFiles()) {
    for (const link of linksOf(file, await Deno.readTextFile(new URL(file, ROOT)))) {
      checked++;
      const problem = await problemWith(link);
      if (problem) problems.push(`${link.file}:${link.line}: ${link.target} ${problem}`);
    }
  }
  assert.ok(checked > 0, "no links found: the link parser is broken");
  assert.deepEqual(problems, []);
});

Deno.test("the link rule itself: what passes and what fails", async () => {
  const at = (target: string): Link => ({ file: "docs/api.md", line: 1, target });
  for (const ok of ["operations.md", "../README.md", "api.md#errors", "http://127.0.0.1:8080/x"]) {
    assert.equal(await problemWith(at(ok)), null, ok);
  }
  for (
    const bad of [
      "../../shared/api.md",
      "https://deno.com",
      "http://example.com/",
      "mailto:x@example.com",
      "/docs/api.md",
      "missing.md",
      "api.md#no-such-heading",
      "www.example.com",
    ]
  ) {
    assert.notEqual(await problemWith(at(bad)), null, bad);
  }
  const found = linksOf(
    "x.md",
    "[a](a.md) ![b](<b c.png>) <https://x.example> see https://y.example.\n" +
      "`[c](c.md)` and `https://z.example`\n```\n[d](d.md)\n```\n[e]: e.md",
  ).map((l) => l.target);
  assert.deepEqual(found.sort(), [
    "a.md",
    "b c.png",
    "e.md",
    "https://x.example",
    "https://y.example",
  ]);
  assert.equal(
    slug("Transport: why `node:http` is the default"),
    "transport-why-nodehttp-is-the-default",
  );
  assert.equal(slug("The 5,000/s tail is bimodal"), "the-5000s-tail-is-bimodal");
});

Deno.test(`README.md is at most ${README_MAX_LINES} lines`, async () => {
  const text = await Deno.readTextFile(new URL("README.md", ROOT));
  const lines = text.endsWith("\n") ? text.split("\n").length - 1 : text.split("\n").length;
  assert.ok(lines <= README_MAX_LINES, `README.md has ${lines} lines`);
});

/** The backticked repository paths in the README's "Code map" section. */
const codeMapPaths = await (async () => {
  const readme = await Deno.readTextFile(new URL("README.md", ROOT));
  const section = /^## Code map\s*$([\s\S]*?)(?=^## |(?![\s\S]))/m.exec(readme)?.[1] ?? "";
  return [...new Set([...section.matchAll(/`(src\/[^`\s]+)`/g)].map((m) => m[1]))];
})();

Deno.test("the README has a code map naming files under src/", () => {
  assert.ok(codeMapPaths.length > 0, 'README.md needs a "## Code map" section naming src/ files');
});

for (const path of codeMapPaths) {
  Deno.test(`the README's code map names ${path}, which exists`, async () => {
    assert.ok(await exists(new URL(path, ROOT)), `${path} does not exist`);
  });
}
