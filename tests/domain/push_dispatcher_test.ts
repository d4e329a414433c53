/**
 * The dispatcher's rounds, with in-memory ports: what one round reads and sends when a user has
 * several pushes due at once.
 */
import assert from "node:assert/strict";
import type { Alarm } from "../../src/domain/alarm.ts";
import { systemClock } from "../../src/domain/ports.ts";
import type {
  OutboxEntry,
  PushOutbox,
  PushRequest,
  PushResult,
  PushSubscriptionRecord,
} from "../../src/domain/push.ts";
import { createPushDispatcher } from "../../src/domain/push_dispatcher.ts";
import { waitUntil } from "../helpers/wait.ts";

const NOW = Date.now();
const alarmOf = (id: string): Alarm => ({
  id,
  userId: "kim",
  type: "comment",
  data: {},
  createdAt: new Date(NOW).toISOString(),
  readAt: null,
  notification: { title: `alarm ${id}` },
});
const subscription = (id: string): PushSubscriptionRecord => ({
  id,
  userId: "kim",
  endpoint: `https://push.example/${id}`,
  keys: { p256dh: "p", auth: "a" },
  vapidPublicKey: "V",
  createdAt: new Date(NOW).toISOString(),
});

function harness(entries: OutboxEntry[], answer: (req: PushRequest) => PushResult) {
  const settled: OutboxEntry[] = [];
  let pending = [...entries];
  const outbox: PushOutbox = {
    lease: () => Promise.resolve(true),
    due: () => Promise.resolve(pending.splice(0)),
    settle: (done) => {
      settled.push(...done);
      return Promise.resolve();
    },
    stats: () => Promise.resolve({ pending: pending.length, oldestDueAt: null }),
    dropOldest: () => Promise.resolve(0),
  };
  let subs = [subscription("a"), subscription("b")];
  const reads: string[] = [];
  const forgotten: string[] = [];
  const sent: string[] = [];
  const dispatcher = createPushDispatcher({
    outbox,
    subscriptions: {
      register: () => Promise.reject(new Error("not used")),
      delete: () => Promise.reject(new Error("not used")),
      list: (userId) => {
        reads.push(userId);
        return Promise.resolve(subs);
      },
      forget: (record) => {
        forgotten.push(record.id);
        subs = subs.filter((s) => s.id !== record.id);
        return Promise.resolve();
      },
    },
    store: { get: (_userId, id) => Promise.resolve(alarmOf(id)) },
    sender: {
      send: async (req) => {
        await Promise.resolve();
        sent.push(`${req.subscription.endpoint.split("/").pop()}:${JSON.parse(req.payload).id}`);
        return answer(req);
      },
    },
    vapidPairOf: () => Promise.resolve({ publicKey: "V", privateKey: "P" }),
    subject: "mailto:ops@example.com",
    pushDue: (userIds) => userIds.map(() => true),
    clock: systemClock,
    maxPending: 1000,
    owner: "test",
  });
  return { dispatcher, settled, reads, forgotten, sent, refill: (e: OutboxEntry[]) => pending = e };
}

const entry = (alarmId: string): OutboxEntry => ({
  alarmId,
  userId: "kim",
  dueAt: NOW,
  expiresAt: NOW + 60_000,
  attempts: 0,
});

Deno.test("a round reads a user's subscriptions once for all of their due pushes", async () => {
  const ids = ["01", "02", "03", "04", "05"];
  const h = harness(ids.map(entry), () => ({ kind: "sent", status: 201 }));
  h.dispatcher.start();
  try {
    await waitUntil(() => h.settled.length === 5, "five pushes settled");
    assert.deepEqual(h.reads, ["kim"]);
    assert.deepEqual(h.sent.toSorted(), ids.flatMap((id) => [`a:${id}`, `b:${id}`]).toSorted());
  } finally {
    await h.dispatcher.stop();
  }
});

Deno.test("a subscription gone in one round is read afresh in the next", async () => {
  const h = harness(
    [entry("01")],
    (req) =>
      req.subscription.endpoint.endsWith("/b")
        ? { kind: "gone", status: 410 }
        : { kind: "sent", status: 201 },
  );
  h.dispatcher.start();
  try {
    await waitUntil(() => h.settled.length === 1, "the first push settled");
    assert.deepEqual(h.forgotten, ["b"]);
    h.refill([entry("02")]);
    h.dispatcher.wake();
    await waitUntil(() => h.settled.length === 2, "the second push settled");
    assert.deepEqual(h.reads, ["kim", "kim"]);
    assert.deepEqual(h.sent.toSorted(), ["a:01", "a:02", "b:01"]);
  } finally {
    await h.dispatcher.stop();
  }
});
