import type { Route } from "./route.ts";

export interface WebAsset {
  readonly body: Uint8Array;
  readonly contentType: string;
}

/** The page may load only its own scripts and styles and talk only to this origin. */
const CSP = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; " +
  "script-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** The web inbox and the browser client, from assets loaded once at start-up. */
export function webRoutes(assets: ReadonlyMap<string, WebAsset>): Route[] {
  return [...assets].map(([path, asset]) => {
    const headers: Record<string, string> = {
      "Content-Type": asset.contentType,
      "Cache-Control": "no-cache",
    };
    if (asset.contentType.startsWith("text/html")) headers["Content-Security-Policy"] = CSP;
    return {
      method: "GET",
      path: path === "/index.html" ? "/" : path.replace(/\.html$/, ""),
      access: "public",
      handle: () => ({ status: 200, headers: { ...headers }, body: asset.body }),
    } satisfies Route;
  });
}
