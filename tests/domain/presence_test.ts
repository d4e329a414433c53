/**
 * The presence mirror and the members that share it, on a fake clock and an in-memory channel
 * whose deliveries the test drives: deltas, snapshots, expiry after 30 s of silence, and every
 * state in which presence is unknown.
 */
import assert from "node:assert/strict";
import { UnavailableError } from "../../src/domain/errors.ts";
import type { CountedStream } from "../../src/domain/live_counts.ts";
import { LiveCounts } from "../../src/domain/live_counts.ts";
import type { PresenceChannel, PresenceMessage } from "../../src/domain/presence.ts";
import { presenceMessageProblem, userHash } from "../../src/domain/presence.ts";
import { PresenceMirror } from "../../src/domain/presence_mirror.ts";
import type { SharedPresence } from "../../src/domain/shared_presence.ts";
import { createSharedPresence } from "../../src/domain/shared_presence.ts";
import type { FakeClock } from "../helpers/fake_clock.ts";
import { createFakeClock } from "../helpers/fake_clock.ts";

interface FakeChannel extends PresenceChannel {
  setUp(up: boolean): void;
  /** Its messages stop going anywhere, and nothing reaches it: a crash (no `bye`). */
  crash(): void;
}

/** Members on one in-memory channel; messages wait until `deliver`, which may drop some. */
function createNetwork() {
  const channels: FakeChannel[] = [];
  let queue: { from: FakeChannel; message: PresenceMessage }[] = [];
  const listeners = new Map<FakeChannel, ((m: PresenceMessage) => void)[]>();
  return {
    /** Every message sent so far, in order. */
    sent: [] as PresenceMessage[],
    channel(): FakeChannel {
      let up = true;
      let crashed = false;
      const states: ((up: boolean) => void)[] = [];
      const channel: FakeChannel = {
        send: (message) => {
          this.sent.push(message);
          if (up && !crashed) queue.push({ from: channel, message: structuredClone(message) });
        },
        onMessage(listener) {
          listeners.get(channel)!.push(listener);
          return () => listeners.set(channel, []);
        },
        onState(listener) {
          states.push(listener);
          return () => states.splice(0);
        },
        get up() {
          return up && !crashed;
        },
        close: () => {
          channels.splice(channels.indexOf(channel), 1);
          return Promise.resolve();
        },
        setUp(value) {
          up = value;
          for (const listener of states) listener(value);
        },
        crash() {
          crashed = true;
        },
      };
      channels.push(channel);
      listeners.set(channel, []);
      return channel;
    },
    /** Delivers what is queued (and what that causes) except messages `drop` refuses. */
    deliver(drop: (m: PresenceMessage) => boolean = () => false) {
      while (queue.length > 0) {
        const batch = queue;
        queue = [];
        for (const { from, message } of batch) {
          if (drop(message)) continue;
          for (const to of channels) {
            if (to === from || !to.up) continue;
            for (const listener of listeners.get(to)!) listener(message);
          }
        }
      }
    },
  };
}

type Network = ReturnType<typeof createNetwork>;

/** A stream the counts see; `writingSince` set means its write is pending since then. */
const stream = (userId: string): CountedStream & { writingSince: number | null } => ({
  userId,
  writingSince: null,
});

interface Member {
  readonly presence: SharedPresence;
  readonly counts: LiveCounts;
  readonly channel: FakeChannel;
  /** Opens `n` streams for `userId`; returns them. */
  open(userId: string, n?: number): CountedStream[];
}

function member(network: Network, clock: FakeClock, name: string): Member {
  const counts = new LiveCounts(30_000);
  const channel = network.channel();
  const presence = createSharedPresence({ channel, local: counts, clock, memberId: name });
  return {
    presence,
    counts,
    channel,
    open(userId, n = 1) {
      const opened = Array.from({ length: n }, () => stream(userId));
      for (const s of opened) counts.opened(s);
      return opened;
    },
  };
}

/** Lets time pass in small steps, delivering what is sent on the way. */
function run(network: Network, clock: FakeClock, ms: number, step = 10) {
  for (let t = 0; t < ms; t += step) {
    network.deliver();
    clock.tick(step);
  }
  network.deliver();
}

async function closeAll(...members: Member[]) {
  for (const m of members) await m.presence.close();
}

