/**
 * The live stream `GET /api/v1/users/alarm/subscribe` as a client sees it: the opening frames,
 * replay after `Last-Event-ID`, heartbeats, the stream's end, cleanup and the connection caps.
 * Each case runs a real server on a random port (tests/helpers/test_server.ts).
 */
import assert from "node:assert/strict";
import { createFakeClock } from "../helpers/fake_clock.ts";
import { openSse } from "../helpers/sse_client.ts";
import type { TestServer } from "../helpers/test_server.ts";

import {
  advance,
  afterConnect,
  alarmIds,
  assertStrictlyIncreasing,
  connectData,
  createAlarm,
  createAlarms,
  readToEnd,
  startLiveServer,
  SUBSCRIBE_PATH,
  ulidAt,
  userAction,
} from "../helpers/live_fixtures.ts";
import { alarmFrame } from "../helpers/sse_frames.ts";
import { delay, waitUntil } from "../helpers/wait.ts";

Deno.test("the stream answers 200 with text/event-stream, no-cache and X-Accel-Buffering: no", async () => {
  await using server = await startLiveServer();
  await using stream = await openSse(server.url + SUBSCRIBE_PATH, {
    token: await server.userToken("kim"),
  });
  assert.equal(stream.status, 200);
  assert.match(stream.response.headers.get("content-type") ?? "", /^text\/event-stream(;|$)/);
  assert.equal(stream.response.headers.get("cache-control"), "no-cache");
  assert.equal(stream.response.headers.get("x-accel-buffering"), "no");
});

Deno.test("the stream opens with one block: retry: 3000 and the connect-complete event, no id line", async () => {
  await using server = await startLiveServer();
  const publisher = await server.publisherToken();
  const user = await server.userToken("kim");
  const [first, , last] = [
    await createAlarm(server, publisher, "kim"),
    await createAlarm(server, publisher, "kim"),
    await createAlarm(server, publisher, "kim"),
  ];
  await userAction(server, user, "POST", `/api/v1/users/alarms/${first.id}/read`);

  await using stream = await openSse(server.url + SUBSCRIBE_PATH, { token: user });
  assert.equal(stream.status, 200);
  await stream.waitFor((e) => e.event === "connect", 1);
  const connectionId = /"connectionId":"([^"]+)"/.exec(stream.text())?.[1];
  assert.ok(connectionId, stream.text());
  assert.equal(
    stream.text(),
    "retry: 3000\n" +
      "event: connect\n" +
      // `lastId` (an alarmd addition to the contract's fields) is the newest id at connect time.
      `data: {"message":"connect complete","userId":"kim","connectionId":"${connectionId}",` +
      `"unread":2,"lastId":"${last.id}"}\n\n`,
  );
});

Deno.test("the retry line follows ALARMD_RETRY_MS and each connection has its own id", async () => {
  await using server = await startLiveServer({ retryMs: 1234 });
  const user = await server.userToken("kim");
  await using one = await openSse(server.url + SUBSCRIBE_PATH, { token: user });
  await using two = await openSse(server.url + SUBSCRIBE_PATH, { token: user });
  const [a, b] = [await connectData(one), await connectData(two)];
  for (const stream of [one, two]) {
    assert.ok(stream.text().startsWith("retry: 1234\nevent: connect\ndata: {"), stream.text());
    const connect = stream.events.find((e) => e.event === "connect")!;
    assert.equal(connect.id, undefined, "the connect event carries no id");
    assert.equal(stream.events[0].event, "connect", "retry: has no block of its own");
    assert.equal(stream.events[0].retry, 1234);
  }
  assert.equal(a.message, "connect complete");
  assert.equal(a.userId, "kim");
  assert.equal(a.unread, 0);
  assert.equal(typeof a.connectionId, "string");
  assert.notEqual(a.connectionId, b.connectionId);
});

Deno.test("replay after Last-Event-ID sends every newer alarm, oldest first, before live ones", async () => {
  await using server = await startLiveServer();
  const publisher = await server.publisherToken();
  const stored = [];
  for (let i = 0; i < 5; i++) stored.push(await createAlarm(server, publisher, "kim", { n: i }));

  await using stream = await openSse(server.url + SUBSCRIBE_PATH, {
    token: await server.userToken("kim"),
    lastEventId: stored[1].id,
  });
  assert.equal(stream.status, 200);
  const connect = await connectData(stream);
  assert.equal(connect.replay, undefined);
  assert.equal(connect.unread, 5);
  await stream.waitFor((e) => e.event === "alarm", 3);
  const live = await createAlarm(server, publisher, "kim", { n: "live" });
  await stream.waitFor((e) => e.event === "alarm", 4);
  assert.equal(
    await afterConnect(stream),
    [stored[2], stored[3], stored[4], live].map(alarmFrame).join(""),
  );
});

