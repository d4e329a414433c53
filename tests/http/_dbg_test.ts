/**
 * Delivery on the live stream: live alarm, read and deleted frames to every tab of a user and to
 * nobody else; a real EventSource reconnecting without losing or repeating anything;
 * exactly-once under churn; and slow clients, which must cost neither memory nor publishers.
 */
import assert from "node:assert/strict";
import { EventSource } from "eventsource";
import { openSse } from "../helpers/sse_client.ts";
import type { SseStream } from "../helpers/sse_client.ts";
import type { TestServer } from "../helpers/test_server.ts";
import { startTestServer, TEST_SECRET } from "../helpers/test_server.ts";
import { mintToken } from "../../src/cli/token.ts";
import type { Alarm, ServerHandle } from "./live_fixtures.ts";
import {
  afterConnect,
  alarmFrame,
  alarmIds,
  assertStrictlyIncreasing,
  changeFrame,
  connectData,
  createAlarm,
  createAlarms,
  delay,
  median,
  openStalledClient,
  residentBytes,
  sendQueueBytes,
  storedIds,
  SUBSCRIBE_PATH,
  userAction,
  waitUntil,
} from "./live_fixtures.ts";
import { startServerProcess } from "./server_process.ts";

const KIB4 = { blob: "x".repeat(4096) };

async function subscribe(server: TestServer, userId: string) {
  const stream = await openSse(server.url + SUBSCRIBE_PATH, {
    token: await server.userToken(userId),
  });
  assert.equal(stream.status, 200);
  await connectData(stream);
  return stream;
}

/** Waits until the stream's raw text after the connect frame is `expected`, then compares. */
async function expectFrames(stream: SseStream, expected: string, what: string) {
  try {
    await waitUntil(
      async () => (await afterConnect(stream)).length >= expected.length,
      `${what} received ${expected.length} characters`,
      3000,
    );
  } finally {
    assert.equal(await afterConnect(stream), expected, what);
  }
}

/** A real EventSource client (npm:eventsource) that records what it received and requested. */
function openEventSource(url: string, token: string) {
  const received: string[] = [];
  /** Per request: the Last-Event-ID it sent and the last alarm id received before it. */
  const requests: { sent: string | null; lastReceived: string | null }[] = [];
  const cuts: AbortController[] = [];
  let opens = 0;
  let errors = 0;
  const source = new EventSource(url, {
    fetch: (input, init) => {
      requests.push({
        sent: init.headers["Last-Event-ID"] ?? null,
        lastReceived: received.at(-1) ?? null,
      });
      const cut = new AbortController();
      cuts.push(cut);
      return fetch(input, {
        ...init,
        headers: { ...init.headers, authorization: `Bearer ${token}` },
        signal: AbortSignal.any([init.signal, cut.signal]),
      });
    },
  });
  source.addEventListener("alarm", (event) => received.push((event as MessageEvent).lastEventId));
  source.addEventListener("open", () => opens++);
  source.addEventListener("error", () => errors++);
  return {
    source,
    received,
    requests,
    opens: () => opens,
    errors: () => errors,
    /** Breaks the current connection as a network failure would (not a close by the app). */
    cut: () => cuts.at(-1)!.abort(new Error("connection reset")),
  };
}

function assertReconnectsResumed(
  requests: readonly { sent: string | null; lastReceived: string | null }[],
) {
  assert.equal(requests[0].sent, null);
  for (const request of requests.slice(1)) assert.equal(request.sent, request.lastReceived);
}

for (let i = 0; i < 8; i++) Deno.test("cut " + i, async () => {
  const server = await startTestServer({ retryMs: 50 });
  const publisher = await server.publisherToken();
  const es = openEventSource(server.url + SUBSCRIBE_PATH, await server.userToken("kim"));
  const created: Alarm[] = [];
  let publishing = true;
  const publish = (async () => {
    while (publishing) {
      created.push(await createAlarm(server, publisher, "kim"));
      await delay(10);
    }
  })();
  try {
    await waitUntil(() => es.opens() === 1, "EventSource is open");
    for (let round = 1; round <= 3; round++) {
      const seen = es.received.length;
      await waitUntil(() => es.received.length >= seen + 5, "some alarms arrived");
      es.cut();
      await waitUntil(() => server.server.connectionCount("kim") === 0, "the server saw it go");
      // While the client is away.
      created.push(await createAlarm(server, publisher, "kim"));
      await waitUntil(() => es.opens() === round + 1, "EventSource reconnected");
    }
    publishing = false;
    await publish;
    const expected = created.map((a) => a.id).sort();
    await waitUntil(() => es.received.length >= expected.length, "every alarm arrived", 5000);
    await delay(100);
    assertStrictlyIncreasing(es.received, "ids received by the EventSource");
    assert.deepEqual(es.received, expected);
    assert.equal(es.requests.length, 4);
    assertReconnectsResumed(es.requests);
  } finally {
    publishing = false;
    await publish;
    es.source.close();
    await waitUntil(() => server.server.connectionCount() === 0, "the last stream is gone");
  }
  const t0 = performance.now();
  const closing = server.close();
  const timer = setTimeout(() => {
    const states: string[] = [];
    for (const f of ["/proc/net/tcp", "/proc/net/tcp6"]) {
      for (const line of Deno.readTextFileSync(f).split("\n").slice(1)) {
        const x = line.trim().split(/\s+/);
        if (x.length < 5) continue;
        const lp = parseInt(x[1].split(":")[1], 16), rp = parseInt(x[2].split(":")[1], 16);
        if (lp === server.server.port) states.push(`server<-${rp} st=${x[3]} q=${x[4]}`);
        if (rp === server.server.port) states.push(`client:${lp} st=${x[3]} q=${x[4]}`);
      }
    }
    console.log("STUCK", states.join(" ; "), JSON.stringify(server.logs.slice(-6).map((l) => [l.msg, l.reason ?? ""])));
  }, 2000);
  await closing;
  clearTimeout(timer);
  console.log("CLOSE", Math.round(performance.now() - t0));
});

