import type { AlarmStore, Clock } from "./ports.ts";
import type {
  OutboxEntry,
  PushOutbox,
  PushResult,
  PushSender,
  PushSubscriptionRecord,
  PushSubscriptionStore,
  VapidKeys,
} from "./push.ts";
import { pushPayload } from "./push_payload.ts";

/** What happened to one due push (or one subscription's message), for metrics. */
export type PushOutcome =
  | "sent"
  | "gone"
  | "retried"
  | "rejected"
  | "expired"
  | "skipped"
  | "dropped";

export interface PushDispatcherDeps {
  readonly outbox: PushOutbox;
  readonly subscriptions: PushSubscriptionStore;
  readonly store: Pick<AlarmStore, "get">;
  readonly sender: PushSender;
  /** The VAPID pair a subscription was made with. */
  readonly vapidPairOf: (publicKey: string) => Promise<VapidKeys | null>;
  /** The VAPID `sub`. */
  readonly subject: string;
  /**
   * Asked again just before sending, for a round's users at once: a user may have opened a tab
   * since the commit. Answers in the order asked.
   */
  readonly pushDue: (
    userIds: readonly string[],
  ) => readonly boolean[] | Promise<readonly boolean[]>;
  readonly clock: Clock;
  readonly maxPending: number;
  /** This instance, for the sender lease. */
  readonly owner: string;
  readonly onOutcome?: (outcome: PushOutcome, count: number) => void;
  readonly onStats?: (stats: { pending: number; oldestDueAt: number | null }) => void;
  /** A message refused or a failure, with the endpoint's origin only. */
  readonly onProblem?: (message: string, fields: Record<string, unknown>) => void;
}

const LEASE_MS = 10_000;
const RENEW_MS = 3_000;
const STATS_MS = 5_000;
const IDLE_MS = 250;
const BATCH = 256;
const CONCURRENCY = 64;
const MAX_BACKOFF_MS = 15 * 60_000;

/** Wait before attempt `attempts + 1`: doubling from one second, with jitter, capped. */
export function retryDelay(attempts: number, retryAfterMs: number | null): number {
  const base = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** Math.min(attempts, 20));
  return Math.max(retryAfterMs ?? 0, base / 2 + Math.random() * base / 2);
}

/**
 * Sends what the outbox holds, on the one instance holding the sender lease: for each due push,
 * checks that the alarm still exists unread and that a push is still due, encrypts it for each
 * of the user's subscriptions, and settles: sent and given-up entries leave, failures that may
 * pass (429, 5xx, network) come back later until the push's TTL ends. At least once: an entry
 * leaves the outbox only after its sends were answered.
 */