Deno.test("replay honours the lastEventId query parameter like the header", async () => {
  await using server = await startLiveServer();
  const publisher = await server.publisherToken();
  const stored = [];
  for (let i = 0; i < 4; i++) stored.push(await createAlarm(server, publisher, "kim"));

  const token = await server.userToken("kim");
  await using stream = await openSse(
    `${server.url}${SUBSCRIBE_PATH}?lastEventId=${stored[0].id}&access_token=${token}`,
  );
  assert.equal(stream.status, 200);
  assert.equal((await connectData(stream)).replay, undefined);
  await stream.waitFor((e) => e.event === "alarm", 3);
  assert.equal(await afterConnect(stream), stored.slice(1).map(alarmFrame).join(""));
});

Deno.test("replay starts after a Last-Event-ID whose alarm has since been deleted", async () => {
  await using server = await startLiveServer();
  const publisher = await server.publisherToken();
  const user = await server.userToken("kim");
  const stored = [];
  for (let i = 0; i < 4; i++) stored.push(await createAlarm(server, publisher, "kim"));
  await userAction(server, user, "DELETE", `/api/v1/users/alarms/${stored[1].id}`);

  await using stream = await openSse(server.url + SUBSCRIBE_PATH, {
    token: user,
    lastEventId: stored[1].id,
  });
  assert.equal((await connectData(stream)).replay, undefined);
  await stream.waitFor((e) => e.event === "alarm", 2);
  assert.equal(await afterConnect(stream), [stored[2], stored[3]].map(alarmFrame).join(""));
});

/** Connects with `lastEventId`, expects a reset, and checks that only a live alarm follows. */
async function expectReset(
  server: TestServer,
  userId: string,
  lastEventId: string,
) {
  await using stream = await openSse(server.url + SUBSCRIBE_PATH, {
    token: await server.userToken(userId),
    lastEventId,
  });
  assert.equal(stream.status, 200);
  const connect = await connectData(stream);
  assert.equal(connect.replay, "reset", `Last-Event-ID ${lastEventId}: ${JSON.stringify(connect)}`);
  assert.equal(connect.message, "connect complete");
  assert.equal(connect.userId, userId);
  // Nothing was replayed: the first alarm frame is the one created now.
  const live = await createAlarm(server, await server.publisherToken(), userId, { live: true });
  await stream.waitFor((e) => e.event === "alarm", 1);
  await delay(20);
  assert.deepEqual(alarmIds(stream), [live.id], `Last-Event-ID ${lastEventId}`);
  assert.ok((await afterConnect(stream)).startsWith(alarmFrame(live)), stream.text());
}

Deno.test("a malformed Last-Event-ID replays nothing and the connect event says replay reset", async () => {
  await using server = await startLiveServer();
  const publisher = await server.publisherToken();
  const stored = await createAlarm(server, publisher, "kim");
  await expectReset(server, "kim", "not-an-alarm-id");
  await expectReset(server, "kim", stored.id.slice(0, 20));
  await expectReset(server, "kim", "1");
});

Deno.test("a Last-Event-ID from the future replays nothing and the connect event says replay reset", async () => {
  await using server = await startLiveServer();
  const publisher = await server.publisherToken();
  await createAlarm(server, publisher, "kim");
  await expectReset(server, "kim", ulidAt(Date.now() + 24 * 3_600_000));
  // A user without any alarm cannot have seen one.
  await expectReset(server, "nobody-yet", ulidAt(Date.now() - 60_000));
});

Deno.test("Last-Event-ID of the lowest id means nothing seen yet: no reset, and every alarm created since is replayed", async () => {
  await using server = await startLiveServer();
  const publisher = await server.publisherToken();
  const zero = "0".repeat(26);
  const token = await server.userToken("kim");
  // A tab that connected before kim had any alarm reconnects from the lowest id.
  await using empty = await openSse(server.url + SUBSCRIBE_PATH, { token, lastEventId: zero });
  const first = await connectData(empty);
  assert.equal(first.replay, undefined, "nothing seen and nothing stored: nothing to reset");
  await empty.close();
  const created = [
    await createAlarm(server, publisher, "kim"),
    await createAlarm(server, publisher, "kim"),
  ];
  await using again = await openSse(server.url + SUBSCRIBE_PATH, { token, lastEventId: zero });
  const connect = await connectData(again);
  assert.equal(connect.replay, undefined);
  await again.waitFor((e) => e.event === "alarm", 2);
  assert.deepEqual(alarmIds(again), created.map((a) => a.id), "the alarms made while it was away");
});