Deno.test("a member counts another member's streams once both have warmed up, and follows its deltas", async () => {
  const clock = createFakeClock(0);
  const network = createNetwork();
  const a = member(network, clock, "a");
  const b = member(network, clock, "b");
  try {
    b.open("kim", 2);
    // Warm-up: the others' snapshots may still be on their way.
    assert.equal(a.presence.known(), false);
    assert.equal(a.presence.online("kim"), null);
    assert.throws(() => a.presence.connections(["kim"]), UnavailableError);
    run(network, clock, 2_000);
    assert.equal(a.presence.known(), true);
    assert.deepEqual(a.presence.connections(["kim", "lee"]), [2, 0]);
    assert.equal(a.presence.online("kim"), true);
    assert.equal(a.presence.online("lee"), false);

    const [lee] = a.open("lee");
    run(network, clock, 100);
    assert.deepEqual(b.presence.connections(["lee", "kim"]), [1, 2]);
    a.counts.closed(lee);
    run(network, clock, 100);
    assert.deepEqual(b.presence.connections(["lee"]), [0]);
    assert.deepEqual(a.presence.connections(["kim", "kim"]), [2, 2], "asked twice, answered twice");
  } finally {
    await closeAll(a, b);
  }
});

Deno.test("a member that joins later gets the others' counts by asking for their snapshots", async () => {
  const clock = createFakeClock(0);
  const network = createNetwork();
  const a = member(network, clock, "a");
  const b = member(network, clock, "b");
  let c: Member | null = null;
  try {
    b.open("kim", 3);
    a.open("lee");
    run(network, clock, 5_000);
    c = member(network, clock, "c");
    c.open("max");
    run(network, clock, 2_000);
    assert.deepEqual(c.presence.connections(["kim", "lee", "max"]), [3, 1, 1]);
    assert.deepEqual(a.presence.connections(["kim", "lee", "max"]), [3, 1, 1]);
    assert.equal(a.presence.members(), 2);
  } finally {
    await closeAll(a, b, ...(c ? [c] : []));
  }
});

Deno.test("a crashed member's streams stop counting within 30 s of its last message, and not before 20 s", async () => {
  const clock = createFakeClock(0);
  const network = createNetwork();
  const a = member(network, clock, "a");
  const b = member(network, clock, "b");
  try {
    b.open("kim");
    run(network, clock, 10_500); // past b's first `alive`
    const lastFromB = network.sent.filter((m) => m.from === "b").at(-1)!;
    assert.equal(lastFromB.kind, "alive");
    b.channel.crash();
    run(network, clock, 20_000, 100);
    assert.deepEqual(a.presence.connections(["kim"]), [1], "b may just be quiet: 2 alives missed");
    run(network, clock, 9_500, 100);
    assert.deepEqual(a.presence.connections(["kim"]), [0]);
    assert.equal(a.presence.online("kim"), false);
    assert.equal(a.presence.members(), 0);
  } finally {
    await closeAll(a, b);
  }
});

Deno.test("a member that shuts down says bye: its streams stop counting at once", async () => {
  const clock = createFakeClock(0);
  const network = createNetwork();
  const a = member(network, clock, "a");
  const b = member(network, clock, "b");
  try {
    b.open("kim");
    run(network, clock, 2_000);
    assert.equal(a.presence.online("kim"), true);
    await b.presence.close();
    network.deliver();
    assert.equal(a.presence.online("kim"), false);
    assert.equal(a.presence.members(), 0);
  } finally {
    await closeAll(a, b);
  }
});

Deno.test("while the channel is down presence is unknown, except for this member's own streams", async () => {
  const clock = createFakeClock(0);
  const network = createNetwork();
  const a = member(network, clock, "a");
  const b = member(network, clock, "b");
  try {
    b.open("kim");
    a.open("lee");
    run(network, clock, 2_000);
    a.channel.setUp(false);
    assert.equal(a.presence.known(), false);
    assert.equal(a.presence.online("kim"), null);
    assert.equal(a.presence.online("lee"), true, "a live stream here is known without the channel");
    assert.throws(
      () => a.presence.connections(["lee"]),
      (e: unknown) => e instanceof UnavailableError && /down/.test(e.message),
    );
    // Changes while it is down reach the others with the snapshot a sends when it is back.
    a.open("max");
    b.open("kim");
    run(network, clock, 1_000);
    a.channel.setUp(true);
    assert.equal(a.presence.known(), false, "warming up again");
    run(network, clock, 2_000);
    assert.deepEqual(a.presence.connections(["kim", "lee", "max"]), [2, 1, 1]);
    assert.deepEqual(b.presence.connections(["kim", "lee", "max"]), [2, 1, 1]);
  } finally {
    await closeAll(a, b);
  }
});

