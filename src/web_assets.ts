import type { WebAsset } from "./http/web_routes.ts";

const CONTENT_TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  png: "image/png",
  svg: "image/svg+xml",
};

/**
 * The inbox page and browser client, by path. web/ ships inside the compiled binary
 * (`--include web/`), so it is read through import.meta.url the same way there.
 */
export async function loadWebAssets(): Promise<Map<string, WebAsset>> {
  const dir = new URL("../web/", import.meta.url);
  const assets = new Map<string, WebAsset>();
  for await (const entry of Deno.readDir(dir)) {
    const ext = entry.name.split(".").pop() ?? "";
    if (!entry.isFile || !(ext in CONTENT_TYPES)) continue;
    assets.set(`/${entry.name}`, {
      body: await Deno.readFile(new URL(entry.name, dir)),
      contentType: CONTENT_TYPES[ext],
    });
  }
  return assets;
}
