import type { Alarm } from "../domain/alarm.ts";
import { isExpired } from "../domain/alarm.ts";
import { IdempotencyConflictError, NotFoundError, UnavailableError } from "../domain/errors.ts";
import type {
  AlarmChange,
  AlarmStore,
  Clock,
  CreateItem,
  CreateOutcome,
  ListPage,
  ListQuery,
  UserState,
} from "../domain/ports.ts";
import { createUlidGenerator, incrementUlid, ulidFloorOf } from "../domain/ulid.ts";
import { keyByteLength, kvKeys } from "./kv_keys.ts";

export interface KvAlarmStoreOptions {
  readonly clock: Clock;
  readonly retentionMs: number;
  readonly maxAlarmsPerUser: number;
  /** How long an idempotency record answers retries (contract: 24 h). */
  readonly idempotencyTtlMs?: number;
  /**
   * KV's own `expireIn` removes entries this long after retention, as a backstop behind the
   * sweeper: the sweeper keeps counters exact, KV's sweep only catches what it never reached.
   */
  readonly expiryMarginMs?: number;
  /** Called when a commit fails, for logs and metrics. */
  readonly onError?: (error: unknown) => void;
  /**
   * A second handle on the same database, for reads. Deno KV runs a handle's operations one at
   * a time on its SQLite thread, so a read on the writing handle waits behind the commit ahead
   * of it (10 ms behind a 240-alarm commit); a second connection reads alongside it (0.26 ms).
   * Measured with `deno run --unstable-kv -A bench/kv_ops.ts`.
   */
  readonly readKv?: Deno.Kv;
  /** Called after each successful commit with its duration and how many changes it held. */
  readonly onCommit?: (durationMs: number, changes: number) => void;
}

interface Head {
  last: string | null;
  floor: string | null;
  total: number;
  unread: number;
}

interface IdempotencyRecord {
  fp: string;
  alarm: Alarm;
  expiresAt: number;
}

const EMPTY_HEAD: Head = { last: null, floor: null, total: 0, unread: 0 };

/**
 * The readiness probe writes this many bytes, as many as the largest single create (an 8 KiB
 * alarm and its idempotency record), so that a probe that fits means an alarm fits. Its length
 * alternates by one byte: SQLite rewrites a value of the same size in place, which a full disk
 * still takes where a new alarm does not fit.
 */
const PROBE_BYTES = 18 * 1024;
/** While commits fail, readiness probes at most this often; pings in between share its verdict. */
const PROBE_INTERVAL_MS = 5_000;
/**
 * The value of retention-index entries, whose keys say everything. Bytes are stored as they
 * are, where a number or null goes through V8's serializer: about 1 µs per entry, one per alarm
 * (`setcost` figures in bench/kv_ops.ts).
 */
const INDEX_VALUE = new Uint8Array(0);

/** Deno KV's limits per atomic commit, with headroom for what the estimate does not see. */
const LIMITS = {
  checks: 100,
  mutations: 1000,
  keyBytes: 76 * 1024,
  totalBytes: 760 * 1024,
  unitsPerPlan: 400,
  readAllPerPass: 200,
  /** Conflicts (another process changed a user) and SQLite's "database is locked" retry. */
  retriesOnConflict: 200,
} as const;

/** How long after retention KV's own `expireIn` removes an alarm the sweeper never reached. */
export const DEFAULT_EXPIRY_MARGIN_MS = 24 * 3600_000;

/** Another process holds SQLite's write lock: wait and try again, it is not a failure. */
export const isBusy = (error: unknown) =>
  error instanceof Error && /database is locked|SQLITE_BUSY|busy/i.test(error.message);

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const encode = (value: unknown) => encoder.encode(JSON.stringify(value));
const decode = <T>(bytes: unknown): T => JSON.parse(decoder.decode(bytes as Uint8Array)) as T;

interface Deferred<T> {
  resolve(value: T): void;
  reject(error: unknown): void;
}

type Unit =
  | { kind: "create"; item: CreateItem; done: Deferred<CreateOutcome> }
  | {
    kind: "read";
    userId: string;
    id: string;
    done: Deferred<{ changed: boolean; unread: number }>;
  }
  | {
    kind: "readAll";
    userId: string;
    ids: string[];
    /** Where the next pass's scan resumes (it runs newest first): below this id. */
    before: string | null;
    done: Deferred<{ ids: string[]; unread: number }>;
  }
  | { kind: "delete"; userId: string; id: string; done: Deferred<{ unread: number }> }
  | { kind: "expire"; userId: string; ids: string[]; done: Deferred<number> }
  | { kind: "recount"; userId: string; done: Deferred<void> };

function userOf(unit: Unit): string {
  return unit.kind === "create" ? unit.item.alarm.userId : unit.userId;
}

/** What one batch knows about a user while it plans mutations. */
interface UserPlan {
  head: Head;
  versionstamp: string | null;
  /** Oldest stored alarms, ascending: the victims when a create passes the cap. */
  oldest: Alarm[];
  /** Alarms this batch creates, ascending. */
  created: Alarm[];
  /** For readAll: the unread alarms found, whether there may be more, and the last id scanned. */
  unreadListed?: { alarms: Alarm[]; more: boolean; last: string | null };
  /** For recount: every stored alarm. */
  all?: Alarm[];
}