Deno.test("a lost message makes the sender's counts unknown until a new snapshot arrives", async () => {
  const clock = createFakeClock(0);
  const network = createNetwork();
  const a = member(network, clock, "a");
  const b = member(network, clock, "b");
  try {
    run(network, clock, 2_000);
    b.open("kim");
    clock.tick(20);
    network.deliver((m) => m.kind === "delta" && m.from === "b"); // lost
    assert.deepEqual(a.presence.connections(["kim"]), [0], "a cannot know it missed something yet");
    b.open("lee");
    clock.tick(20);
    network.deliver((m) => m.kind === "snapshot"); // the gap shows; a asks, the answer is held
    assert.equal(a.presence.known(), false);
    assert.equal(a.presence.online("kim"), null);
    assert.throws(() => a.presence.connections(["kim"]), UnavailableError);
    assert.ok(network.sent.some((m) => m.kind === "ask" && m.from === "a" && m.to === "b"));
    run(network, clock, 100);
    assert.deepEqual(a.presence.connections(["kim", "lee"]), [1, 1]);
  } finally {
    await closeAll(a, b);
  }
});

Deno.test("a snapshot of many users goes out in parts; a missing part leaves the sender unsynced", async () => {
  const clock = createFakeClock(0);
  const network = createNetwork();
  const b = member(network, clock, "b");
  let a: Member | null = null;
  try {
    for (let i = 0; i < 2_500; i++) b.open(`user-${i}`);
    run(network, clock, 3_000);
    a = member(network, clock, "a");
    network.deliver(); // a's joining snapshot asks b for its own
    clock.tick(20);
    network.deliver((m) => m.kind === "snapshot" && m.from === "b" && m.part === 1);
    const parts = network.sent.filter((m) => m.kind === "snapshot" && m.from === "b" && !m.ask);
    assert.deepEqual(parts.map((m) => m.kind === "snapshot" && m.users.length), [
      1_000,
      1_000,
      500,
    ]);
    assert.equal(a.presence.known(), false);
    run(network, clock, 2_000);
    const asked = Array.from({ length: 2_500 }, (_, i) => `user-${i}`);
    assert.ok(a.presence.connections(asked).every((n) => n === 1));
  } finally {
    await closeAll(b, ...(a ? [a] : []));
  }
});

Deno.test("the mirror ignores its own, repeated and replayed messages, and resyncs on a digest that differs", () => {
  const mirror = new PresenceMirror("me");
  const at = 1_000;
  const snapshot: PresenceMessage = {
    kind: "snapshot",
    from: "b",
    seq: 0,
    every: 10_000,
    part: 0,
    parts: 1,
    ask: true,
    users: [["kim", 2]],
  };
  assert.deepEqual(mirror.receive({ ...snapshot, from: "me" }, at), { ask: false, answer: false });
  assert.equal(mirror.members, 0);
  assert.deepEqual(mirror.receive(snapshot, at), { ask: false, answer: true });
  assert.equal(mirror.count("kim"), 2);
  mirror.receive({ kind: "delta", from: "b", seq: 1, users: [["kim", 3]] }, at);
  mirror.receive({ kind: "delta", from: "b", seq: 1, users: [["kim", 9]] }, at);
  mirror.receive({ kind: "delta", from: "b", seq: 0, users: [["kim", 9]] }, at);
  assert.equal(mirror.count("kim"), 3, "a repeated or replayed sequence number changes nothing");
  const digest = Math.imul(userHash("kim"), 3) >>> 0;
  mirror.receive({ kind: "alive", from: "b", seq: 2, every: 10_000, total: 3, digest }, at);
  assert.equal(mirror.unsynced, 0);
  const drifted = mirror.receive(
    { kind: "alive", from: "b", seq: 3, every: 10_000, total: 3, digest: digest + 1 },
    at,
  );
  assert.deepEqual(drifted, { ask: true, answer: false });
  assert.equal(mirror.unsynced, 1);
  assert.equal(mirror.count("kim"), 0);
  // Asked once per alive interval, not on every message.
  const again = mirror.receive({ kind: "delta", from: "b", seq: 4, users: [["kim", 1]] }, at + 1);
  assert.deepEqual(again, { ask: false, answer: false });
  mirror.receive({ ...snapshot, seq: 5, ask: false, users: [["kim", 1], ["lee", 4]] }, at + 2);
  assert.equal(mirror.unsynced, 0);
  assert.deepEqual([mirror.count("kim"), mirror.count("lee")], [1, 4]);
  assert.equal(mirror.expire(at + 2 + 28_999), 0);
  assert.equal(mirror.expire(at + 2 + 29_000), 1, "silent for 3 intervals less a margin");
  assert.equal(mirror.count("lee"), 0);
});

