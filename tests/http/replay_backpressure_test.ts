/**
 * A replay is paced by its client: a client that stops reading in the middle of a long history
 * costs the server its queue (ALARMD_MAX_QUEUE_BYTES) and no more, while a client that reads
 * gets all of it, each alarm once, in order.
 */
import assert from "node:assert/strict";
import { metric } from "../helpers/metrics.ts";
import { startServeProcess } from "../helpers/process.ts";
import { openSse } from "../helpers/sse_client.ts";
import { publisherToken, userToken } from "../helpers/test_server.ts";
import {
  alarmIds,
  createAlarms,
  openStalledClient,
  residentBytes,
  startLiveServer,
  SUBSCRIBE_PATH,
} from "../helpers/live_fixtures.ts";
import { delay, waitUntil } from "../helpers/wait.ts";
import type { StalledClient } from "../helpers/live_fixtures.ts";

const MIB = 1 << 20;

/**
 * Samples the bytes queued on streams until the replayed count has not moved for a while (the
 * replays are stuck on clients that do not read); returns the largest sample and the count.
 */
async function untilReplayStalls(url: string): Promise<{ maxQueued: number; replayed: number }> {
  let maxQueued = 0;
  let replayed = -1;
  let stillSince = Date.now();
  const deadline = Date.now() + 20_000;
  while (Date.now() - stillSince < 500) {
    assert.ok(Date.now() < deadline, "the replays never stalled");
    maxQueued = Math.max(maxQueued, await metric(url, "alarmd_stream_queued_bytes"));
    const now = await metric(url, "alarmd_alarms_replayed_total");
    if (now !== replayed) [replayed, stillSince] = [now, Date.now()];
    await delay(20);
  }
  return { maxQueued, replayed };
}

for (const transport of ["node", "deno"] as const) {
  Deno.test(`[${transport}] a replay to a client that stops reading waits within ALARMD_MAX_QUEUE_BYTES; a reader of it gets every alarm once, in order`, async () => {
    await using server = await startLiveServer({ maxAlarmsPerUser: 5000, transport });
    const cap = server.config.maxQueueBytes;
    const publisher = await server.publisherToken();
    const user = await server.userToken("kim");
    const stored = await createAlarms(server, publisher, "kim", 3000, { text: "x".repeat(2000) });

    const stalled = await openStalledClient(server.server.port, user, stored[0].id);
    try {
      const { maxQueued, replayed } = await untilReplayStalls(server.url);
      assert.ok(replayed < stored.length - 1, `the whole history (${replayed}) fit in the socket`);
      assert.ok(maxQueued > 0, "nothing waited in the queue");
      assert.ok(maxQueued <= cap, `${maxQueued} bytes queued for one stream, cap ${cap}`);
      assert.equal(server.server.connectionCount("kim"), 1, "the stream waits, it is not dropped");

      await using reader = await openSse(server.url + SUBSCRIBE_PATH, {
        token: user,
        lastEventId: stored[0].id,
      });
      assert.equal(reader.status, 200);
      await reader.waitFor((e) => e.event === "alarm", stored.length - 1, 30_000);
      await delay(100);
      assert.deepEqual(alarmIds(reader), stored.slice(1).map((a) => a.id));
    } finally {
      stalled.close();
    }
  });
}