/** One mutation plus its cost, staged until the unit is known to fit. */
interface Mutation {
  key: Deno.KvKey;
  value?: unknown;
  expireIn?: number;
  bytes: number;
}

/**
 * AlarmStore on Deno KV.
 *
 * Writes go through one in-process queue and leave as group commits: while one atomic commit is
 * in flight, new requests queue up, and the next commit takes all that fit Deno KV's limits (100
 * checks, 1000 mutations, 800 KiB). One commit in flight keeps each user's ids in commit order;
 * batching keeps throughput up (a commit is fsynced). Every commit checks the versionstamp of
 * each touched user's head, so other processes on the same KV cannot interleave; on conflict the
 * batch is re-planned from fresh reads.
 */
export function createKvAlarmStore(kv: Deno.Kv, options: KvAlarmStoreOptions): AlarmStore {
  const { clock, retentionMs, maxAlarmsPerUser } = options;
  const reader = options.readKv ?? kv;
  const idempotencyTtlMs = options.idempotencyTtlMs ?? 24 * 3600_000;
  const expiryMarginMs = options.expiryMarginMs ?? DEFAULT_EXPIRY_MARGIN_MS;
  const ids = createUlidGenerator();
  const listeners = new Set<(change: AlarmChange) => void>();
  /** Heads this process wrote or read last; a stale entry only costs a conflict and a retry. */
  const headCache = new Map<string, { head: Head; versionstamp: string | null }>();
  const HEAD_CACHE_MAX = 100_000;
  const queue: Unit[] = [];
  /**
   * Batches in flight (at most MAX_IN_FLIGHT): while one commits, the next is read and planned.
   * Two batches never share a user or an idempotency key, so each user's changes still commit
   * in order and every plan starts from heads no other batch is changing.
   */
  const inFlight = new Set<Promise<void>>();
  const busyUsers = new Set<string>();
  const busyIdem = new Set<string>();
  const MAX_IN_FLIGHT = 2;
  /**
   * Writer-claim protocol (see kv_keys.ts). While `exclusive`, this process holds the claim it
   * wrote to ["w"] (versionstamp `claim`): its commits check that ["w"] is unchanged and nothing
   * else. Every other writer changes ["w"] (by claiming it, or on every commit in shared mode),
   * so a failed check means someone else wrote, and per-user checks apply for a while.
   * `lastSeen` is ["w"]'s versionstamp as of this process's last write of it.
   */
  let claim: string | null = null;
  let lastSeen: string | null | undefined = undefined;
  let exclusive = false;
  let claiming: Promise<boolean> | null = null;
  let sharedUntil = 0;
  const SHARED_MODE_MS = 5_000;
  let closed = false;
  /**
   * Whether the last commit failed. Only then does ping write (a probe, at most one per
   * PROBE_INTERVAL_MS), so polling readiness costs no writes while commits succeed.
   */
  let lastCommitFailed = false;
  let probe: { at: number; verdict: Promise<void> } | null = null;
  let probeFlip = 0;

  const expired = (alarm: Alarm) => isExpired(alarm, clock.now(), retentionMs);
  /** Ids below this belong to alarms past retention (an id's time is never before createdAt). */
  const firstLiveId = () => ulidFloorOf(clock.now() - retentionMs + 1);
  const alarmExpireIn = (alarm: Alarm) =>
    Math.max(1, Date.parse(alarm.createdAt) + retentionMs + expiryMarginMs - clock.now());

  function cacheHead(userId: string, head: Head, versionstamp: string | null) {
    headCache.delete(userId);
    headCache.set(userId, { head, versionstamp });
    if (headCache.size > HEAD_CACHE_MAX) headCache.delete(headCache.keys().next().value!);
  }

  function enqueue<T>(make: (done: Deferred<T>) => Unit): Promise<T> {
    if (closed) return Promise.reject(new UnavailableError("alarmd is shutting down"));
    return new Promise<T>((resolve, reject) => {
      queue.push(make({ resolve, reject }));
      pump();
    });
  }

  const idemIdOf = (unit: Unit) => {
    const idem = unit.kind === "create" ? unit.item.idempotency : undefined;
    return idem ? `${idem.scope}\u0000${idem.key}\u0000${idem.index}` : null;
  };

  /** Starts batches while fewer than MAX_IN_FLIGHT are committing and queued units can go. */
  function pump() {
    while (inFlight.size < MAX_IN_FLIGHT && queue.length > 0) {
      const units = takeBatch();
      if (units.length === 0) return;
      const users = new Set(units.map(userOf));
      const idem = units.map(idemIdOf).filter((id): id is string => id !== null);
      for (const u of users) busyUsers.add(u);
      for (const id of idem) busyIdem.add(id);
      const batch: Promise<void> = commitBatch(units).then((leftover) => {
        // Leftovers go first again: their users were busy, so nothing of theirs overtook them.
        queue.unshift(...leftover);
      }).finally(() => {
        for (const u of users) busyUsers.delete(u);
        for (const id of idem) busyIdem.delete(id);
        inFlight.delete(batch);
        pump();
      });
      inFlight.add(batch);
    }
  }

  /**
   * The next batch: queued units, in order, whose user and idempotency key no batch in flight
   * holds. Once a user's unit is skipped, all its later units are too (its user stays busy), so
   * each user's units commit in the order they came. A recount replaces a user's counters from
   * a full listing, so it commits alone.
   */
  function takeBatch(): Unit[] {
    const taken: Unit[] = [];
    const rest: Unit[] = [];
    const skipped = new Set<string>();
    let i = 0;
    for (; i < queue.length && taken.length < LIMITS.unitsPerPlan; i++) {
      const unit = queue[i];
      const userId = userOf(unit);
      const idem = idemIdOf(unit);
      if (
        busyUsers.has(userId) || skipped.has(userId) || (idem !== null && busyIdem.has(idem)) ||
        (unit.kind === "recount" && taken.length > 0)
      ) {
        skipped.add(userId);
        rest.push(unit);
        continue;
      }
      taken.push(unit);
      if (unit.kind === "recount") {
        i++;
        break;
      }
    }
    if (taken.length > 0) queue.splice(0, i, ...rest);
    return taken;
  }

  async function getMany(keys: Deno.KvKey[]): Promise<Deno.KvEntryMaybe<unknown>[]> {
    const chunks: Promise<Deno.KvEntryMaybe<unknown>[]>[] = [];
    for (let i = 0; i < keys.length; i += 10) chunks.push(reader.getMany(keys.slice(i, i + 10)));
    return (await Promise.all(chunks)).flat();
  }

  async function listValues<T>(
    selector: Deno.KvListSelector,
    options: Deno.KvListOptions,
  ): Promise<Deno.KvEntry<T>[]> {
    const out: Deno.KvEntry<T>[] = [];
    for await (const entry of reader.list<T>(selector, options)) out.push(entry);
    return out;
  }

  /** Reads everything the units need, so that planning is pure. */
  async function prefetch(units: Unit[]) {
    const users = new Map<string, UserPlan>();
    const alarmKeys: Deno.KvKey[] = [];
    const idemKeys: Deno.KvKey[] = [];
    const creates = new Map<string, number>();
    const removals = new Map<string, number>();
    for (const unit of units) {
      const userId = userOf(unit);
      if (!users.has(userId)) {
        users.set(userId, emptyUserPlan());
      }
      switch (unit.kind) {
        case "create": {
          creates.set(userId, (creates.get(userId) ?? 0) + 1);
          const idem = unit.item.idempotency;
          if (idem) idemKeys.push(kvKeys.idempotency(idem.scope, idem.key, idem.index));
          break;
        }
        case "read":
        case "delete":
          alarmKeys.push(kvKeys.alarm(unit.userId, unit.id));
          removals.set(userId, (removals.get(userId) ?? 0) + 1);
          break;
        case "expire":
          for (const id of unit.ids) alarmKeys.push(kvKeys.alarm(unit.userId, id));
          removals.set(userId, (removals.get(userId) ?? 0) + unit.ids.length);
          break;
      }
    }
    // Heads first: every read below is then at least as new as the head versionstamp the
    // commit checks, so a change by another process in between fails the check.
    // Taken now: another batch may clear the cache while this one awaits its reads. A stale
    // entry is caught by the commit's checks, like any stale read.
    const heads = new Map<string, { head: Head; versionstamp: string | null }>();
    const uncached: string[] = [];
    for (const userId of users.keys()) {
      const cached = headCache.get(userId);
      if (cached) heads.set(userId, cached);
      else uncached.push(userId);
    }
    const headEntries = await getMany(uncached.map(kvKeys.head));
    const [alarmEntries, idemEntries] = await Promise.all([getMany(alarmKeys), getMany(idemKeys)]);
    headEntries.forEach((entry, i) => {
      const head = (entry.value as Head | null) ?? EMPTY_HEAD;
      heads.set(uncached[i], { head, versionstamp: entry.versionstamp });
      cacheHead(uncached[i], head, entry.versionstamp);
    });
    for (const [userId, plan] of users) {
      const { head, versionstamp } = heads.get(userId)!;
      plan.head = { ...head };
      plan.versionstamp = versionstamp;
    }
    const alarms = new Map<string, Alarm | null>();
    alarmEntries.forEach((entry) => {
      const userId = entry.key[1] as string;
      alarms.set(
        alarmMapKey(userId, kvKeys.idOf(entry.key)),
        entry.value ? decode<Alarm>(entry.value) : null,
      );
    });
    const idem = new Map<
      string,
      { record: IdempotencyRecord | null; versionstamp: string | null }
    >();
    idemEntries.forEach((entry) => {
      idem.set(JSON.stringify(entry.key), {
        record: entry.value ? decode<IdempotencyRecord>(entry.value) : null,
        versionstamp: entry.versionstamp,
      });
    });
    const lists: Promise<void>[] = [];
    for (const [userId, plan] of users) {
      const excess = plan.head.total + (creates.get(userId) ?? 0) - maxAlarmsPerUser;
      if (excess > 0) {
        const limit = Math.min(excess + (removals.get(userId) ?? 0) + 4, 1000);
        lists.push(
          listValues<Uint8Array>({ prefix: kvKeys.alarmsOf(userId) }, { limit }).then((rows) => {
            plan.oldest = rows.map((r) => decode<Alarm>(r.value));
          }),
        );
      }
    }
    for (const unit of units) {
      const plan = users.get(userOf(unit))!;
      if (unit.kind === "readAll" && !plan.unreadListed) {
        lists.push(loadUnread(unit.userId, plan, unit.before));
      } else if (unit.kind === "recount") {
        lists.push(
          listValues<Uint8Array>({ prefix: kvKeys.alarmsOf(unit.userId) }, {}).then((rows) => {
            plan.all = rows.map((r) => decode<Alarm>(r.value));
          }),
        );
      }
    }
    await Promise.all(lists);
    return { users, alarms, idem };
  }

  /**
   * One pass of readAll: the user's live unread alarms, scanned newest first (where unread ones
   * gather) from below `before`. There is no unread index to list instead: it was a quarter of
   * each create's mutations and a sixth of its KV time (kv_keys.ts). The scan stops at a pass's
   * worth or once it has found as many as the head counts, and skips it all when the head counts
   * none.
   */
  async function loadUnread(userId: string, plan: UserPlan, before: string | null) {
    const found: Alarm[] = [];
    let more = false;
    let last = before;
    if (plan.head.unread > 0) {
      for await (const alarm of scanNewestFirst(userId, before)) {
        last = alarm.id;
        if (alarm.readAt !== null) continue;
        found.push(alarm);
        if (found.length === LIMITS.readAllPerPass) {
          more = true;
          break;
        }
        if (found.length >= plan.head.unread) break;
      }
    }
    plan.unreadListed = { alarms: found, more, last };
  }

  /** A user's alarms still within retention, newest first, below `before` when given. */
  async function* scanNewestFirst(userId: string, before: string | null, batchSize = 500) {
    const prefix = kvKeys.alarmsOf(userId);
    const live = firstLiveId();
    if (before !== null && before <= live) return;
    const start = [...prefix, live];
    const selector: Deno.KvListSelector = before
      ? { start, end: [...prefix, before] }
      : { prefix, start };
    for await (const entry of reader.list<Uint8Array>(selector, { reverse: true, batchSize })) {
      const alarm = decode<Alarm>(entry.value);
      // Newest first: once one is expired, every older one is too.
      if (expired(alarm)) return;
      yield alarm;
    }
  }

  /** Whether this batch may rely on the writer claim alone. */
  function exclusiveMode(): Promise<boolean> | boolean {
    if (exclusive) return true;
    if (claiming) return claiming;
    // A claim waits for a moment with no batch of ours in flight: a shared batch committing
    // after the claim would change ["w"] and undo it.
    if (performance.now() < sharedUntil || inFlight.size > 0) return false;
    return claiming ??= tryClaim().finally(() => (claiming = null));
  }

  async function tryClaim(): Promise<boolean> {
    const current = (await kv.get(kvKeys.writerEpoch)).versionstamp;
    if (lastSeen !== undefined && current !== lastSeen) {
      // Someone else has written since this process last did: keep checking users one by one.
      lastSeen = current;
      sharedUntil = performance.now() + SHARED_MODE_MS;
      return false;
    }
    const result = await kv.atomic()
      .check({ key: kvKeys.writerEpoch, versionstamp: current })
      .set(kvKeys.writerEpoch, 1)
      .commit();
    if (!result.ok) {
      sharedUntil = performance.now() + SHARED_MODE_MS;
      return false;
    }
    // Heads cached in shared mode were only checked when a commit touched them: start afresh.
    headCache.clear();
    claim = lastSeen = result.versionstamp;
    exclusive = true;
    return true;
  }

  /**
   * Plans and commits as many leading units as fit one atomic; returns the rest, in order.
   * Retries the whole plan when another process changed one of the users meanwhile.
   */
  async function commitBatch(units: Unit[]): Promise<Unit[]> {
    for (let attempt = 0;; attempt++) {
      let planned: Planned;
      let fast: boolean;
      try {
        fast = await exclusiveMode();
        planned = plan(units, await prefetch(units), fast ? claim : undefined);
      } catch (error) {
        if (isBusy(error) && attempt < LIMITS.retriesOnConflict) {
          await backoff(attempt);
          continue;
        }
        return failAll(units, error);
      }
      const { included, atomic, touched, effects, changes } = planned;
      if (atomic === null) {
        finish(effects, changes);
        return units.slice(included);
      }
      let result: Deno.KvCommitResult | Deno.KvCommitError;
      const started = performance.now();
      try {
        result = await atomic.commit();
      } catch (error) {
        for (const userId of touched.keys()) headCache.delete(userId);
        if (isBusy(error) && attempt < LIMITS.retriesOnConflict) {
          await backoff(attempt);
          continue;
        }
        failAll(units.slice(0, included), error);
        return units.slice(included);
      }
      if (result.ok) {
        // Batches may finish out of order: keep the newest ["w"] this process wrote.
        if (!fast && (lastSeen == null || result.versionstamp > lastSeen)) {
          lastSeen = result.versionstamp;
        }
        lastCommitFailed = false;
        options.onCommit?.(performance.now() - started, included);
        for (const [userId, head] of touched) cacheHead(userId, head, result.versionstamp);
        finish(effects, changes);
        return units.slice(included);
      }
      for (const userId of touched.keys()) headCache.delete(userId);
      if (fast && exclusive) {
        // Another process wrote: every cached head may be stale.
        exclusive = false;
        sharedUntil = performance.now() + SHARED_MODE_MS;
        headCache.clear();
      }
      if (attempt >= LIMITS.retriesOnConflict) {
        failAll(units, new UnavailableError("storage is too contended, try again"));
        return [];
      }
      await backoff(attempt);
    }
  }

  function backoff(attempt: number) {
    return new Promise((r) => setTimeout(r, Math.random() * Math.min(10, 1 + attempt)));
  }

  function failAll(units: Unit[], error: unknown): Unit[] {
    options.onError?.(error);
    lastCommitFailed = true;
    const reason = error instanceof UnavailableError
      ? error
      : new UnavailableError("storage is unavailable");
    for (const unit of units) unit.done.reject(reason);
    return [];
  }

  function finish(effects: (() => void)[], changes: AlarmChange[]) {
    for (const change of changes) {
      for (const listener of listeners) {
        try {
          listener(change);
        } catch (error) {
          options.onError?.(error);
        }
      }
    }
    for (const effect of effects) effect();
  }

  interface Planned {
    included: number;
    atomic: Deno.AtomicOperation | null;
    touched: Map<string, Head>;
    effects: (() => void)[];
    changes: AlarmChange[];
  }

  /**
   * `exclusiveClaim` is the writer claim to check when this process writes alone (undefined in
   * shared mode, where each touched head and idempotency record is checked instead).
   */
  function plan(
    units: Unit[],
    data: Awaited<ReturnType<typeof prefetch>>,
    exclusiveClaim?: string | null,
  ): Planned {
    const now = clock.now();
    const nowIso = new Date(now).toISOString();
    const { users, alarms } = data;
    const atomic = kv.atomic();
    const shared = exclusiveClaim === undefined;
    // ["w"] is checked in exclusive mode and set in shared mode: reserve room for either.
    const budget = { checks: 1, mutations: 1, keyBytes: 16, totalBytes: 96 };
    if (!shared) atomic.check({ key: kvKeys.writerEpoch, versionstamp: exclusiveClaim });
    const touched = new Map<string, Head>();
    const effects: (() => void)[] = [];
    const changes: AlarmChange[] = [];
    const checkedIdem = new Set<string>();
    let included = 0;

    const set = (key: Deno.KvKey, value: unknown, expireIn?: number): Mutation => {
      const size = value instanceof Uint8Array ? value.byteLength + 8 : 64;
      return { key, value, expireIn, bytes: size };
    };
    const del = (key: Deno.KvKey): Mutation => ({ key, bytes: 0 });

    /** Applies a unit's staged mutations if they fit; false leaves the unit for the next batch. */
    function fits(
      userId: string,
      muts: Mutation[],
      idemCheck?: [string, Deno.KvKey, string | null],
    ) {
      const newUser = !touched.has(userId);
      const headKey = kvKeys.head(userId);
      const all = newUser ? [...muts, set(headKey, null)] : muts;
      const checks = shared
        ? (newUser ? 1 : 0) + (idemCheck && !checkedIdem.has(idemCheck[0]) ? 1 : 0)
        : 0;
      let keyBytes = 0;
      let totalBytes = 0;
      for (const m of all) {
        const k = keyByteLength(m.key);
        keyBytes += k;
        totalBytes += k + m.bytes;
      }
      if (idemCheck) keyBytes += keyByteLength(idemCheck[1]);
      if (
        included > 0 && (
          budget.checks + checks > LIMITS.checks ||
          budget.mutations + all.length > LIMITS.mutations ||
          budget.keyBytes + keyBytes > LIMITS.keyBytes ||
          budget.totalBytes + totalBytes > LIMITS.totalBytes
        )
      ) return false;
      budget.checks += checks;
      budget.mutations += all.length;
      budget.keyBytes += keyBytes;
      budget.totalBytes += totalBytes;
      if (shared && newUser) {
        atomic.check({ key: headKey, versionstamp: users.get(userId)!.versionstamp });
      }
      if (shared && idemCheck && !checkedIdem.has(idemCheck[0])) {
        checkedIdem.add(idemCheck[0]);
        atomic.check({ key: idemCheck[1], versionstamp: idemCheck[2] });
      }
      for (const m of muts) {
        if (m.value === undefined) atomic.delete(m.key);
        else atomic.set(m.key, m.value, m.expireIn ? { expireIn: m.expireIn } : undefined);
      }
      return true;
    }

    const touch = (userId: string, head: Head) => {
      users.get(userId)!.head = head;
      touched.set(userId, head);
    };

    const removeAlarm = (alarm: Alarm, muts: Mutation[], head: Head) => {
      muts.push(
        del(kvKeys.alarm(alarm.userId, alarm.id)),
        del(kvKeys.expiry(alarm.id, alarm.userId)),
      );
      if (alarm.readAt === null) head.unread--;
      head.total--;
      alarms.set(alarmMapKey(alarm.userId, alarm.id), null);
    };

    const current = (userId: string, id: string): Alarm | null => {
      const alarm = alarms.get(alarmMapKey(userId, id)) ?? null;
      return alarm && !expired(alarm) ? alarm : null;
    };

    for (const unit of units) {
      const userId = userOf(unit);
      const user = users.get(userId)!;
      const head = { ...user.head };
      const muts: Mutation[] = [];

      if (unit.kind === "create") {
        const { item } = unit;
        const idem = item.idempotency;
        let idemKey: Deno.KvKey | null = null;
        let idemId = "";
        let idemState:
          | { record: IdempotencyRecord | null; versionstamp: string | null }
          | undefined;
        if (idem) {
          idemKey = kvKeys.idempotency(idem.scope, idem.key, idem.index);
          idemId = JSON.stringify(idemKey);
          idemState = data.idem.get(idemId);
          const record = idemState?.record;
          if (record && record.expiresAt > now) {
            const outcome = record.fp === idem.fingerprint
              ? () => unit.done.resolve({ alarm: record.alarm, replayed: true })
              : () =>
                unit.done.reject(
                  new IdempotencyConflictError(
                    "Idempotency-Key was already used with a different request body",
                  ),
                );
            effects.push(outcome);
            included++;
            continue;
          }
        }
        const alarm: Alarm = {
          id: ids.next(now, head.last),
          userId,
          type: item.alarm.type,
          data: item.alarm.data,
          createdAt: nowIso,
          readAt: null,
        };
        const bytes = encode(alarm);
        muts.push(
          set(kvKeys.alarm(userId, alarm.id), bytes, retentionMs + expiryMarginMs),
          set(kvKeys.expiry(alarm.id, userId), INDEX_VALUE),
        );
        let record: IdempotencyRecord | null = null;
        if (idem && idemKey) {
          record = { fp: idem.fingerprint, alarm, expiresAt: now + idempotencyTtlMs };
          muts.push(set(idemKey, encode(record), idempotencyTtlMs));
        }
        const prevId = head.last;
        head.last = alarm.id;
        head.total++;
        head.unread++;
        const victims: Alarm[] = [];
        while (head.total > maxAlarmsPerUser) {
          const victim = nextVictim(user, alarms, alarm);
          if (!victim) break;
          victims.push(victim);
          removeAlarm(victim, muts, head);
          if (!head.floor || victim.id > head.floor) head.floor = victim.id;
        }
        const idemCheck: [string, Deno.KvKey, string | null] | undefined = idemKey
          ? [idemId, idemKey, idemState?.versionstamp ?? null]
          : undefined;
        if (!fits(userId, muts, idemCheck)) {
          // Undo the victims' overlay removal: they stay for the next batch.
          for (const v of victims) alarms.set(alarmMapKey(v.userId, v.id), v);
          break;
        }
        user.created.push(alarm);
        alarms.set(alarmMapKey(userId, alarm.id), alarm);
        if (record && idemKey) data.idem.set(idemId, { record, versionstamp: null });
        touch(userId, head);
        changes.push({ kind: "created", alarm, prevId });
        if (victims.length > 0) {
          changes.push({
            kind: "deleted",
            userId,
            ids: victims.map((v) => v.id),
            unread: head.unread,
          });
        }
        effects.push(() => unit.done.resolve({ alarm, replayed: false }));
      } else if (unit.kind === "read") {
        const alarm = current(userId, unit.id);
        if (!alarm || alarm.readAt !== null) {
          const unread = head.unread;
          effects.push(
            alarm
              ? () => unit.done.resolve({ changed: false, unread })
              : () => unit.done.reject(notFound(unit.id)),
          );
          included++;
          continue;
        }
        const updated = { ...alarm, readAt: nowIso };
        muts.push(set(kvKeys.alarm(userId, alarm.id), encode(updated), alarmExpireIn(alarm)));
        head.unread--;
        if (!fits(userId, muts)) break;
        alarms.set(alarmMapKey(userId, alarm.id), updated);
        touch(userId, head);
        changes.push({ kind: "read", userId, ids: [alarm.id], unread: head.unread });
        const unread = head.unread;
        effects.push(() => unit.done.resolve({ changed: true, unread }));
      } else if (unit.kind === "readAll") {
        const listed = user.unreadListed!;
        const changedIds: string[] = [];
        const updates: Alarm[] = [];
        for (const listedAlarm of listed.alarms) {
          const key = alarmMapKey(userId, listedAlarm.id);
          const alarm = alarms.has(key) ? current(userId, listedAlarm.id) : listedAlarm;
          if (!alarm || alarm.readAt !== null) continue;
          const updated = { ...alarm, readAt: nowIso };
          muts.push(set(kvKeys.alarm(userId, alarm.id), encode(updated), alarmExpireIn(alarm)));
          updates.push(updated);
          changedIds.push(alarm.id);
          head.unread--;
        }
        if (muts.length > 0 && !fits(userId, muts)) break;
        for (const u of updates) alarms.set(alarmMapKey(userId, u.id), u);
        if (changedIds.length > 0) {
          touch(userId, head);
          changes.push({ kind: "read", userId, ids: changedIds, unread: head.unread });
        }
        // The next pass resumes below the last id scanned, so passes always end.
        const { more, last } = listed;
        user.unreadListed = { alarms: [], more: false, last };
        const unread = head.unread;
        effects.push(() => {
          unit.ids.push(...changedIds);
          unit.before = last;
          // Effects run while this batch is in flight: its end starts the next pass.
          if (more) queue.unshift(unit);
          else unit.done.resolve({ ids: unit.ids, unread });
        });
      } else if (unit.kind === "delete") {
        const alarm = current(userId, unit.id);
        if (!alarm) {
          effects.push(() => unit.done.reject(notFound(unit.id)));
          included++;
          continue;
        }
        removeAlarm(alarm, muts, head);
        if (!fits(userId, muts)) {
          alarms.set(alarmMapKey(userId, alarm.id), alarm);
          break;
        }
        touch(userId, head);
        changes.push({ kind: "deleted", userId, ids: [alarm.id], unread: head.unread });
        const unread = head.unread;
        effects.push(() => unit.done.resolve({ unread }));
      } else if (unit.kind === "expire") {
        const removed: Alarm[] = [];
        let missing = false;
        for (const id of unit.ids) {
          const alarm = alarms.get(alarmMapKey(userId, id)) ?? null;
          if (alarm) {
            removeAlarm(alarm, muts, head);
            removed.push(alarm);
          } else {
            muts.push(del(kvKeys.expiry(id, userId)));
            missing = true;
          }
          if (!head.floor || id > head.floor) head.floor = id;
        }
        if (!fits(userId, muts)) {
          for (const a of removed) alarms.set(alarmMapKey(userId, a.id), a);
          break;
        }
        touch(userId, head);
        if (removed.length > 0) {
          changes.push({
            kind: "deleted",
            userId,
            ids: removed.map((a) => a.id),
            unread: head.unread,
          });
        }
        const count = removed.length;
        effects.push(() => {
          unit.done.resolve(count);
          // KV's own expiry removed some alarms first, so the counters no longer match.
          if (missing) void enqueue<void>((done) => ({ kind: "recount", userId, done }));
        });
      } else {
        // Expired alarms still stored count too: the sweeper decrements when it removes them.
        const all = user.all ?? [];
        head.total = all.length;
        head.unread = all.filter((a) => a.readAt === null).length;
        fits(userId, muts);
        touch(userId, head);
        effects.push(() => unit.done.resolve());
      }
      included++;
    }
    return {
      included,
      atomic: budget.mutations > 1 ? finalize(atomic, touched, shared) : null,
      touched,
      effects,
      changes,
    };
  }

  function finalize(atomic: Deno.AtomicOperation, touched: Map<string, Head>, shared: boolean) {
    for (const [userId, head] of touched) atomic.set(kvKeys.head(userId), head);
    // In shared mode every commit changes ["w"], so that a process holding the claim notices.
    if (shared) atomic.set(kvKeys.writerEpoch, 1);
    return atomic;
  }

  function notFound(id: string) {
    return new NotFoundError(`Cannot find alarm "${id}"`);
  }

  async function readHead(userId: string): Promise<Head> {
    return (await reader.get<Head>(kvKeys.head(userId))).value ?? EMPTY_HEAD;
  }

  /** One write that must fit where an alarm would; clears the failed state when it commits. */
  async function probeWrite(): Promise<void> {
    probeFlip ^= 1;
    const value = new Uint8Array(PROBE_BYTES + probeFlip);
    for (let attempt = 0;; attempt++) {
      const started = performance.now();
      try {
        const atomic = kv.atomic();
        atomic.set(kvKeys.probe, value);
        await atomic.commit();
        lastCommitFailed = false;
        options.onCommit?.(performance.now() - started, 0);
        return;
      } catch (error) {
        if (isBusy(error) && attempt < LIMITS.retriesOnConflict) {
          await backoff(attempt);
          continue;
        }
        options.onError?.(error);
        throw new UnavailableError(
          "storage cannot commit: the last write failed, and so did a probe",
        );
      }
    }
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
          getMany(keyed.map((i) => {
            const k = i.idempotency!;
            return kvKeys.idempotency(k.scope, k.key, k.index);
          }))
        );
        entries.forEach((entry, n) => {
          const record = entry.value ? decode<IdempotencyRecord>(entry.value) : null;
          if (record && record.expiresAt > now && record.fp !== keyed[n].idempotency!.fingerprint) {
            throw new IdempotencyConflictError(
              "Idempotency-Key was already used with a different request body",
            );
          }
        });
      }
      return Promise.all(
        items.map((item) => enqueue<CreateOutcome>((done) => ({ kind: "create", item, done }))),
      );
    },

    get(userId, id) {
      return read(async () => {
        const entry = await reader.get<Uint8Array>(kvKeys.alarm(userId, id));
        if (!entry.value) return null;
        const alarm = decode<Alarm>(entry.value);
        return expired(alarm) ? null : alarm;
      });
    },

    list(userId, query: ListQuery): Promise<ListPage> {
      return read(async () => {
        const items: Alarm[] = [];
        const want = query.limit + 1;
        // Unread ones are found by scanning: at most the per-user cap, newest (mostly unread)
        // first, and not at all when the head counts none (the inbox's usual case).
        if (query.unreadOnly && (await readHead(userId)).unread === 0) {
          return { items, nextBefore: null };
        }
        const batchSize = Math.min(query.unreadOnly ? 4 * want : want, 500);
        for await (const alarm of scanNewestFirst(userId, query.before ?? null, batchSize)) {
          if (query.unreadOnly && alarm.readAt !== null) continue;
          items.push(alarm);
          if (items.length >= want) break;
        }
        const page = items.slice(0, query.limit);
        return {
          items: page,
          nextBefore: items.length > query.limit ? page[page.length - 1].id : null,
        };
      });
    },

    listAfter(userId, afterId, limit) {
      return read(async () => {
        const prefix = kvKeys.alarmsOf(userId);
        // Skip what retention has ended without reading it, however much awaits the sweeper.
        const live = firstLiveId();
        const from = afterId && incrementUlid(afterId) > live ? incrementUlid(afterId) : live;
        const out: Alarm[] = [];
        const selector = { prefix, start: [...prefix, from] };
        const batchSize = Math.min(limit + 1, 1000);
        for await (const entry of reader.list<Uint8Array>(selector, { batchSize })) {
          const alarm = decode<Alarm>(entry.value);
          if (expired(alarm)) continue;
          out.push(alarm);
          if (out.length >= limit) break;
        }
        return out;
      });
    },

    userState(userId): Promise<UserState> {
      return read(async () => {
        const head = await readHead(userId);
        return { lastId: head.last, floorId: head.floor, total: head.total, unread: head.unread };
      });
    },

    markRead(userId, id) {
      return enqueue((done) => ({ kind: "read", userId, id, done }));
    },

    markAllRead(userId) {
      return enqueue((done) => ({ kind: "readAll", userId, ids: [], before: null, done }));
    },

    delete(userId, id) {
      return enqueue((done) => ({ kind: "delete", userId, id, done }));
    },

    async sweepExpired() {
      let swept = 0;
      for (;;) {
        const cutoff = firstLiveId();
        const rows = await read(() =>
          listValues<unknown>({ prefix: kvKeys.expiryAll, end: [...kvKeys.expiryAll, cutoff] }, {
            limit: 500,
          })
        );
        if (rows.length === 0) return swept;
        const byUser = new Map<string, string[]>();
        for (const row of rows) {
          const [, id, userId] = row.key as [string, string, string];
          const list = byUser.get(userId) ?? [];
          list.push(id);
          byUser.set(userId, list);
        }
        const counts = await Promise.all(
          [...byUser].flatMap(([userId, all]) => {
            const parts: Promise<number>[] = [];
            for (let i = 0; i < all.length; i += 100) {
              const chunk = all.slice(i, i + 100);
              parts.push(enqueue((done) => ({ kind: "expire", userId, ids: chunk, done })));
            }
            return parts;
          }),
        );
        swept += counts.reduce((a, b) => a + b, 0);
        if (rows.length < 500) return swept;
      }
    },

    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },

    ping() {
      if (!lastCommitFailed) return Promise.resolve();
      const now = clock.now();
      if (probe === null || now - probe.at >= PROBE_INTERVAL_MS || now < probe.at) {
        probe = { at: now, verdict: probeWrite() };
      }
      return probe.verdict;
    },

    async close() {
      closed = true;
      while (inFlight.size > 0) await Promise.all(inFlight);
    },
  };
}

function emptyUserPlan(): UserPlan {
  return { head: EMPTY_HEAD, versionstamp: null, oldest: [], created: [] };
}

function alarmMapKey(userId: string, id: string) {
  return `${id}\u0000${userId}`;
}

/** The oldest alarm still present in this batch's view: stored ones first, then new ones. */
function nextVictim(user: UserPlan, alarms: Map<string, Alarm | null>, exclude: Alarm) {
  for (const candidate of [...user.oldest, ...user.created]) {
    if (candidate.id === exclude.id) continue;
    const current = alarms.get(alarmMapKey(candidate.userId, candidate.id));
    if (current === null) continue;
    return current ?? candidate;
  }
  return null;
}