Deno.test("a member with a short alive interval is dropped after three of them", () => {
  const mirror = new PresenceMirror("me");
  mirror.receive({ kind: "alive", from: "b", seq: 0, every: 200, total: 0, digest: 0 }, 0);
  assert.equal(mirror.members, 1);
  assert.equal(mirror.expire(549), 0);
  assert.equal(mirror.expire(550), 1);
});

Deno.test("live counts leave out a stream whose write has been pending too long, until it completes", () => {
  const counts = new LiveCounts(1_000);
  const changes: string[] = [];
  counts.onChange((userId, count, previous) => changes.push(`${userId} ${previous}→${count}`));
  const first = stream("kim");
  const second = stream("kim");
  counts.opened(first);
  counts.opened(second);
  first.writingSince = 5_000;
  counts.check(first, 5_999);
  assert.equal(counts.countOf("kim"), 2);
  counts.check(first, 6_000);
  assert.equal(counts.countOf("kim"), 1);
  counts.check(first, 7_000);
  assert.equal(counts.countOf("kim"), 1, "counted out once");
  first.writingSince = null;
  counts.check(first, 7_100);
  assert.equal(counts.countOf("kim"), 2);
  second.writingSince = 0;
  counts.check(second, 2_000);
  counts.closed(second); // closed while stalled: already counted out
  counts.closed(first);
  assert.equal(counts.countOf("kim"), 0);
  assert.deepEqual([...counts.entries()], []);
  assert.deepEqual(changes, ["kim 0→1", "kim 1→2", "kim 2→1", "kim 1→2", "kim 2→1", "kim 1→0"]);
});

Deno.test("presence messages are checked before a member sees them", () => {
  const ok: PresenceMessage[] = [
    { kind: "delta", from: "m", seq: 0, users: [["kim", 0]] },
    { kind: "alive", from: "m", seq: 1, every: 20, total: 0, digest: 4294967295 },
    { kind: "ask", from: "m", seq: 2, to: "n" },
    { kind: "bye", from: "m", seq: 3 },
    {
      kind: "snapshot",
      from: "m",
      seq: 4,
      every: 10_000,
      part: 1,
      parts: 2,
      ask: false,
      users: [],
    },
  ];
  for (const message of ok) assert.equal(presenceMessageProblem(message), null, message.kind);
  const bad: [unknown, RegExp][] = [
    [null, /object/],
    [{ kind: "delta", seq: 0, users: [] }, /from/],
    [{ kind: "delta", from: "m", seq: -1, users: [] }, /seq/],
    [{ kind: "delta", from: "m", seq: 0, users: [["", 1]] }, /user id/],
    [{ kind: "delta", from: "m", seq: 0, users: [["\ud800", 1]] }, /user id/],
    [{ kind: "delta", from: "m", seq: 0, users: [["kim", 1.5]] }, /count/],
    [{ kind: "delta", from: "m", seq: 0, users: [["kim", 1, 2]] }, /entry/],
    [{ kind: "delta", from: "m", seq: 0, users: Array(1_001).fill(["k", 1]) }, /users/],
    [{ kind: "alive", from: "m", seq: 0, every: 10_001, total: 0, digest: 0 }, /every/],
    [{ kind: "alive", from: "m", seq: 0, every: 100, total: 0, digest: 2 ** 32 }, /digest/],
    [
      { kind: "snapshot", from: "m", seq: 0, every: 100, part: 2, parts: 2, ask: false, users: [] },
      /part/,
    ],
    [{ kind: "ask", from: "m", seq: 0 }, /to/],
    [{ kind: "hello", from: "m", seq: 0 }, /kind/],
  ];
  for (const [message, reason] of bad) {
    assert.match(presenceMessageProblem(message) ?? "passed", reason, JSON.stringify(message));
  }
});
