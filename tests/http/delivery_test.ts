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
import { publisherToken, userToken } from "../helpers/test_server.ts";
import type { Alarm, ServerHandle } from "../helpers/live_fixtures.ts";
import {
  afterConnect,
  alarmIds,
  assertStrictlyIncreasing,
  connectData,
  createAlarm,
  createAlarms,
  median,
  openStalledClient,
  residentBytes,
  sendQueueBytes,
  startLiveServer,
  storedIds,
  SUBSCRIBE_PATH,
  userAction,
} from "../helpers/live_fixtures.ts";
import { alarmFrame, changeFrame } from "../helpers/sse_frames.ts";
import { delay, waitUntil, within } from "../helpers/wait.ts";
import { startServeProcess } from "../helpers/process.ts";

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
  let connects = 0;
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
  source.addEventListener("connect", () => connects++);
  source.addEventListener("error", () => errors++);
  return {
    source,
    received,
    requests,
    opens: () => opens,
    /** Connect events received: from the first on, every new alarm must arrive. */
    connects: () => connects,
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

/**
 * Creates 4 KiB alarms for `userId` until the server's socket to the client at `clientPort` stops
 * draining: its kernel send queue is non-empty and does not move while more alarms are published.
 */
async function feedUntilStalled(
  server: ServerHandle,
  serverPort: number,
  publisher: string,
  userId: string,
  clientPort: number,
) {
  let previous = -1;
  for (let fed = 0; fed < 64 << 20; fed += 100 * 4096) {
    await createAlarms(server, publisher, userId, 100, KIB4);
    await delay(20);
    const queued = sendQueueBytes(serverPort, clientPort);
    assert.notEqual(queued, null, "the server's socket to the stalled client is listed");
    if (queued! > 0 && queued === previous) return;
    previous = queued!;
  }
  throw new Error("the socket never stalled");
}

/** Streams of `userId` a server process has open, from its "stream opened/closed" log lines. */
function openStreamsOf(logs: Record<string, unknown>[], userId: string): number {
  const count = (msg: string) => logs.filter((l) => l.msg === msg && l.userId === userId).length;
  return count("stream opened") - count("stream closed");
}

for (const transport of ["node", "deno"] as const) {
  Deno.test(`[${transport}] a new alarm reaches the open stream as one exact alarm frame`, async () => {
    await using server = await startLiveServer({ transport });
    const publisher = await server.publisherToken();
    await using stream = await subscribe(server, "kim");
    const withData = await createAlarm(server, publisher, "kim", { text: "Kim commented", n: 1 });
    const withoutData = await createAlarm(server, publisher, "kim");
    assert.deepEqual(withoutData.data, {});
    // Line breaks and field names inside data stay inside the one data line.
    const tricky = await createAlarm(server, publisher, "kim", {
      text: "one\ntwo\r\nthree\rfour\n\nid: 0\nevent: deleted\ndata: {}\n: ping\n",
      sep: "\u2028\u2029",
    });
    await expectFrames(
      stream,
      alarmFrame(withData) + alarmFrame(withoutData) + alarmFrame(tricky),
      "the stream",
    );
    const received = stream.events.filter((e) => e.event === "alarm");
    assert.deepEqual(received.map((e) => JSON.parse(e.data)), [withData, withoutData, tricky]);
  });

  Deno.test(`[${transport}] every tab of a user receives every alarm, read and deleted event`, async () => {
    await using server = await startLiveServer({ transport });
    const publisher = await server.publisherToken();
    const user = await server.userToken("kim");
    await using tab1 = await subscribe(server, "kim");
    await using tab2 = await subscribe(server, "kim");

    const a = [];
    for (let i = 0; i < 3; i++) a.push(await createAlarm(server, publisher, "kim", { n: i }));
    await userAction(server, user, "POST", `/api/v1/users/alarms/${a[0].id}/read`);
    await userAction(server, user, "DELETE", `/api/v1/users/alarms/${a[1].id}`);
    await userAction(server, user, "DELETE", `/api/v1/users/alarms/${a[0].id}`);

    const expected = a.map(alarmFrame).join("") +
      changeFrame("read", [a[0].id], 2) +
      changeFrame("deleted", [a[1].id], 1) +
      changeFrame("deleted", [a[0].id], 1);
    await expectFrames(tab1, expected, "tab 1");
    await expectFrames(tab2, expected, "tab 2");
  });

  Deno.test(`[${transport}] read-all sends every tab one read event listing the ids it changed`, async () => {
    await using server = await startLiveServer({ transport });
    const publisher = await server.publisherToken();
    const user = await server.userToken("kim");
    const a = [];
    for (let i = 0; i < 4; i++) a.push(await createAlarm(server, publisher, "kim", { n: i }));
    await userAction(server, user, "POST", `/api/v1/users/alarms/${a[1].id}/read`);
    await using tab1 = await subscribe(server, "kim");
    await using tab2 = await subscribe(server, "kim");

    await userAction(server, user, "POST", "/api/v1/users/alarms/read-all");
    // Marks the end of what read-all sent.
    const after = await createAlarm(server, publisher, "kim");
    for (const [name, tab] of [["tab 1", tab1], ["tab 2", tab2]] as const) {
      await tab.waitFor((e) => e.event === "alarm", 1);
      const events = tab.events.filter((e) => e.event === "read" || e.event === "alarm");
      assert.deepEqual(events.map((e) => e.event), ["read", "alarm"], `${name}: ${tab.text()}`);
      const { ids } = JSON.parse(events[0].data);
      assert.deepEqual([...ids].sort(), [a[0].id, a[2].id, a[3].id], `${name}: changed ids`);
      await expectFrames(tab, changeFrame("read", ids, 0) + alarmFrame(after), name);
    }
  });

  Deno.test(`[${transport}] marking an already-read alarm, or reading all when none is unread, sends nothing`, async () => {
    await using server = await startLiveServer({ transport });
    const publisher = await server.publisherToken();
    const user = await server.userToken("kim");
    const [first, second] = [
      await createAlarm(server, publisher, "kim"),
      await createAlarm(server, publisher, "kim"),
    ];
    for (const alarm of [first, second]) {
      await userAction(server, user, "POST", `/api/v1/users/alarms/${alarm.id}/read`);
    }
    await using stream = await subscribe(server, "kim");

    await userAction(server, user, "POST", `/api/v1/users/alarms/${first.id}/read`);
    await userAction(server, user, "POST", "/api/v1/users/alarms/read-all");
    // A change that does send something: had the no-ops sent anything, it would come first.
    await userAction(server, user, "DELETE", `/api/v1/users/alarms/${second.id}`);
    await expectFrames(stream, changeFrame("deleted", [second.id], 0), "the stream");
  });

  Deno.test(`[${transport}] alarms dropped by the per-user cap reach the stream as deleted`, async () => {
    await using server = await startLiveServer({ transport, maxAlarmsPerUser: 2 });
    const publisher = await server.publisherToken();
    const [first, second] = [
      await createAlarm(server, publisher, "kim"),
      await createAlarm(server, publisher, "kim"),
    ];
    await using stream = await subscribe(server, "kim");
    const third = await createAlarm(server, publisher, "kim");
    await expectFrames(stream, alarmFrame(third) + changeFrame("deleted", [first.id], 2), "stream");
    assert.deepEqual(await storedIds(server, await server.userToken("kim")), [second.id, third.id]);
  });

  Deno.test(`[${transport}] a user's stream never sees another user's alarms or changes`, async () => {
    await using server = await startLiveServer({ transport });
    const publisher = await server.publisherToken();
    const ann = await server.userToken("ann");
    await using annStream = await subscribe(server, "ann");
    await using bobStream = await subscribe(server, "bob");

    const annAlarms = [
      await createAlarm(server, publisher, "ann"),
      await createAlarm(server, publisher, "ann"),
      await createAlarm(server, publisher, "ann"),
    ];
    await userAction(server, ann, "POST", `/api/v1/users/alarms/${annAlarms[0].id}/read`);
    await userAction(server, ann, "DELETE", `/api/v1/users/alarms/${annAlarms[1].id}`);
    await userAction(server, ann, "POST", "/api/v1/users/alarms/read-all");
    const bobs = await createAlarm(server, publisher, "bob");
    const annLast = await createAlarm(server, publisher, "ann");

    await expectFrames(bobStream, alarmFrame(bobs), "bob's stream");
    await annStream.waitFor((e) => e.event === "alarm", 4);
    await delay(20);
    assert.deepEqual(alarmIds(annStream), [...annAlarms, annLast].map((a) => a.id));
    assert.ok(!annStream.text().includes(bobs.id), "ann's stream mentions bob's alarm");
    for (const alarm of [...annAlarms, annLast]) {
      assert.ok(!bobStream.text().includes(alarm.id), `bob's stream mentions ${alarm.id}`);
    }
  });

  Deno.test(`[${transport}] EventSource reconnects after the server's stream timeout and receives every alarm once`, async () => {
    await using server = await startLiveServer({
      transport,
      sseTimeoutMs: 300,
      heartbeatMs: 200,
      retryMs: 50,
    });
    const publisher = await server.publisherToken();
    const es = openEventSource(server.url + SUBSCRIBE_PATH, await server.userToken("kim"));
    const created: Alarm[] = [];
    let whileDisconnected = 0;
    let pending = Promise.resolve();
    es.source.addEventListener("error", () => {
      if (server.server.connectionCount("kim") !== 0) return;
      pending = pending.then(async () => {
        // The server has ended the stream and the client waits to reconnect: created now, these
        // can only arrive by replay.
        for (let i = 0; i < 2; i++) created.push(await createAlarm(server, publisher, "kim"));
        whileDisconnected += 2;
      });
    });
    try {
      await waitUntil(() => es.connects() === 1, "EventSource is connected");
      while (es.opens() < 4) {
        created.push(await createAlarm(server, publisher, "kim"));
        await delay(30);
      }
      await pending;
      const expected = created.map((a) => a.id).sort();
      await waitUntil(() => es.received.length >= expected.length, "every alarm arrived", 5000);
      await delay(100);
      assert.ok(whileDisconnected >= 2, "some alarms were created while the client was away");
      assertStrictlyIncreasing(es.received, "ids received by the EventSource");
      assert.deepEqual(es.received, expected);
      assertReconnectsResumed(es.requests);
      const reasons = server.logs.filter((l) => l.msg === "stream closed").map((l) => l.reason);
      assert.ok(reasons.filter((r) => r === "timeout").length >= 3, reasons.join());
    } finally {
      es.source.close();
      await waitUntil(() => server.server.connectionCount() === 0, "the last stream is gone");
    }
  });

  Deno.test(`[${transport}] EventSource reconnects after its connection breaks and misses nothing`, async () => {
    await using server = await startLiveServer({ transport, retryMs: 50 });
    const publisher = await server.publisherToken();
    const es = openEventSource(server.url + SUBSCRIBE_PATH, await server.userToken("kim"));
    const created: Alarm[] = [];
    let publishing = true;
    let publish = Promise.resolve();
    try {
      await waitUntil(() => es.connects() === 1, "EventSource is connected");
      publish = (async () => {
        while (publishing) {
          created.push(await createAlarm(server, publisher, "kim"));
          await delay(10);
        }
      })();
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
  });

  Deno.test(`[${transport}] an EventSource that keeps reading receives a burst larger than ALARMD_MAX_QUEUE_BYTES`, async () => {
    await using server = await startLiveServer({ transport, retryMs: 50, maxAlarmsPerUser: 5000 });
    const publisher = await server.publisherToken();
    const es = openEventSource(server.url + SUBSCRIBE_PATH, await server.userToken("kim"));
    try {
      await waitUntil(() => es.connects() === 1, "EventSource is connected");
      // One batch of 500 x 4 KiB: about twice the default 1 MiB queue limit, in one go.
      const created = await createAlarms(server, publisher, "kim", 500, KIB4);
      const expected = created.map((a) => a.id);
      await waitUntil(() => es.received.length >= expected.length, "the burst arrived", 5000)
        .catch(() => {});
      await delay(100);
      const reasons = server.logs.filter((l) => l.msg === "stream closed").map((l) => l.reason);
      assert.equal(
        es.received.length,
        expected.length,
        `received ${es.received.length} of ${expected.length} alarms over ${es.opens()} ` +
          `connections; the server closed streams for: ${reasons.join(", ")}`,
      );
      assert.deepEqual(es.received, expected);
    } finally {
      es.source.close();
      await waitUntil(() => server.server.connectionCount() === 0, "the last stream is gone");
    }
  });

  Deno.test(`[${transport}] under churn each client gets every alarm created after it first connected exactly once, in id order`, async () => {
    await using server = await startLiveServer({
      transport,
      retryMs: 10,
      maxAlarmsPerUser: 100_000,
    });
    const publisher = await server.publisherToken();
    const users = ["u0", "u1", "u2", "u3"];
    const tokens = new Map<string, string>();
    for (const u of users) tokens.set(u, await server.userToken(u));
    // A known newest alarm per user: each client starts from it, so "after it first connected"
    // is exact even while alarms are being created.
    const baseline = new Map<string, string>();
    for (const u of users) baseline.set(u, (await createAlarm(server, publisher, u)).id);

    let publishing = true;
    const publishers = [0, 1, 2].map(async (p) => {
      for (let n = p; publishing; n++) {
        const userId = users[n % users.length];
        if (n % 7 === 0) await createAlarms(server, publisher, userId, 5, { n });
        else await createAlarm(server, publisher, userId, { n });
      }
    });

    async function client(index: number) {
      const userId = users[index % users.length];
      const received: string[] = [];
      let last = baseline.get(userId)!;
      const connect = async () => {
        const stream = await openSse(server.url + SUBSCRIBE_PATH, {
          token: tokens.get(userId)!,
          lastEventId: last,
        });
        assert.equal(stream.status, 200);
        const data = await connectData(stream);
        assert.equal(data.replay, undefined, `client ${index} resumed from ${last}`);
        return stream;
      };
      const take = (stream: SseStream, from: string) => {
        const ids = alarmIds(stream);
        assertStrictlyIncreasing([from, ...ids], `client ${index}, one connection`);
        received.push(...ids);
        if (ids.length > 0) last = ids.at(-1)!;
      };
      for (let round = 0; round < 12; round++) {
        const from = last;
        const stream = await connect();
        await delay(10 + Math.floor(Math.random() * 120));
        await stream.close();
        take(stream, from);
        // Away for a moment: what is created now arrives by replay.
        await delay(Math.floor(Math.random() * 30));
      }
      return {
        userId,
        received,
        async finish(newest: string) {
          const from = last;
          const stream = await connect();
          try {
            await waitUntil(
              () => (alarmIds(stream).at(-1) ?? from) >= newest,
              `${index} caught up`,
            );
            await delay(50);
          } finally {
            await stream.close();
          }
          take(stream, from);
        },
      };
    }

    const clients = await Promise.all(Array.from({ length: 12 }, (_, i) => client(i)));
    publishing = false;
    await Promise.all(publishers);
    const stored = new Map<string, string[]>();
    for (const u of users) stored.set(u, await storedIds(server, tokens.get(u)!));
    await Promise.all(clients.map((c) => c.finish(stored.get(c.userId)!.at(-1)!)));

    for (const [i, c] of clients.entries()) {
      const expected = stored.get(c.userId)!.filter((id) => id > baseline.get(c.userId)!);
      assert.ok(expected.length > 50, `only ${expected.length} alarms for ${c.userId}`);
      assert.equal(new Set(c.received).size, c.received.length, `client ${i} got an alarm twice`);
      assert.deepEqual(c.received, expected, `client ${i} (${c.userId})`);
    }
    await waitUntil(() => server.server.connectionCount() === 0, "every stream is gone");
  });

  Deno.test(`[${transport}] a client that stops reading is dropped past ALARMD_MAX_QUEUE_BYTES; one that reads stays`, async () => {
    await using server = await startLiveServer({ transport, maxQueueBytes: 64 * 1024 });
    const publisher = await server.publisherToken();
    const stalled = await openStalledClient(server.server.port, await server.userToken("slow"));
    try {
      await using reader = await subscribe(server, "slow");
      const readerId = (await connectData(reader)).connectionId;
      await waitUntil(() => server.server.connectionCount("slow") === 2, "both streams are open");
      // Bursts of 8 x 4 KiB stay under the limit: only a client that does not read falls behind.
      const created: Alarm[] = [];
      for (let fed = 0; fed < 64 << 20; fed += 8 * 4096) {
        if (server.server.connectionCount("slow") < 2) break;
        created.push(...await createAlarms(server, publisher, "slow", 8, KIB4));
      }
      await waitUntil(() => server.server.connectionCount("slow") === 1, "a stream was dropped");
      const closed = server.logs.filter((l) => l.msg === "stream closed" && l.userId === "slow");
      assert.equal(closed.length, 1);
      assert.notEqual(closed[0].connectionId, readerId, "the client that reads was dropped");
      assert.ok(
        ["slow_client", "write_timeout"].includes(closed[0].reason as string),
        `reason ${closed[0].reason}`,
      );
      await reader.waitFor((e) => e.event === "alarm", created.length, 10_000);
      assert.deepEqual(alarmIds(reader), created.map((a) => a.id));
    } finally {
      stalled.close();
    }
  });

  Deno.test(`[${transport}] a client that never reads costs the server bounded memory, not what was published`, async () => {
    // Publishing goes in batches of 500 x 4 KiB (2 MiB), under the queue limit: the stream is
    // dropped because its client does not read, not because one burst was too large.
    await using alarmd = await startServeProcess({
      ALARMD_TRANSPORT: transport,
      ALARMD_MAX_QUEUE_BYTES: String(4 << 20),
    });
    const token = (sub: string, publish: boolean) => publish ? publisherToken(sub) : userToken(sub);
    const publisher = await token("backend", true);
    const volume = 96 << 20;
    const count = Math.ceil(volume / 4096);
    // Warm up with the same work for a user nobody streams, so the heap has grown to its working
    // size before the measurement.
    await createAlarms(alarmd, publisher, "warm-up", count, KIB4);
    await delay(100);
    const before = residentBytes(alarmd.pid);

    const stalled = await openStalledClient(alarmd.port, await token("slow", false));
    try {
      await waitUntil(
        () => alarmd.logs().some((l) => l.msg === "stream opened" && l.userId === "slow"),
        "the stream is open",
      );
      await createAlarms(alarmd, publisher, "slow", count, KIB4);
      const growth = residentBytes(alarmd.pid) - before;
      assert.ok(
        growth < 64 << 20,
        `RSS grew by ${(growth / 2 ** 20).toFixed(1)} MiB while ${volume >> 20} MiB was published`,
      );
      const closed = alarmd.logs().filter((l) => l.msg === "stream closed" && l.userId === "slow");
      assert.equal(closed.length, 1, "the slow client was dropped");
      assert.ok(["slow_client", "write_timeout"].includes(closed[0].reason as string));
      const health = await fetch(alarmd.url + "/healthz");
      assert.equal(health.status, 200);
      await health.body?.cancel();
    } finally {
      stalled.close();
    }
    assert.equal(await alarmd.stop(), 0, "alarmd exits 0 on SIGTERM (contract: within 10 s)");
  });

  Deno.test(`[${transport}] a stalled tab does not slow down publishing to its user`, async () => {
    // A server process of its own, so that the clients' work does not count as the server's.
    await using alarmd = await startServeProcess({
      ALARMD_TRANSPORT: transport,
      ALARMD_MAX_QUEUE_BYTES: String(1 << 30),
      ALARMD_WRITE_TIMEOUT_MS: "3600000",
      ALARMD_MAX_ALARMS_PER_USER: "100000",
    });
    const token = (sub: string, publish = false) => publish ? publisherToken(sub) : userToken(sub);
    const publisher = await token("backend", true);
    const busyUser = await token("busy");
    const stalled = await openStalledClient(alarmd.port, busyUser);
    const tabs: SseStream[] = [];
    try {
      await waitUntil(() => openStreamsOf(alarmd.logs(), "busy") === 1, "the stalled tab is open");
      await feedUntilStalled(alarmd, alarmd.port, publisher, "busy", stalled.localPort);
      for (let i = 0; i < 15; i++) {
        const tab = await openSse(alarmd.url + SUBSCRIBE_PATH, { token: busyUser });
        tabs.push(tab);
        assert.equal(tab.status, 200);
        await connectData(tab);
      }
      await waitUntil(() => openStreamsOf(alarmd.logs(), "busy") === 16, "16 streams are open");

      const busy: number[] = [];
      const idle: number[] = [];
      const measured: string[] = [];
      for (let i = 0; i < 50; i++) {
        let t = performance.now();
        const alarm = await within(5000, createAlarm(alarmd, publisher, "busy", { i }), "a create");
        busy.push(performance.now() - t);
        measured.push(alarm.id);
        t = performance.now();
        await within(5000, createAlarm(alarmd, publisher, "idle", { i }), "a create");
        idle.push(performance.now() - t);
      }
      const [busyMedian, idleMedian] = [median(busy), median(idle)];
      assert.ok(
        busyMedian <= 3 * idleMedian + 5,
        `median create: ${busyMedian.toFixed(2)} ms with 16 streams (one stalled), ` +
          `${idleMedian.toFixed(2)} ms with none`,
      );
      // The stalled tab is still there and still stalled; the other tabs got everything.
      assert.equal(openStreamsOf(alarmd.logs(), "busy"), 16);
      assert.ok(sendQueueBytes(alarmd.port, stalled.localPort)! > 0, "the tab is still stalled");
      for (const tab of tabs) {
        await tab.waitFor((e) => e.event === "alarm", measured.length);
        assert.deepEqual(alarmIds(tab), measured);
      }
    } finally {
      stalled.close();
      await Promise.all(tabs.map((t) => t.close()));
    }
    const code = await alarmd.stop();
    assert.equal(
      code,
      0,
      `alarmd exits 0 on SIGTERM (contract: within 10 s): ${alarmd.stderr().slice(-3000)}`,
    );
  });
}
