/**
 * One client's stream (src/domain/live_connection.ts) through its exported API alone, with a
 * fake store, a fake sink and a fake clock: no HTTP, no KV. What the client receives is compared
 * byte for byte with the frames the contract promises (tests/helpers/sse_frames.ts).
 */
import assert from "node:assert/strict";
import type { Alarm } from "../../src/domain/alarm.ts";
import type { CloseReason, LiveConnectionOptions } from "../../src/domain/live_connection.ts";
import { LiveConnection } from "../../src/domain/live_connection.ts";
import type { AlarmChange, AlarmStore, FrameSink, UserState } from "../../src/domain/ports.ts";
import { createFakeClock } from "../helpers/fake_clock.ts";
import type { FakeClock } from "../helpers/fake_clock.ts";
import { alarmFrame, changeFrame, PING } from "../helpers/sse_frames.ts";
import { delay, waitUntil } from "../helpers/wait.ts";

const START = 1_700_000_000_000;
const RETRY_MS = 2500;

/** The n-th id: a well-formed ULID, and ids sort as their n do. */
function id(n: number): string {
  return "01J0000000" + String(n).padStart(16, "0");
}

function alarm(n: number, data: Record<string, unknown> = { n }): Alarm {
  return {
    id: id(n),
    userId: "kim",
    type: "t",
    data,
    createdAt: new Date(START + n).toISOString(),
    readAt: null,
    notification: null,
  };
}

/** Lets every pending promise callback run (the fakes answer in microtasks). */
const settle = () => delay(0);

/**
 * The reads a stream makes of the store (userState, listAfter, get) over one user's alarms;
 * every other method fails the test. `gate` holds listAfter's answer (read when it was called)
 * until released, so that a test can act while a replay is under way.
 */
class FakeStore {
  readonly alarms: Alarm[] = [];
  lastId: string | null = null;
  prevId: string | null = null;
  floorId: string | null = null;
  /** Every listAfter call, as `[afterId, limit]`. */
  readonly reads: [string | null, number][] = [];
  /** Every get call, by id. */
  readonly gets: string[] = [];
  failUserState = false;
  failListAfter = false;
  #gate: PromiseWithResolvers<void> | null = null;

  /** Stores alarm n (as a commit would) and returns its `created` change. */
  add(n: number, data?: Record<string, unknown>): AlarmChange & { kind: "created" } {
    const stored = alarm(n, data);
    const prevId = this.lastId;
    this.alarms.push(stored);
    this.prevId = prevId;
    this.lastId = stored.id;
    return { kind: "created", alarm: stored, prevId };
  }

  /** From now on, listAfter answers only once `release` is called. */
  hold(): void {
    this.#gate = Promise.withResolvers<void>();
  }

  release(): void {
    this.#gate?.resolve();
    this.#gate = null;
  }

  readonly port: AlarmStore = {
    userState: (userId: string): Promise<UserState> => {
      assert.equal(userId, "kim");
      if (this.failUserState) return Promise.reject(new Error("KV is down"));
      return Promise.resolve({
        lastId: this.lastId,
        prevId: this.prevId,
        floorId: this.floorId,
        total: this.alarms.length,
        unread: this.alarms.filter((a) => a.readAt === null).length,
      });
    },
    listAfter: async (userId: string, afterId: string | null, limit: number) => {
      assert.equal(userId, "kim");
      this.reads.push([afterId, limit]);
      const page = this.alarms.filter((a) => afterId === null || a.id > afterId).slice(0, limit);
      const gate = this.#gate;
      if (gate) await gate.promise;
      if (this.failListAfter) throw new Error("KV is down");
      return page;
    },
    create: unexpected("create"),
    get: (userId: string, id: string) => {
      assert.equal(userId, "kim");
      this.gets.push(id);
      return Promise.resolve(this.alarms.find((a) => a.id === id) ?? null);
    },
    list: unexpected("list"),
    markRead: unexpected("markRead"),
    markAllRead: unexpected("markAllRead"),
    delete: unexpected("delete"),
    erase: unexpected("erase"),
    sweepExpired: unexpected("sweepExpired"),
    onChange: unexpected("onChange"),
    ping: unexpected("ping"),
    close: unexpected("close"),
  };
}

