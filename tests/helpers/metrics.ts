/** Reading GET /metrics (Prometheus text exposition) in tests. */
import assert from "node:assert/strict";

/**
 * The value of one sample line of the exposition text, e.g. `alarmd_connections 3` or, with its
 * labels, `alarmd_connections_closed_total{reason="client_closed"} 1`.
 */
export function sample(text: string, series: string): number {
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  assert.ok(line, `no sample ${series} in:\n${text}`);
  return Number(line.slice(series.length + 1));
}

/** One sample scraped from the server at `url` (its base URL). */
export async function metric(url: string, series: string): Promise<number> {
  return sample(await (await fetch(url + "/metrics")).text(), series);
}