Deno.test("a Last-Event-ID older than the per-user cap keeps replays nothing and says reset", async () => {
  await using server = await startLiveServer({ maxAlarmsPerUser: 3 });
  const publisher = await server.publisherToken();
  const stored = [];
  for (let i = 0; i < 6; i++) stored.push(await createAlarm(server, publisher, "kim"));
  // stored[0..2] were dropped by the cap. An id the server still keeps replays normally.
  {
    await using stream = await openSse(server.url + SUBSCRIBE_PATH, {
      token: await server.userToken("kim"),
      lastEventId: stored[3].id,
    });
    assert.equal((await connectData(stream)).replay, undefined);
    await stream.waitFor((e) => e.event === "alarm", 2);
    assert.equal(await afterConnect(stream), [stored[4], stored[5]].map(alarmFrame).join(""));
  }
  // After stored[0], stored[1] and stored[2] are lost: replaying would hide the gap.
  await expectReset(server, "kim", stored[0].id);
  await expectReset(server, "kim", stored[1].id);
});

Deno.test("a Last-Event-ID of alarms removed by retention replays nothing and says reset", async () => {
  const dir = await Deno.makeTempDir({ prefix: "alarmd-retention-" });
  try {
    const start = Date.now();
    const old = [];
    {
      await using first = await startLiveServer({ retentionDays: 1 }, {
        clock: createFakeClock(start),
        dir,
      });
      const publisher = await first.publisherToken();
      old.push(
        await createAlarm(first, publisher, "kim"),
        await createAlarm(first, publisher, "kim"),
      );
    }
    // Two days later the same store starts again; its sweep removes both alarms.
    await using later = await startLiveServer({ retentionDays: 1 }, {
      clock: createFakeClock(start + 2 * 86_400_000),
      dir,
    });
    await waitUntil(
      () => later.logs.some((l) => l.msg === "expired alarms swept"),
      "the start-up sweep removed the expired alarms",
    );
    await expectReset(later, "kim", old[0].id);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("alarms created during a long replay arrive once each, in id order, after the replay", async () => {
  await using server = await startLiveServer({ maxAlarmsPerUser: 5000 });
  const publisher = await server.publisherToken();
  const stored = await createAlarms(server, publisher, "kim", 1200, { pad: "x".repeat(200) });

  await using stream = await openSse(server.url + SUBSCRIBE_PATH, {
    token: await server.userToken("kim"),
    lastEventId: stored[0].id,
  });
  const live = [];
  for (let i = 0; i < 40; i++) live.push(await createAlarm(server, publisher, "kim", { live: i }));
  const expected = [...stored.slice(1), ...live].map((a) => a.id);
  await stream.waitFor((e) => e.event === "alarm", expected.length, 10_000);
  await delay(50);
  const received = alarmIds(stream);
  assertStrictlyIncreasing(received, "alarm ids on one connection");
  assert.deepEqual(received, expected);
});

Deno.test("a replay larger than ALARMD_MAX_QUEUE_BYTES reaches a client that reads it", async () => {
  await using server = await startLiveServer({ maxAlarmsPerUser: 5000 });
  const publisher = await server.publisherToken();
  // About 2.4 MiB of alarms against the default 1 MiB queue limit.
  const stored = await createAlarms(server, publisher, "kim", 600, { blob: "x".repeat(4096) });

  await using stream = await openSse(server.url + SUBSCRIBE_PATH, {
    token: await server.userToken("kim"),
    lastEventId: stored[0].id,
  });
  assert.equal(stream.status, 200);
  let ended = false;
  void stream.ended.then(() => (ended = true));
  await waitUntil(
    () => ended || alarmIds(stream).length >= stored.length - 1,
    "the replay arrived or the stream ended",
  );
  const closed = server.logs.filter((l) => l.msg === "stream closed");
  assert.deepEqual(
    closed.map((l) => l.reason),
    [],
    `the server closed the stream after ${alarmIds(stream).length} of ${stored.length - 1} alarms`,
  );
  assert.deepEqual(alarmIds(stream), stored.slice(1).map((a) => a.id));
});

Deno.test("a ': ping' comment arrives within ALARMD_HEARTBEAT_MS of silence", async () => {
  const clock = createFakeClock();
  await using server = await startLiveServer({ heartbeatMs: 1000 }, { clock });
  await using stream = await openSse(server.url + SUBSCRIBE_PATH, {
    token: await server.userToken("kim"),
  });
  await connectData(stream);
  const opening = stream.text();
  await delay(50);
  assert.equal(stream.text(), opening, "nothing is sent while no time passes");

  clock.tick(1000);
  await stream.waitFor((e) => e.event === "comment", 1, 2000);
  assert.equal(stream.text(), opening + ": ping\n\n");

  clock.tick(1000);
  await stream.waitFor((e) => e.event === "comment", 2, 2000);
  assert.equal(stream.text(), opening + ": ping\n\n: ping\n\n");
});

Deno.test("streams opened together are pinged over a few ticks, not all in one", async () => {
  const clock = createFakeClock();
  // heartbeat 1,000 ms: a tick every 50 ms, at most 64 pings per tick for 200 streams.
  await using server = await startLiveServer({ heartbeatMs: 1000 }, { clock });
  const streams = await Promise.all(
    Array.from(
      { length: 200 },
      async (_, i) =>
        openSse(server.url + SUBSCRIBE_PATH, { token: await server.userToken(`wave-${i}`) }),
    ),
  );
  try {
    await Promise.all(streams.map(connectData));
    const pinged = async () => {
      await delay(300);
      return streams.filter((s) => s.events.some((e) => e.event === "comment")).length;
    };
    clock.tick(950);
    assert.equal(await pinged(), 64, "the first tick due pings 64");
    clock.tick(50);
    assert.equal(await pinged(), 128);
    clock.tick(100);
    assert.equal(await pinged(), 200, "every stream is pinged within two more ticks");
  } finally {
    await Promise.all(streams.map((s) => s.close()));
  }
});

Deno.test("after ALARMD_SSE_TIMEOUT_MS the server ends the stream cleanly", async () => {
  const clock = createFakeClock();
  // Fake time jumps while real writes take real time: no write may look stuck because of it.
  const noWriteTimeout = { writeTimeoutMs: 3_600_000 };
  await using server = await startLiveServer(
    { sseTimeoutMs: 60_000, heartbeatMs: 15_000, ...noWriteTimeout },
    { clock },
  );
  const res = await fetch(server.url + SUBSCRIBE_PATH, {
    headers: { authorization: `Bearer ${await server.userToken("kim")}` },
  });
  assert.equal(res.status, 200);
  const end = readToEnd(res);
  await waitUntil(() => server.server.connectionCount("kim") === 1, "the stream is open");

  await advance(clock, 59_000);
  await delay(50);
  assert.equal(server.server.connectionCount("kim"), 1, "still open before the timeout");

  await advance(clock, 1_000);
  const { text, clean } = await end;
  assert.ok(clean, "the stream ended with a normal end of body");
  assert.ok(text.startsWith("retry: 3000\nevent: connect\n"), text);
  assert.equal(server.server.connectionCount("kim"), 0);
  const closed = server.logs.filter((l) => l.msg === "stream closed");
  assert.deepEqual(closed.map((l) => l.reason), ["timeout"]);
});

Deno.test("a stream ends when its token expires", async () => {
  const clock = createFakeClock();
  await using server = await startLiveServer({ writeTimeoutMs: 3_600_000 }, { clock });
  const token = await server.userToken("kim", 90_000);
  const res = await fetch(server.url + SUBSCRIBE_PATH, {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(res.status, 200);
  const end = readToEnd(res);
  await waitUntil(() => server.server.connectionCount("kim") === 1, "the stream is open");

  await advance(clock, 85_000);
  await delay(50);
  assert.equal(server.server.connectionCount("kim"), 1, "still open while the token is valid");

  await advance(clock, 10_000);
  await end;
  assert.equal(server.server.connectionCount("kim"), 0);
  const closed = server.logs.filter((l) => l.msg === "stream closed");
  assert.deepEqual(closed.map((l) => l.reason), ["token_expired"]);
});

Deno.test("streams that clients abort leave no connection behind", async () => {
  await using server = await startLiveServer();
  const streams = [];
  for (const userId of ["kim", "kim", "kim", "lee", "lee", "lee"]) {
    streams.push(
      await openSse(server.url + SUBSCRIBE_PATH, { token: await server.userToken(userId) }),
    );
  }
  await Promise.all(streams.slice(0, 3).map(connectData));
  assert.equal(server.server.connectionCount(), 6);
  // Half abort after the opening frames, half possibly before them.
  await Promise.all(streams.map((s) => s.close()));
  await waitUntil(() => server.server.connectionCount() === 0, "every stream is gone", 2000);
  assert.equal(server.server.connectionCount("kim"), 0);
  assert.equal(server.server.connectionCount("lee"), 0);
  await waitUntil(
    () => server.logs.filter((l) => l.msg === "stream closed").length === 6,
    "six stream closed lines",
    2000,
  );
  for (const line of server.logs.filter((l) => l.msg === "stream closed")) {
    assert.equal(line.reason, "client_closed");
  }
});

async function expectTooManyConnections(res: Response, status: number) {
  const body = await res.text();
  assert.equal(res.status, status, body);
  assert.match(res.headers.get("content-type") ?? "", /^application\/json(;|$)/);
  const parsed = JSON.parse(body);
  assert.equal(parsed.error.code, "too_many_connections");
  assert.equal(typeof parsed.error.message, "string");
  const retryAfter = res.headers.get("retry-after");
  assert.match(retryAfter ?? "", /^[1-9][0-9]*$/, `Retry-After: ${retryAfter}`);
}

Deno.test("over ALARMD_MAX_CONNECTIONS_PER_USER a new stream gets 429 too_many_connections", async () => {
  await using server = await startLiveServer({ maxConnectionsPerUser: 2 });
  const kim = await server.userToken("kim");
  await using one = await openSse(server.url + SUBSCRIBE_PATH, { token: kim });
  await using two = await openSse(server.url + SUBSCRIBE_PATH, { token: kim });
  assert.equal(one.status, 200);
  assert.equal(two.status, 200);

  const refused = await fetch(server.url + SUBSCRIBE_PATH, {
    headers: { authorization: `Bearer ${kim}` },
  });
  await expectTooManyConnections(refused, 429);
  assert.equal(server.server.connectionCount("kim"), 2);
  // The open tabs are untouched.
  const alarm = await createAlarm(server, await server.publisherToken(), "kim");
  for (const tab of [one, two]) {
    const [event] = await tab.waitFor((e) => e.event === "alarm", 1);
    assert.equal(event.id, alarm.id);
  }

  // The cap is per user: another user still connects.
  await using lee = await openSse(server.url + SUBSCRIBE_PATH, {
    token: await server.userToken("lee"),
  });
  assert.equal(lee.status, 200);

  // Closing one tab frees its place.
  await one.close();
  await waitUntil(() => server.server.connectionCount("kim") === 1, "the closed tab is gone");
  await using three = await openSse(server.url + SUBSCRIBE_PATH, { token: kim });
  assert.equal(three.status, 200);
  await connectData(three);
});

Deno.test("when many tabs open at once, exactly ALARMD_MAX_CONNECTIONS_PER_USER get a stream", async () => {
  await using server = await startLiveServer({ maxConnectionsPerUser: 3 });
  const kim = await server.userToken("kim");
  const responses = await Promise.all(
    Array.from(
      { length: 8 },
      () => fetch(server.url + SUBSCRIBE_PATH, { headers: { authorization: `Bearer ${kim}` } }),
    ),
  );
  try {
    const statuses = responses.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 200, 200, 429, 429, 429, 429, 429]);
    assert.equal(server.server.connectionCount("kim"), 3);
  } finally {
    await Promise.all(responses.map((r) => r.body?.cancel()));
  }
  await waitUntil(() => server.server.connectionCount() === 0, "every stream is gone");
});

Deno.test("over ALARMD_MAX_CONNECTIONS a new stream gets 503 too_many_connections", async () => {
  await using server = await startLiveServer({ maxConnections: 2 });
  await using kim = await openSse(server.url + SUBSCRIBE_PATH, {
    token: await server.userToken("kim"),
  });
  await using lee = await openSse(server.url + SUBSCRIBE_PATH, {
    token: await server.userToken("lee"),
  });
  assert.equal(kim.status, 200);
  assert.equal(lee.status, 200);

  const ann = await server.userToken("ann");
  const refused = await fetch(server.url + SUBSCRIBE_PATH, {
    headers: { authorization: `Bearer ${ann}` },
  });
  await expectTooManyConnections(refused, 503);
  assert.equal(server.server.connectionCount(), 2);

  await kim.close();
  await waitUntil(() => server.server.connectionCount() === 1, "the closed stream is gone");
  await using again = await openSse(server.url + SUBSCRIBE_PATH, { token: ann });
  assert.equal(again.status, 200);
  await connectData(again);
});