function unexpected(method: string) {
  return (): never => {
    throw new Error(`a live connection called store.${method}`);
  };
}

/**
 * A FrameSink that records every write. While `holding`, writes stay pending until released,
 * as they do for a client that does not read.
 */
class FakeSink implements FrameSink {
  readonly writes: string[] = [];
  closeCalls = 0;
  holding = false;
  failWrites = false;
  #pending: PromiseWithResolvers<void>[] = [];
  #onClose: (() => void) | null = null;
  #fired = false;

  write(chunk: string): Promise<void> {
    this.writes.push(chunk);
    if (this.failWrites) return Promise.reject(new Error("connection reset"));
    if (!this.holding) return Promise.resolve();
    const pending = Promise.withResolvers<void>();
    this.#pending.push(pending);
    return pending.promise;
  }

  close(): void {
    this.closeCalls++;
    this.#fire();
  }

  onClose(callback: () => void): void {
    this.#onClose = callback;
  }

  /** The client goes away: the transport reports it. */
  clientLeaves(): void {
    this.#fire();
  }

  /** Completes the oldest pending write. */
  releaseOne(): void {
    this.#pending.shift()?.resolve();
  }

  /** Stops holding and completes every pending write. */
  releaseAll(): void {
    this.holding = false;
    for (const pending of this.#pending.splice(0)) pending.resolve();
  }

  get pendingWrites(): number {
    return this.#pending.length;
  }

  text(): string {
    return this.writes.join("");
  }

  #fire(): void {
    if (this.#fired) return;
    this.#fired = true;
    this.#onClose?.();
  }
}

interface Harness {
  readonly connection: LiveConnection;
  readonly store: FakeStore;
  readonly sink: FakeSink;
  readonly clock: FakeClock;
  /** Every onClose call, in order. */
  readonly closes: CloseReason[];
  /** Every onAlarmSent call as `[id, replayed]`, in order. */
  readonly sent: [string, boolean][];
}

function open(
  options: Partial<LiveConnectionOptions> = {},
  setUp: { store?: FakeStore; sink?: FakeSink; clock?: FakeClock } = {},
): Harness {
  const store = setUp.store ?? new FakeStore();
  const sink = setUp.sink ?? new FakeSink();
  const clock = setUp.clock ?? createFakeClock(START);
  const closes: CloseReason[] = [];
  const sent: [string, boolean][] = [];
  const connection = new LiveConnection({
    id: "c-1",
    userId: "kim",
    sink,
    store: store.port,
    clock,
    lastEventId: null,
    retryMs: RETRY_MS,
    maxQueueBytes: 1 << 20,
    endsAt: START + 3_600_000,
    endReason: "timeout",
    onClose: (connection, reason) => {
      assert.equal(connection.id, "c-1");
      closes.push(reason);
    },
    onAlarmSent: (alarm, replayed) => sent.push([alarm.id, replayed]),
    ...options,
  });
  return { connection, store, sink, clock, closes, sent };
}

/** A store holding alarms 1..n. */
function storeWith(n: number): FakeStore {
  const store = new FakeStore();
  for (let i = 1; i <= n; i++) store.add(i);
  return store;
}

function connectFrame(fields: Record<string, unknown>): string {
  const data = { message: "connect complete", userId: "kim", connectionId: "c-1", ...fields };
  return `retry: ${RETRY_MS}\nevent: connect\ndata: ${JSON.stringify(data)}\n\n`;
}

/** What the client received after the connect frame. */
function afterConnect(sink: FakeSink): string {
  const text = sink.text();
  assert.ok(text.startsWith("retry: "), `the stream does not open with connect: ${text}`);
  return text.slice(text.indexOf("\n\n") + 2);
}

const frames = (...alarms: Alarm[]) => alarms.map(alarmFrame).join("");

// ---------------------------------------------------------------------------------------------
// opening

Deno.test("a new stream opens with the connect frame: retry, unread and head; nothing replayed", async () => {
  const { connection, store, sink, closes } = open({}, { store: storeWith(3) });
  await connection.start();
  await settle();
  assert.deepEqual(sink.writes, [
    `retry: 2500\nevent: connect\ndata: {"message":"connect complete","userId":"kim",` +
    `"connectionId":"c-1","unread":3,"lastId":"${id(3)}"}\n\n`,
  ]);
  assert.deepEqual(store.reads, [], "without Last-Event-ID nothing is read back");
  assert.deepEqual(closes, []);
  assert.equal(connection.closeReason, null);
  assert.equal(connection.queuedBytes, 0);
});

Deno.test("a user with no alarms gets unread 0 and lastId null", async () => {
  const { connection, sink } = open();
  await connection.start();
  await settle();
  assert.deepEqual(sink.writes, [connectFrame({ unread: 0, lastId: null })]);
});

Deno.test("the connection exposes what it was opened with, and when", () => {
  const clock = createFakeClock(START + 42);
  const { connection } = open(
    { id: "c-1", endsAt: START + 9_000, endReason: "token_expired" },
    { clock },
  );
  assert.equal(connection.id, "c-1");
  assert.equal(connection.userId, "kim");
  assert.equal(connection.openedAt, START + 42);
  assert.equal(connection.lastFrameAt, START + 42);
  assert.equal(connection.endsAt, START + 9_000);
  assert.equal(connection.endReason, "token_expired");
  assert.equal(connection.writingSince, null);
  assert.equal(connection.closeReason, null);
});

// ---------------------------------------------------------------------------------------------
// live

Deno.test("live alarms are written in order, once each, and reported as not replayed", async () => {
  const { connection, store, sink, sent } = open({}, { store: storeWith(3) });
  await connection.start();
  connection.deliver(store.add(4));
  connection.deliver(store.add(5));
  await settle();
  assert.equal(afterConnect(sink), frames(alarm(4), alarm(5)));
  assert.deepEqual(sent, [[id(4), false], [id(5), false]]);
});

Deno.test("an alarm at or below what the stream has covered is never written again", async () => {
  const { connection, store, sink, sent } = open({}, { store: storeWith(3) });
  await connection.start();
  connection.deliver({ kind: "created", alarm: alarm(3), prevId: id(2) });
  connection.deliver({ kind: "created", alarm: alarm(2), prevId: id(1) });
  const four = store.add(4);
  connection.deliver(four);
  connection.deliver(four);
  await settle();
  assert.equal(afterConnect(sink), frames(alarm(4)));
  assert.deepEqual(sent, [[id(4), false]]);
});

Deno.test("read and deleted changes are written with their ids and the unread count", async () => {
  const { connection, sink } = open({}, { store: storeWith(3) });
  await connection.start();
  connection.deliver({ kind: "read", userId: "kim", ids: [id(1), id(2)], unread: 1 });
  connection.deliver({ kind: "deleted", userId: "kim", ids: [id(3)], unread: 0 });
  await settle();
  assert.equal(
    afterConnect(sink),
    changeFrame("read", [id(1), id(2)], 1) + changeFrame("deleted", [id(3)], 0),
  );
  assert.equal(
    afterConnect(sink),
    `event: read\ndata: {"ids":["${id(1)}","${id(2)}"],"unread":1}\n\n` +
      `event: deleted\ndata: {"ids":["${id(3)}"],"unread":0}\n\n`,
  );
});

Deno.test("ping writes a heartbeat comment and moves lastFrameAt to now", async () => {
  const { connection, sink, clock } = open();
  await connection.start();
  await settle();
  clock.tick(15_000);
  assert.equal(connection.lastFrameAt, START, "the connect frame was the last one");
  connection.ping();
  await settle();
  assert.equal(afterConnect(sink), PING);
  assert.equal(connection.lastFrameAt, START + 15_000);
  clock.tick(1_000);
  connection.deliver({ kind: "read", userId: "kim", ids: [], unread: 0 });
  assert.equal(connection.lastFrameAt, START + 16_000, "any frame counts, not just pings");
});

// ---------------------------------------------------------------------------------------------
// replay after Last-Event-ID

Deno.test("Last-Event-ID replays what came after it, in order, then the stream goes live", async () => {
  const { connection, store, sink, sent } = open({ lastEventId: id(2) }, { store: storeWith(5) });
  await connection.start();
  await settle();
  assert.equal(sink.writes[0], connectFrame({ unread: 5, lastId: id(5) }), "no replay: reset");
  assert.equal(afterConnect(sink), frames(alarm(3), alarm(4), alarm(5)));
  assert.equal(store.reads[0][0], id(2), "the replay reads after the client's last id");
  connection.deliver(store.add(6));
  await settle();
  assert.equal(afterConnect(sink), frames(alarm(3), alarm(4), alarm(5), alarm(6)));
  assert.deepEqual(sent, [[id(3), true], [id(4), true], [id(5), true], [id(6), false]]);
});

Deno.test("Last-Event-ID one alarm behind sends that alarm, read by its id, then goes live", async () => {
  const { connection, store, sink, sent } = open({ lastEventId: id(4) }, { store: storeWith(5) });
  await connection.start();
  await settle();
  assert.equal(afterConnect(sink), frames(alarm(5)));
  assert.deepEqual(store.gets, [id(5)]);
  assert.deepEqual(store.reads, [], "no page is listed");
  connection.deliver(store.add(6));
  await settle();
  assert.equal(afterConnect(sink), frames(alarm(5), alarm(6)));
  assert.deepEqual(sent, [[id(5), true], [id(6), false]]);
});

Deno.test("one alarm behind whose alarm is gone (deleted, expired) reads a page instead", async () => {
  const store = storeWith(5);
  store.alarms.splice(4, 1);
  const { connection, sink } = open({ lastEventId: id(4) }, { store });
  await connection.start();
  await settle();
  assert.equal(afterConnect(sink), "");
  assert.deepEqual(store.gets, [id(5)]);
  assert.deepEqual(store.reads.map(([after]) => after), [id(4)]);
  connection.deliver(store.add(6));
  await settle();
  assert.equal(afterConnect(sink), frames(alarm(6)));
});

Deno.test("Last-Event-ID at the head replays nothing and is no reset", async () => {
  const { connection, store, sink, sent } = open({ lastEventId: id(3) }, { store: storeWith(3) });
  await connection.start();
  await settle();
  assert.deepEqual(sink.writes, [connectFrame({ unread: 3, lastId: id(3) })]);
  connection.deliver(store.add(4));
  await settle();
  assert.equal(afterConnect(sink), frames(alarm(4)));
  assert.deepEqual(sent, [[id(4), false]]);
});

Deno.test("a Last-Event-ID the store cannot resume from is a reset: said in connect, nothing replayed, live from the head", async () => {
  const cases: { what: string; lastEventId: string; floor?: number; alarms?: number }[] = [
    { what: "not an id", lastEventId: "garbage" },
    { what: "lower-case id", lastEventId: id(2).toLowerCase() },
    { what: "from the future", lastEventId: id(99) },
    { what: "below the floor (history dropped)", lastEventId: id(1), floor: 2 },
    { what: "a user with no alarms", lastEventId: id(1), alarms: 0 },
  ];
  for (const { what, lastEventId, floor, alarms = 3 } of cases) {
    const store = storeWith(alarms);
    if (floor !== undefined) store.floorId = id(floor);
    const { connection, sink } = open({ lastEventId }, { store });
    await connection.start();
    await settle();
    const head = alarms === 0 ? null : id(alarms);
    assert.deepEqual(
      sink.writes,
      [connectFrame({ unread: alarms, lastId: head, replay: "reset" })],
      what,
    );
    assert.deepEqual(store.reads, [], `${what}: nothing is replayed`);
    if (alarms > 0) connection.deliver({ kind: "created", alarm: alarm(alarms), prevId: null });
    connection.deliver(store.add(alarms + 1));
    await settle();
    assert.equal(afterConnect(sink), frames(alarm(alarms + 1)), what);
  }
});

Deno.test("Last-Event-ID at the floor itself still resumes", async () => {
  const store = storeWith(4);
  store.floorId = id(2);
  const { connection, sink } = open({ lastEventId: id(2) }, { store });
  await connection.start();
  await settle();
  assert.equal(sink.writes[0], connectFrame({ unread: 4, lastId: id(4) }));
  assert.equal(afterConnect(sink), frames(alarm(3), alarm(4)));
});

Deno.test("changes that arrive during the replay follow it, in arrival order, without repeats", async () => {
  const store = storeWith(3);
  store.hold();
  const { connection, sink, sent } = open({ lastEventId: id(1) }, { store });
  const started = connection.start();
  await waitUntil(() => store.reads.length === 1, "the replay reads the store");
  // The replay's page (alarms 2 and 3) is read; these land while it is under way.
  connection.deliver(store.add(4));
  connection.deliver({ kind: "read", userId: "kim", ids: [id(2)], unread: 3 });
  connection.deliver({ kind: "created", alarm: alarm(3), prevId: id(2) });
  connection.deliver(store.add(5));
  await settle();
  assert.equal(afterConnect(sink), "", "nothing is written before the replay");
  store.release();
  await started;
  await settle();
  assert.equal(
    afterConnect(sink),
    frames(alarm(2), alarm(3), alarm(4)) + changeFrame("read", [id(2)], 3) + frames(alarm(5)),
  );
  assert.deepEqual(sent, [[id(2), true], [id(3), true], [id(4), false], [id(5), false]]);
});

// ---------------------------------------------------------------------------------------------
// gaps and resync

Deno.test("a live alarm whose previous id was never sent makes the stream catch up from the store, in order", async () => {
  const { connection, store, sink, sent } = open({}, { store: storeWith(3) });
  await connection.start();
  store.add(4); // this instance never heard of 4 and 5 (another instance's changes, lost)
  store.add(5);
  connection.deliver(store.add(6));
  await settle();
  assert.equal(afterConnect(sink), frames(alarm(4), alarm(5), alarm(6)));
  assert.equal(store.reads[0][0], id(3), "the catch-up reads after the last id sent");
  connection.deliver(store.add(7));
  connection.deliver({ kind: "created", alarm: alarm(5), prevId: id(4) });
  await settle();
  assert.equal(afterConnect(sink), frames(alarm(4), alarm(5), alarm(6), alarm(7)));
  assert.deepEqual(sent.map(([id]) => id), [id(4), id(5), id(6), id(7)]);
  assert.ok(sent.every(([, replayed]) => !replayed), "a catch-up is not a replay");
});

Deno.test("resync() sends what the store has beyond what was sent, and only that", async () => {
  const { connection, store, sink } = open({}, { store: storeWith(2) });
  await connection.start();
  store.add(3);
  store.add(4);
  connection.resync();
  await settle();
  assert.equal(afterConnect(sink), frames(alarm(3), alarm(4)));
  connection.resync();
  await settle();
  assert.equal(afterConnect(sink), frames(alarm(3), alarm(4)), "a second resync repeats nothing");
  connection.deliver({ kind: "created", alarm: alarm(4), prevId: id(3) });
  connection.deliver(store.add(5));
  await settle();
  assert.equal(afterConnect(sink), frames(alarm(3), alarm(4), alarm(5)));
});

Deno.test("resync() during a replay reads the store once more after it", async () => {
  const store = storeWith(3);
  store.hold();
  const { connection, sink } = open({ lastEventId: id(1) }, { store });
  const started = connection.start();
  await waitUntil(() => store.reads.length === 1, "the replay reads the store");
  store.add(4); // committed, its change lost: only the store has it
  connection.resync();
  store.release();
  await started;
  await settle();
  assert.equal(afterConnect(sink), frames(alarm(2), alarm(3), alarm(4)));
});

// ---------------------------------------------------------------------------------------------
// the queue: pacing, backpressure, limits

Deno.test("writingSince is when the write in flight started, and null once it completes", async () => {
  const sink = new FakeSink();
  sink.holding = true;
  const { connection, clock } = open({}, { sink });
  await connection.start();
  assert.equal(sink.pendingWrites, 1);
  assert.equal(connection.writingSince, START);
  clock.tick(7_000);
  assert.equal(connection.writingSince, START, "a hanging write keeps its start time");
  sink.releaseAll();
  await settle();
  assert.equal(connection.writingSince, null);
});

Deno.test("frames queued behind a slow write go out together in the next write", async () => {
  const sink = new FakeSink();
  sink.holding = true;
  const { connection, store } = open({}, { sink, store: storeWith(3) });
  await connection.start();
  const connect = sink.writes[0];
  for (const n of [4, 5, 6]) connection.deliver(store.add(n));
  connection.ping();
  await settle();
  assert.equal(sink.writes.length, 1, "one write at a time");
  const queued = frames(alarm(4), alarm(5), alarm(6)) + PING;
  assert.equal(connection.queuedBytes, connect.length + queued.length);
  sink.releaseOne();
  await settle();
  assert.deepEqual(sink.writes, [connect, queued]);
  sink.releaseAll();
  await settle();
  assert.equal(connection.queuedBytes, 0);
  assert.equal(connection.writingSince, null);
});

Deno.test("a backlog is written in pieces of at most 64 KiB, in order", async () => {
  const sink = new FakeSink();
  sink.holding = true;
  const { connection, store } = open({}, { sink });
  await connection.start();
  const alarms: Alarm[] = [];
  for (let n = 1; n <= 40; n++) {
    connection.deliver(store.add(n, { blob: "x".repeat(5000) }));
    alarms.push(alarm(n, { blob: "x".repeat(5000) }));
  }
  sink.releaseAll();
  await settle();
  const [, ...backlog] = sink.writes;
  assert.equal(backlog.join(""), frames(...alarms));
  assert.ok(backlog.length >= 4, `${backlog.length} writes for ${frames(...alarms).length} bytes`);
  for (const chunk of backlog) assert.ok(chunk.length <= 64 * 1024, `a write of ${chunk.length}`);
  for (const chunk of backlog) assert.ok(chunk.endsWith("\n\n"), "a write ends on a frame");
});

Deno.test("a client that stops reading is dropped as slow_client once its queue passes maxQueueBytes", async () => {
  const sink = new FakeSink();
  sink.holding = true;
  const maxQueueBytes = 8 * 1024;
  const { connection, store, closes, sent } = open({ maxQueueBytes }, { sink });
  await connection.start();
  const connect = sink.writes[0];
  const frame = alarmFrame(alarm(1, { blob: "x".repeat(900) })).length;
  // The write in flight counts: the cap is on everything handed over and not yet accepted.
  const fitting = Math.floor((maxQueueBytes - connect.length) / frame);
  for (let n = 1; n <= fitting; n++) connection.deliver(store.add(n, { blob: "x".repeat(900) }));
  assert.equal(connection.closeReason, null);
  assert.equal(connection.queuedBytes, connect.length + fitting * frame);
  connection.deliver(store.add(fitting + 1, { blob: "x".repeat(900) }));
  assert.equal(connection.closeReason, "slow_client");
  assert.deepEqual(closes, ["slow_client"]);
  assert.equal(sink.closeCalls, 1);
  assert.equal(sent.length, fitting, "the alarm that did not fit is not counted as sent");
  await connection.closed;
  sink.releaseAll();
  await settle();
  assert.deepEqual(sink.writes, [connect], "nothing queued is written after the drop");
});

Deno.test("a replay is paced by the client: history waits in at most half the queue, and a reader gets all of it once, in order", async () => {
  const store = new FakeStore();
  const data = { blob: "x".repeat(1000) };
  for (let n = 1; n <= 300; n++) store.add(n, data);
  const sink = new FakeSink();
  sink.holding = true;
  const maxQueueBytes = 64 * 1024;
  const { connection, sent } = open({ lastEventId: id(0), maxQueueBytes }, { store, sink });
  const started = connection.start();
  await settle();
  assert.equal(connection.closeReason, null, "history never trips the slow-client cap");
  assert.ok(sent.length > 0 && sent.length < 300, `${sent.length} replayed before a stall`);
  assert.ok(
    connection.queuedBytes <= maxQueueBytes / 2,
    `${connection.queuedBytes} bytes queued for a client that does not read`,
  );
  const stalledAt = sent.length;
  await settle();
  assert.equal(sent.length, stalledAt, "the replay waits for the client");

  sink.releaseAll();
  await started;
  await settle();
  assert.equal(connection.closeReason, null);
  assert.equal(afterConnect(sink), frames(...store.alarms));
  assert.deepEqual(sent, store.alarms.map((a) => [a.id, true]));
  assert.equal(connection.queuedBytes, 0);
});

Deno.test("a replay of 1,000 small alarms reads two full pages and stops at the head it opened with", async () => {
  const { connection, store, sink } = open({ lastEventId: id(0) }, { store: storeWith(1000) });
  await connection.start();
  await settle();
  assert.equal(afterConnect(sink), frames(...store.alarms));
  assert.deepEqual(store.reads, [[id(0), 500], [id(500), 500]], "no empty page past the head");
});

Deno.test("live alarms during a stalled replay are let go past the queue's share and come from the store after it, in order", async () => {
  const store = new FakeStore();
  const data = { blob: "x".repeat(1000) };
  for (let n = 1; n <= 100; n++) store.add(n, data);
  const sink = new FakeSink();
  sink.holding = true;
  const { connection } = open({ lastEventId: id(0), maxQueueBytes: 64 * 1024 }, { store, sink });
  const started = connection.start();
  await settle();
  for (let n = 101; n <= 150; n++) {
    connection.deliver(store.add(n, data));
    connection.deliver({ kind: "read", userId: "kim", ids: [id(n - 100)], unread: 149 });
  }
  assert.equal(connection.closeReason, null);
  sink.releaseAll();
  await started;
  await waitUntil(() => afterConnect(sink).includes(`id: ${id(150)}\n`), "alarm 150 is sent");
  await settle();
  const received = afterConnect(sink);
  const alarmIds = [...received.matchAll(/^id: (\S+)$/gm)].map((m) => m[1]);
  assert.deepEqual(alarmIds, store.alarms.map((a) => a.id), "every alarm once, in order");
  const reads = [...received.matchAll(/^event: read$/gm)].length;
  assert.equal(reads, 50, "no read change is lost");
  assert.equal(connection.closeReason, null);
});

Deno.test("more than 10,000 changes held during a replay drop the client as slow_client", async () => {
  const store = storeWith(3);
  store.hold();
  const { connection, closes } = open({ lastEventId: id(1) }, { store });
  const started = connection.start();
  await waitUntil(() => store.reads.length === 1, "the replay reads the store");
  const read = { kind: "read", userId: "kim", ids: [id(1)], unread: 1 } as const;
  for (let i = 0; i < 10_000; i++) connection.deliver(read);
  assert.equal(connection.closeReason, null, "10,000 changes are held");
  connection.deliver(read);
  assert.equal(connection.closeReason, "slow_client");
  assert.deepEqual(closes, ["slow_client"]);
  store.release();
  await started;
});

// ---------------------------------------------------------------------------------------------
// the end of a stream

Deno.test("close(reason) ends the sink, reports the reason once, resolves closed, and writes nothing more", async () => {
  const { connection, store, sink, closes } = open({}, { store: storeWith(2) });
  await connection.start();
  await settle();
  const before = [...sink.writes];
  connection.close("shutdown");
  assert.equal(connection.closeReason, "shutdown");
  assert.deepEqual(closes, ["shutdown"], "the sink's own close callback is no second report");
  assert.equal(sink.closeCalls, 1);
  await connection.closed;

  connection.close("timeout");
  connection.deliver(store.add(3));
  connection.deliver({ kind: "deleted", userId: "kim", ids: [id(1)], unread: 1 });
  connection.ping();
  connection.resync();
  await settle();
  assert.equal(connection.closeReason, "shutdown", "the first reason stands");
  assert.deepEqual(closes, ["shutdown"]);
  assert.deepEqual(sink.writes, before);
  assert.deepEqual(store.reads, [], "a closed stream reads nothing");
});

Deno.test("the client leaving ends the stream as client_closed", async () => {
  const { connection, sink, closes } = open();
  await connection.start();
  sink.clientLeaves();
  assert.equal(connection.closeReason, "client_closed");
  assert.deepEqual(closes, ["client_closed"]);
  assert.equal(sink.closeCalls, 1, "the connection still ends the response");
  await connection.closed;
});

Deno.test("a write that fails ends the stream as client_closed", async () => {
  const sink = new FakeSink();
  sink.failWrites = true;
  const { connection, closes } = open({}, { sink });
  await connection.start();
  await settle();
  assert.equal(connection.closeReason, "client_closed");
  assert.deepEqual(closes, ["client_closed"]);
  assert.equal(sink.writes.length, 1);
});

Deno.test("closing during a stalled replay ends it: no more pages are read", async () => {
  const store = new FakeStore();
  for (let n = 1; n <= 300; n++) store.add(n, { blob: "x".repeat(1000) });
  const sink = new FakeSink();
  sink.holding = true;
  const { connection, closes } = open({ lastEventId: id(0), maxQueueBytes: 64 * 1024 }, {
    store,
    sink,
  });
  const started = connection.start();
  await settle();
  const reads = store.reads.length;
  const writes = sink.writes.length;
  connection.close("write_timeout");
  await started;
  sink.releaseAll();
  await settle();
  assert.deepEqual(closes, ["write_timeout"]);
  assert.equal(store.reads.length, reads);
  assert.equal(sink.writes.length, writes);
});

Deno.test("a store that fails when the stream starts ends it as storage_unavailable, with nothing written", async () => {
  const store = storeWith(1);
  store.failUserState = true;
  const { connection, sink, closes } = open({}, { store });
  await connection.start();
  assert.equal(connection.closeReason, "storage_unavailable");
  assert.deepEqual(closes, ["storage_unavailable"]);
  assert.deepEqual(sink.writes, []);
  await connection.closed;
});

Deno.test("a store that fails during a replay or a catch-up ends the stream as storage_unavailable", async () => {
  const replaying = storeWith(3);
  replaying.failListAfter = true;
  const first = open({ lastEventId: id(1) }, { store: replaying });
  await first.connection.start();
  assert.deepEqual(first.closes, ["storage_unavailable"]);

  const catchingUp = storeWith(3);
  const second = open({}, { store: catchingUp });
  await second.connection.start();
  catchingUp.failListAfter = true;
  catchingUp.add(4);
  second.connection.deliver(catchingUp.add(5));
  await settle();
  assert.deepEqual(second.closes, ["storage_unavailable"]);
  await second.connection.closed;
});
