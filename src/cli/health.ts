/**
 * `alarmd health [--ready] [--url URL]`: asks a running alarmd whether it lives (`/healthz`) or,
 * with `--ready`, whether it should get new clients (`/readyz`). Exit 0 on a 200, else 1 with
 * the reason on stderr. It is what a container health check or a script runs where there is no
 * curl (the release image has no shell and no curl).
 *
 * Container health checks use the liveness form: `/readyz` fails on every instance at once in a
 * shared outage, and an orchestrator that restarts unhealthy containers would restart them all.
 */
import { loadConfig } from "../config.ts";
import { UsageError } from "./args.ts";

/** How long one check waits for the whole answer. */
export const HEALTH_TIMEOUT_MS = 5_000;

export interface HealthResult {
  readonly ok: boolean;
  /** One line: the URL asked and what it answered, or why there was no answer. */
  readonly report: string;
}

/** Addresses a server listens on for every interface: it is asked on loopback. */
const WILDCARD_HOSTS = new Set(["0.0.0.0", "::", "[::]"]);

/**
 * The URL `alarmd health` asks when `--url` is not given: this host at the configured port
 * (ALARMD_PORT, 8080 by default), on 127.0.0.1 unless ALARMD_HOST names one address.
 */
export function defaultHealthUrl(config: { readonly host: string; readonly port: number }): string {
  if (config.port === 0) {
    throw new UsageError("ALARMD_PORT is 0 (any free port), so health needs --url URL");
  }
  const host = WILDCARD_HOSTS.has(config.host) ? "127.0.0.1" : config.host;
  const bracketed = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  return `http://${bracketed}:${config.port}`;
}

/** `base` (an origin, or a path alarmd is served under) joined with the endpoint's path. */
export function healthEndpoint(base: string, ready: boolean): URL {
  if (!URL.canParse(base) || !/^https?:$/.test(new URL(base).protocol)) {
    throw new UsageError(
      `--url must be an http(s) URL such as http://127.0.0.1:8080; got "${base}"`,
    );
  }
  const url = new URL(base);
  if (!url.pathname.endsWith("/")) url.pathname += "/";
  url.search = "";
  url.hash = "";
  return new URL(ready ? "readyz" : "healthz", url);
}

/** Asks `endpoint` once; ok only for a 200 within `timeoutMs`. Never throws. */
export async function checkHealth(
  endpoint: URL,
  options: { readonly timeoutMs?: number } = {},
): Promise<HealthResult> {
  const timeoutMs = options.timeoutMs ?? HEALTH_TIMEOUT_MS;
  const shown = endpoint.href.replace(/\/\/[^@/]*@/, "//***@");
  const signal = AbortSignal.timeout(timeoutMs);
  let status: number;
  let body: string;
  try {
    // A redirect is an answer too (a proxy sending http to https): it is not a 200.
    const res = await fetch(endpoint, { signal, redirect: "manual" });
    status = res.status;
    body = await res.text();
  } catch (error) {
    if (signal.aborted) {
      return { ok: false, report: `${shown}: no answer within ${timeoutMs / 1000} s` };
    }
    return { ok: false, report: `${shown}: cannot connect (${describe(error)})` };
  }
  const summary = summarize(body);
  if (status === 200) return { ok: true, report: `${shown}: 200 ${summary}` };
  return { ok: false, report: `${shown}: answered ${status}${summary ? `: ${summary}` : ""}` };
}

/** The `health` command: reads the URL from `--url` or the configuration, prints one line. */
export async function runHealth(
  io: {
    readonly env: Readonly<Record<string, string | undefined>>;
    readonly stdout: (text: string) => void;
    readonly stderr: (text: string) => void;
  },
  flags: Readonly<Record<string, string>>,
  ready: boolean,
): Promise<number> {
  const { url, ...settings } = flags;
  const base = url ?? defaultHealthUrl(loadConfig(io.env, settings));
  const result = await checkHealth(healthEndpoint(base, ready));
  if (result.ok) io.stdout(`alarmd health: ${result.report}\n`);
  else io.stderr(`alarmd health: ${result.report}\n`);
  return result.ok ? 0 : 1;
}

/** The answer's body on one line: alarmd's error message when it sent one, else the text. */
function summarize(body: string): string {
  let text = body;
  try {
    const json = JSON.parse(body);
    const message = json?.error?.message;
    if (typeof message === "string") text = message;
  } catch {
    // not JSON: shown as it came
  }
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

/** Why the request failed, without the URL that the report names already. */
function describe(error: unknown): string {
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
  const message = cause instanceof Error ? cause.message : String(cause);
  return message.replace(/^error sending request for url \([^)]*\):\s*/, "");
}
