import { Hono } from "hono";

export interface WebAsset {
  readonly body: Uint8Array;
  readonly contentType: string;
}

/** The page may load only its own scripts and styles and talk only to this origin. */
const CSP = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; " +
  "script-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** The web inbox and the browser client, from assets loaded once at start-up. */
export function webRoutes(assets: ReadonlyMap<string, WebAsset>) {
  const app = new Hono();
  for (const [path, asset] of assets) {
    const route = path === "/index.html" ? "/" : path.replace(/\.html$/, "");
    app.get(route, (c) => {
      c.header("Content-Type", asset.contentType);
      c.header("Cache-Control", "no-cache");
      c.header("X-Content-Type-Options", "nosniff");
      if (asset.contentType.startsWith("text/html")) {
        c.header("Content-Security-Policy", CSP);
        c.header("Referrer-Policy", "no-referrer");
      }
      return c.body(asset.body.slice());
    });
  }
  return app;
}
