/**
 * A publisher process: creates benchmark alarms through the public API, as an app backend
 * would, each carrying `data.t` (send time, ms since the epoch with sub-ms precision) so the
 * SSE clients can measure publish→deliver latency. One JSON command in, one JSON line out:
 *   {"op":"targeted","url":"http://…","token":"…","rate":5000,"seconds":10,"users":10000}
 *   {"op":"fanout","url":"http://…","token":"…","users":10000}
 */
const now = () => performance.timeOrigin + performance.now();

const percentile = (sorted: number[], p: number) =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] : null;

async function targeted(cmd: {
  url: string;
  token: string;
  rate: number;
  seconds: number;
  users: number;
}) {
  const headers = { authorization: `Bearer ${cmd.token}`, "content-type": "application/json" };
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
    const p = fetch(`${cmd.url}/api/v1/alarms`, {
      method: "POST",
      headers,
      body: JSON.stringify({ userId, type: "bench", data: { t } }),
    }).then(async (res) => {
      await res.body?.cancel();
      if (res.status === 201) ok++;
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

async function fanout(cmd: { url: string; token: string; users: number }) {
  const headers = { authorization: `Bearer ${cmd.token}`, "content-type": "application/json" };
  const sentAt = now();
  const requests: Promise<number>[] = [];
  for (let from = 0; from < cmd.users; from += 500) {
    const alarms = [];
    for (let i = from; i < Math.min(cmd.users, from + 500); i++) {
      alarms.push({ userId: `u${i}`, type: "fanout", data: { t: sentAt } });
    }
    requests.push(
      fetch(`${cmd.url}/api/v1/alarms/batch`, {
        method: "POST",
        headers,
        body: JSON.stringify({ alarms }),
      }).then(async (res) => {
        await res.body?.cancel();
        return res.status;
      }),
    );
  }
  const statuses = await Promise.all(requests);
  return { sentAt, ackedAt: now(), failed: statuses.filter((s) => s !== 201).length };
}

const input = await new Response(Deno.stdin.readable).text();
const cmd = JSON.parse(input);
const result = cmd.op === "targeted" ? await targeted(cmd) : await fanout(cmd);
console.log(JSON.stringify(result));