Deno.test("clients that stop reading during a large replay cost memory bounded by the queue cap, not by the history", async () => {
  const clients = 32;
  await using alarmd = await startServeProcess({
    ALARMD_MAX_ALARMS_PER_USER: "5000",
    ALARMD_MAX_CONNECTIONS_PER_USER: String(clients),
  });
  const cap = 1 * MIB; // ALARMD_MAX_QUEUE_BYTES's default
  const user = await userToken("kim");
  // 3,000 alarms of 8 KiB: 24 MiB of history per stream, far more than its queue may hold.
  const stored = await createAlarms(
    alarmd,
    await publisherToken("backend"),
    "kim",
    3000,
    { text: "x".repeat(8000) },
  );
  // Two full replays first, so that the heap has grown to the replay's working size before the
  // measurement.
  for (let i = 0; i < 2; i++) {
    await using reader = await openSse(alarmd.url + SUBSCRIBE_PATH, {
      token: user,
      lastEventId: stored[0].id,
    });
    await reader.waitFor((e) => e.event === "alarm", stored.length - 1, 30_000);
  }
  await delay(200);
  const before = residentBytes(alarmd.pid);

  const stalled: StalledClient[] = [];
  try {
    for (let i = 0; i < clients; i++) {
      stalled.push(await openStalledClient(alarmd.port, user, stored[0].id));
    }
    await waitUntil(
      () => alarmd.logs().filter((l) => l.msg === "stream opened").length === 2 + clients,
      "every stalled stream is open",
    );
    const { maxQueued, replayed } = await untilReplayStalls(alarmd.url);
    const perStalled = (replayed - 2 * (stored.length - 1)) / clients;
    assert.ok(
      perStalled < (stored.length - 1) / 2,
      `${perStalled} alarms replayed per stalled one`,
    );
    assert.ok(maxQueued <= clients * cap, `${maxQueued} bytes queued for ${clients} streams`);
    // Each stalled stream holds its queue (up to the cap) and, while it started, a page read to
    // fill it (up to half the cap, as alarms and as frames) that is garbage by now but not yet
    // collected, so the growth varies from run to run, up to past twice the caps. Four times the
    // caps leaves room for that; a server that held the history (24 MiB a stream) is far past it.
    const growth = residentBytes(alarmd.pid) - before;
    assert.ok(
      growth < 4 * clients * cap,
      `RSS grew by ${(growth / MIB).toFixed(1)} MiB for ${clients} stalled replays ` +
        `(queue cap ${cap / MIB} MiB each)`,
    );
    const closed = alarmd.logs().filter((l) => l.msg === "stream closed" && l.userId === "kim");
    assert.equal(closed.length, 2, "only the two readers' streams ended");
    const health = await fetch(alarmd.url + "/healthz");
    assert.equal(health.status, 200);
    await health.body?.cancel();
  } finally {
    for (const conn of stalled) conn.close();
  }
  assert.equal(await alarmd.stop(), 0);
});

Deno.test("alarms published while a replay waits for its client arrive after it, once each, in order", async () => {
  // A small queue, so that the alarms published meanwhile are more than the replay may hold.
  await using server = await startLiveServer({ maxAlarmsPerUser: 5000, maxQueueBytes: 64 * 1024 });
  const publisher = await server.publisherToken();
  const user = await server.userToken("kim");
  const stored = await createAlarms(server, publisher, "kim", 2000, { text: "x".repeat(2000) });

  // A client that reads nothing for now (fetch would read ahead into its own buffer).
  const conn = await openStalledClient(server.server.port, user, stored[0].id);
  try {
    const { replayed } = await untilReplayStalls(server.url);
    assert.ok(replayed < stored.length - 1, "the replay is waiting for the client");
    const live = await createAlarms(server, publisher, "kim", 300, { live: true });

    const expected = [...stored.slice(1), ...live].map((a) => a.id);
    const body = readChunkedBody(conn.conn);
    const ids = () => [...body.text().matchAll(/^id: (\S+)\nevent: alarm\n/gm)].map((m) => m[1]);
    await waitUntil(() => ids().length >= expected.length, "every alarm arrived", 20_000);
    await delay(100);
    assert.deepEqual(ids(), expected);
    assert.equal(server.server.connectionCount("kim"), 1);
  } finally {
    conn.close();
  }
});

/** Reads an HTTP/1.1 chunked response from `conn` in the background; `text()` is the body so far. */
function readChunkedBody(conn: Deno.TcpConn): { text(): string } {
  const decoder = new TextDecoder();
  let raw = new Uint8Array(0);
  let headDone = false;
  let body = "";
  const take = (n: number) => {
    const out = raw.subarray(0, n);
    raw = raw.subarray(n);
    return out;
  };
  const line = () => {
    const end = raw.findIndex((b, i) => b === 13 && raw[i + 1] === 10);
    return end === -1 ? null : decoder.decode(take(end + 2)).slice(0, -2);
  };
  void (async () => {
    const buf = new Uint8Array(64 * 1024);
    for (;;) {
      let n: number | null;
      try {
        n = await conn.read(buf);
      } catch {
        return;
      }
      if (n === null) return;
      const joined = new Uint8Array(raw.length + n);
      joined.set(raw);
      joined.set(buf.subarray(0, n), raw.length);
      raw = joined;
      while (!headDone) {
        const l = line();
        if (l === null) break;
        if (l === "") headDone = true;
      }
      while (headDone) {
        const end = raw.findIndex((b, i) => b === 13 && raw[i + 1] === 10);
        if (end === -1) break;
        const size = parseInt(decoder.decode(raw.subarray(0, end)), 16);
        if (raw.length < end + 2 + size + 2) break;
        take(end + 2);
        body += decoder.decode(take(size), { stream: true });
        take(2);
      }
    }
  })();
  return { text: () => body };
}
