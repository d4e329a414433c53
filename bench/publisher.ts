/**
 * A publisher process: creates benchmark alarms through the public API, as an app backend
 * would, each carrying `data.t` (send time, ms since the epoch with sub-ms precision) so the
 * SSE clients can measure publish→deliver latency. One JSON command in, one JSON line out:
 *   {"op":"targeted","url":"http://…","token":"…","rate":5000,"seconds":10,"users":10000}
 *   {"op":"fanout","url":"http://…","token":"…","users":10000}
 * With "mode":"nchan" it publishes to nginx+nchan's `/pub/<user>` instead: one POST per alarm,
 * since nchan has no batch endpoint.
 */
import { createRawHttpPool, type RawHttpPool } from "./raw_http.ts";

const now = () => performance.timeOrigin + performance.now();

const percentile = (sorted: number[], p: number) =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] : null;

interface PublishCommand {
  url: string;
  token: string;
  mode?: "alarmd" | "nchan";
  /** Each alarm carries a notification, so that it is pushed to users with no stream open. */
  notification?: boolean;
}

const cmd = JSON.parse(await new Response(Deno.stdin.readable).text());
/**
 * Keep-alive connections (bench --sockets, default 1024). The cap on requests outstanding: an
 * alarm is answered after its group commit, so with 256 alarmd topped out at 5,248 alarms/s at
 * 8,000/s offered (256 outstanding / ~50 ms); with 1,024 it reached 7,214/s (README, Performance).
 */
const pool: RawHttpPool = createRawHttpPool(cmd.url, cmd.sockets ?? 1024);

function post(cmd: PublishCommand, userId: string, data: unknown): Promise<number> {
  return cmd.mode === "nchan"
    ? pool.request(
      "POST",
      `/pub/${userId}`,
      { "content-type": "application/json" },
      JSON.stringify(data),
    )
    : pool.request(
      "POST",
      "/api/v1/alarms",
      { authorization: `Bearer ${cmd.token}`, "content-type": "application/json" },
      JSON.stringify({
        userId,
        type: "bench",
        data,
        ...(cmd.notification ? { notification: { title: "bench", body: "a pushed alarm" } } : {}),
      }),
    );
}

const accepted = (status: number) => status === 201 || status === 202;

async function targeted(cmd: PublishCommand & { rate: number; seconds: number; users: number }) {
  const total = Math.round(cmd.rate * cmd.seconds);
  const acks: number[] = [];
  let ok = 0;
  let failed = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  let sent = 0;
  const start = now();
  const pending = new Set<Promise<void>>();
  const send = () => {
    const userId = `u${Math.floor(Math.random() * cmd.users)}`;
    const t = now();
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    const p = post(cmd, userId, { t }).then((status) => {
      if (accepted(status)) ok++;
      else failed++;
      acks.push(now() - t);
    }, () => {
      failed++;
    }).finally(() => {
      inFlight--;
      pending.delete(p);
    });
    pending.add(p);
  };
  // Open-loop schedule: each alarm is due at start + i/rate, whatever the server's speed, so a
  // slow server shows up as latency and a lower achieved rate, not as a politely slower client.
  while (sent < total) {
    const due = Math.min(total, Math.floor((now() - start) * cmd.rate / 1000));
    while (sent < due && inFlight < 2048) {
      send();
      sent++;
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(pending);
  const elapsed = (now() - start) / 1000;
  acks.sort((a, b) => a - b);
  return {
    sent,
    ok,
    failed,
    achievedRate: ok / elapsed,
    maxInFlight,
    ackP50: percentile(acks, 0.5),
    ackP99: percentile(acks, 0.99),
  };
}

async function fanout(cmd: PublishCommand & { users: number }) {
  const headers = { authorization: `Bearer ${cmd.token}`, "content-type": "application/json" };
  const sentAt = now();
  if (cmd.mode === "nchan") {
    let next = 0;
    let failed = 0;
    await Promise.all(Array.from({ length: 256 }, async () => {
      while (next < cmd.users) {
        if (!accepted(await post(cmd, `u${next++}`, { t: sentAt }))) failed++;
      }
    }));
    return { sentAt, ackedAt: now(), failedAlarms: failed };
  }
  const requests: Promise<number>[] = [];
  for (let from = 0; from < cmd.users; from += 500) {
    const alarms = [];
    for (let i = from; i < Math.min(cmd.users, from + 500); i++) {
      alarms.push({ userId: `u${i}`, type: "fanout", data: { t: sentAt } });
    }
    requests.push(
      pool.request("POST", "/api/v1/alarms/batch", headers, JSON.stringify({ alarms })),
    );
  }
  const statuses = await Promise.all(requests);
  const failedBatches = statuses.filter((s) => s !== 201).length;
  return { sentAt, ackedAt: now(), failedAlarms: failedBatches * 500 };
}

const result = cmd.op === "targeted" ? await targeted(cmd) : await fanout(cmd);
pool.close();
console.log(JSON.stringify(result));
