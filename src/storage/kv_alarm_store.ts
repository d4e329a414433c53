import { UnavailableError } from "../domain/errors.ts";
import { createListenerSet } from "../domain/listener_set.ts";
import type { AlarmChange, AlarmStore, Clock, CreateOutcome } from "../domain/ports.ts";
import { createUlidGenerator } from "../domain/ulid.ts";
import { createUserStateCache, readBatch } from "./batch_reads.ts";
import { applyMutations } from "./commit_budget.ts";
import { createCommitHealth } from "./commit_health.ts";
import { createKvAlarmReads } from "./kv_alarm_reads.ts";
import { kvKeys } from "./kv_keys.ts";
import {
  decodeJson,
  DEFAULT_EXPIRY_MARGIN_MS,
  idempotencyConflict,
  type IdempotencyRecord,
  idempotencyVerdict,
} from "./kv_records.ts";
import { backoff, isBusy, RETRIES_ON_CONFLICT } from "./kv_retry.ts";
import { type BatchPlan, planBatch } from "./plan_batch.ts";
import { createWriteQueue } from "./write_queue.ts";
import { type PlanContext, userOf, type WriteRequest } from "./write_plan.ts";
import { createWriterClaim } from "./writer_claim.ts";

export interface KvAlarmStoreOptions {
  readonly clock: Clock;
  readonly retentionMs: number;
  readonly maxAlarmsPerUser: number;
  /** How long an idempotency record answers retries (contract: 24 h). */
  readonly idempotencyTtlMs?: number;
  /** How long a due push may wait in the outbox (`ALARMD_PUSH_TTL_SECONDS`). */
  readonly pushTtlMs?: number;
  /**
   * KV's own `expireIn` removes entries this long after retention, as a backstop behind the
   * sweeper: the sweeper keeps counters exact, KV's sweep only catches what it never reached.
   */
  readonly expiryMarginMs?: number;
  /** Called when a commit fails, for logs and metrics. */
  readonly onError?: (error: unknown) => void;
  /**
   * A second handle on the same database, for reads. Deno KV runs a handle's operations one at
   * a time, so a read on the writing handle would wait behind the commit ahead of it.
   */
  readonly readKv?: Deno.Kv;
  /** Called after each successful commit with its duration and how many writes it held. */
  readonly onCommit?: (durationMs: number, changes: number) => void;
}