export function createPushDispatcher(deps: PushDispatcherDeps) {
  const { clock, outbox } = deps;
  let running = false;
  let loop: Promise<void> | null = null;
  let wakeUp: (() => void) | null = null;
  let leasedAt = -Infinity;
  let statsAt = -Infinity;
  const count = (outcome: PushOutcome, n = 1) => n > 0 && deps.onOutcome?.(outcome, n);
  const originOf = (endpoint: string) => URL.canParse(endpoint) ? new URL(endpoint).origin : "?";

  function idle(ms: number) {
    return new Promise<void>((resolve) => {
      const timer = clock.setTimeout(() => {
        wakeUp = null;
        resolve();
      }, ms);
      wakeUp = () => {
        clock.clearTimeout(timer);
        wakeUp = null;
        resolve();
      };
    });
  }

  async function sendTo(sub: PushSubscriptionRecord, payload: string, ttlSeconds: number) {
    const vapid = await deps.vapidPairOf(sub.vapidPublicKey);
    if (!vapid) {
      return {
        kind: "rejected",
        status: null,
        reason: "the subscription's VAPID key is unknown to this deployment",
      } satisfies PushResult;
    }
    return deps.sender.send({
      subscription: sub,
      payload,
      ttlSeconds,
      vapid,
      subject: deps.subject,
    });
  }

  type Settled =
    | { done: true }
    | { done: false; dueAt: number; remaining?: readonly string[] };

  /** What one round knows: which users a push is still due for, and each user's subscriptions. */
  interface RoundView {
    readonly due: ReadonlyMap<string, boolean>;
    readonly subscriptions: Map<string, Promise<PushSubscriptionRecord[]>>;
  }

  /** A user's subscriptions, read once per round however many of their pushes it holds. */
  function subscriptionsOf(view: RoundView, userId: string) {
    let list = view.subscriptions.get(userId);
    if (!list) {
      list = deps.subscriptions.list(userId);
      view.subscriptions.set(userId, list);
      // A failed read is not kept: the entry that asked is deferred, the next one reads again.
      list.catch(() => view.subscriptions.delete(userId));
    }
    return list;
  }

  async function process(entry: OutboxEntry, view: RoundView): Promise<Settled> {
    const now = clock.now();
    if (now >= entry.expiresAt) {
      count("expired");
      return { done: true };
    }
    const alarm = await deps.store.get(entry.userId, entry.alarmId);
    if (!alarm || alarm.readAt !== null || !alarm.notification || !view.due.get(entry.userId)) {
      count("skipped");
      return { done: true };
    }
    const all = await subscriptionsOf(view, entry.userId);
    const subs = entry.remaining ? all.filter((s) => entry.remaining!.includes(s.id)) : all;
    const payload = pushPayload(alarm);
    const ttlSeconds = Math.max(1, Math.ceil((entry.expiresAt - now) / 1000));
    const results = await Promise.all(subs.map((sub) => sendTo(sub, payload, ttlSeconds)));
    const remaining: string[] = [];
    let retryAfterMs: number | null = null;
    for (const [i, result] of results.entries()) {
      const sub = subs[i];
      if (result.kind === "sent") count("sent");
      else if (result.kind === "gone") {
        count("gone");
        await deps.subscriptions.forget(sub);
        // The round's later pushes to this user skip it too. The round's read of this user's
        // subscriptions succeeded (`all` came from it), so what it holds never rejects.
        const cached = view.subscriptions.get(entry.userId) ?? Promise.resolve(all);
        view.subscriptions.set(
          entry.userId,
          cached.then((list) => list.filter((s) => s.id !== sub.id)),
        );
      } else if (result.kind === "retry") {
        remaining.push(sub.id);
        retryAfterMs = Math.max(retryAfterMs ?? 0, result.retryAfterMs ?? 0);
      } else {
        count("rejected");
        deps.onProblem?.("push refused", {
          origin: originOf(sub.endpoint),
          subscriptionId: sub.id,
          status: result.status,
          reason: result.reason,
        });
      }
    }
    if (remaining.length === 0) return { done: true };
    const dueAt = clock.now() + retryDelay(entry.attempts, retryAfterMs);
    if (dueAt >= entry.expiresAt) {
      count("expired", remaining.length);
      return { done: true };
    }
    count("retried", remaining.length);
    return { done: false, dueAt, remaining };
  }

  async function round(): Promise<boolean> {
    const now = clock.now();
    if (now - leasedAt >= RENEW_MS) {
      if (!(await outbox.lease(deps.owner, LEASE_MS))) {
        leasedAt = -Infinity;
        return false;
      }
      leasedAt = now;
    }
    if (now - statsAt >= STATS_MS) {
      statsAt = now;
      const stats = await outbox.stats();
      if (stats.pending > deps.maxPending) {
        count("dropped", await outbox.dropOldest(stats.pending - deps.maxPending));
      }
      deps.onStats?.(stats);
    }
    const entries = await outbox.due(now, BATCH);
    if (entries.length === 0) return false;
    const users = [...new Set(entries.map((e) => e.userId))];
    const flags = await deps.pushDue(users);
    const view: RoundView = {
      due: new Map(users.map((userId, i) => [userId, flags[i]])),
      subscriptions: new Map(),
    };
    const done: OutboxEntry[] = [];
    const retries: { entry: OutboxEntry; dueAt: number; remaining?: readonly string[] }[] = [];
    let next = 0;
    const worker = async () => {
      while (next < entries.length) {
        const entry = entries[next++];
        let settled: Settled;
        try {
          settled = await process(entry, view);
        } catch (error) {
          // Storage could not answer: try again shortly, the push is not lost.
          deps.onProblem?.("push deferred", { error: String(error), alarmId: entry.alarmId });
          settled = { done: false, dueAt: clock.now() + 1000, remaining: entry.remaining };
        }
        if (settled.done) done.push(entry);
        else retries.push({ entry, dueAt: settled.dueAt, remaining: settled.remaining });
      }
    };
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, entries.length) }, worker));
    await outbox.settle(done, retries);
    return entries.length === BATCH;
  }

  return {
    /** Starts sending; safe to call on every instance (the lease picks one). */
    start() {
      if (running) return;
      running = true;
      loop = (async () => {
        while (running) {
          let more = false;
          try {
            more = await round();
          } catch (error) {
            deps.onProblem?.("push round failed", { error: String(error) });
          }
          if (running && !more) await idle(leasedAt === -Infinity ? RENEW_MS : IDLE_MS);
        }
      })();
    },
    /** A push was just queued here: look now rather than at the next tick. */
    wake() {
      wakeUp?.();
    },
    async stop() {
      running = false;
      wakeUp?.();
      await loop;
    },
  };
}