/** A write in the queue, with how to answer its caller. */
interface QueuedWrite {
  request: WriteRequest;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

/** How many writes one batch plans at most. */
const MAX_BATCH = 400;
/** Batches in flight: while one commits, the next reads and plans. */
const MAX_IN_FLIGHT = 2;
/** The sweeper's page of the retention index, and its writes' size. */
const SWEEP_PAGE = 500;
const EXPIRE_PER_WRITE = 100;

/**
 * AlarmStore on Deno KV, in steps: a write queue that leaves as group commits
 * (write_queue.ts), the reads each batch needs (batch_reads.ts), a pure plan of the commit
 * (plan_batch.ts, write_planners.ts), and the commit, checked by the writer claim or by every
 * touched user's state (writer_claim.ts), so that processes sharing the file never interleave.
 * A failed check re-reads and re-plans the batch.
 */
export function createKvAlarmStore(kv: Deno.Kv, options: KvAlarmStoreOptions): AlarmStore {
  const { clock, retentionMs, maxAlarmsPerUser } = options;
  const idempotencyTtlMs = options.idempotencyTtlMs ?? 24 * 3600_000;
  const pushTtlMs = options.pushTtlMs ?? 24 * 3600_000;
  const expiryMarginMs = options.expiryMarginMs ?? DEFAULT_EXPIRY_MARGIN_MS;
  const reads = createKvAlarmReads(options.readKv ?? kv, clock, retentionMs);
  const ids = createUlidGenerator();
  const changes = createListenerSet<AlarmChange>(options.onError);
  const cache = createUserStateCache();
  const claim = createWriterClaim(kv, () => cache.clear());
  const health = createCommitHealth(kv, clock, options);
  const queue = createWriteQueue<QueuedWrite>({
    userOf: (write) => userOf(write.request),
    exclusiveKeyOf({ request }) {
      const idem = request.kind === "create" ? request.item.idempotency : undefined;
      return idem ? `${idem.scope}\u0000${idem.key}\u0000${idem.index}` : null;
    },
    // A recount replaces the user's counters from a full listing, and an erasure's pass is as
    // large as a commit allows: nothing may share their commits.
    alone: (write) => write.request.kind === "recount" || write.request.kind === "erase",
    maxBatch: MAX_BATCH,
    maxInFlight: MAX_IN_FLIGHT,
    commit: commitBatch,
  });
  let closed = false;

  function enqueue<T>(request: WriteRequest): Promise<T> {
    if (closed) return Promise.reject(new UnavailableError("alarmd is shutting down"));
    return new Promise<T>((resolve, reject) => {
      queue.push({ request, resolve: resolve as (value: unknown) => void, reject });
    });
  }

  const planContext = (): PlanContext => ({
    now: clock.now(),
    retentionMs,
    expiryMarginMs,
    idempotencyTtlMs,
    pushTtlMs,
    maxAlarmsPerUser,
    nextId: (now, lastId) => ids.next(now, lastId),
  });

  /** Plans and commits a leading part of `batch`; returns the rest, in order. */
  async function commitBatch(batch: QueuedWrite[]): Promise<QueuedWrite[]> {
    const requests = batch.map((write) => write.request);
    for (let attempt = 0;; attempt++) {
      let held: string | null;
      let plan: BatchPlan;
      try {
        held = await claim.current(queue.batchesInFlight);
        const view = await readBatch(requests, reads, cache, maxAlarmsPerUser);
        plan = planBatch(requests, view, planContext(), held);
      } catch (error) {
        if (isBusy(error) && attempt < RETRIES_ON_CONFLICT) {
          await backoff(attempt);
          continue;
        }
        fail(batch, error);
        return [];
      }
      const rest = batch.slice(plan.included);
      if (plan.mutations.length === 0) {
        settle(batch, plan);
        return rest;
      }
      const atomic = kv.atomic();
      for (const check of plan.checks) atomic.check(check);
      applyMutations(atomic, plan.mutations);
      const started = performance.now();
      let result: Deno.KvCommitResult | Deno.KvCommitError;
      try {
        result = await atomic.commit();
      } catch (error) {
        for (const userId of plan.states.keys()) cache.delete(userId);
        if (isBusy(error) && attempt < RETRIES_ON_CONFLICT) {
          await backoff(attempt);
          continue;
        }
        fail(batch.slice(0, plan.included), error);
        return rest;
      }
      if (result.ok) {
        claim.committed(held, result.versionstamp);
        health.succeeded();
        options.onCommit?.(performance.now() - started, plan.included);
        for (const [userId, state] of plan.states) {
          cache.set(userId, state, plan.deletedStates.has(userId) ? null : result.versionstamp);
        }
        settle(batch, plan);
        return rest;
      }
      for (const userId of plan.states.keys()) cache.delete(userId);
      claim.conflicted(held);
      if (attempt >= RETRIES_ON_CONFLICT) {
        fail(batch, new UnavailableError("storage is too contended, try again"));
        return [];
      }
      await backoff(attempt);
    }
  }

  function fail(writes: QueuedWrite[], error: unknown) {
    options.onError?.(error);
    health.failed();
    const reason = error instanceof UnavailableError
      ? error
      : new UnavailableError("storage is unavailable");
    for (const write of writes) write.reject(reason);
  }

  /** Announces the plan's changes, then answers each included write. */
  function settle(batch: QueuedWrite[], plan: BatchPlan) {
    for (const change of plan.changes) changes.emit(change);
    plan.outcomes.forEach((outcome, i) => {
      const write = batch[i];
      if (outcome.kind === "reject") return write.reject(outcome.error);
      if (outcome.kind === "continue") {
        if (write.request.kind === "readAll") {
          const ids = [...write.request.ids, ...outcome.ids];
          write.request = { ...write.request, ids, before: outcome.before };
        }
        // Its batch is still in flight, so the next pass starts once this one has ended.
        return queue.pushFront(write);
      }
      write.resolve(outcome.kind === "resolve" ? outcome.value : undefined);
      if (outcome.kind === "resolve" && outcome.recount) {
        // KV's own expiry removed some alarms first, so the counters no longer match. A
        // recount refused at shutdown is retried by the next sweep.
        enqueue<void>({ kind: "recount", userId: userOf(write.request) }).catch(() => {});
      }
    });
  }

  async function read<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      options.onError?.(error);
      throw new UnavailableError("storage is unavailable");
    }
  }

  return {
    async create(items) {
      const keyed = items.filter((i) => i.idempotency);
      if (keyed.length > 0) {
        // Refuse a conflicting retry before storing any item of it.
        const now = clock.now();
        const entries = await read(() =>
          reads.getMany(
            keyed.map(({ idempotency: k }) => kvKeys.idempotency(k!.scope, k!.key, k!.index)),
          )
        );
        entries.forEach((entry, n) => {
          const record = entry.value ? decodeJson<IdempotencyRecord>(entry.value) : null;
          if (idempotencyVerdict(record, keyed[n].idempotency!, now) === "conflict") {
            throw idempotencyConflict();
          }
        });
      }
      return Promise.all(items.map((item) => enqueue<CreateOutcome>({ kind: "create", item })));
    },
    get: (userId, id) => read(() => reads.get(userId, id)),
    list: (userId, query) => read(() => reads.list(userId, query)),
    listAfter: (userId, afterId, limit) => read(() => reads.listAfter(userId, afterId, limit)),
    userState: (userId) => read(() => reads.userState(userId)),
    markRead: (userId, id) => enqueue({ kind: "read", userId, id }),
    markAllRead: (userId) => enqueue({ kind: "readAll", userId, ids: [], before: null }),
    delete: (userId, id) => enqueue({ kind: "delete", userId, id }),
    erase: (userId) => enqueue({ kind: "erase", userId }),

    async sweepExpired() {
      let swept = 0;
      for (;;) {
        const { byUser, rows } = await read(() => reads.expiredIds(SWEEP_PAGE));
        if (rows === 0) return swept;
        const writes: Promise<number>[] = [];
        for (const [userId, all] of byUser) {
          for (let i = 0; i < all.length; i += EXPIRE_PER_WRITE) {
            const ids = all.slice(i, i + EXPIRE_PER_WRITE);
            writes.push(enqueue<number>({ kind: "expire", userId, ids }));
          }
        }
        for (const count of await Promise.all(writes)) swept += count;
        if (rows < SWEEP_PAGE) return swept;
      }
    },

    onChange: (listener) => changes.add(listener),
    ping: () => health.ping(),

    async close() {
      closed = true;
      await queue.drain();
    },
  };
}
