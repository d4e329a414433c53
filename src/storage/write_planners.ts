/**
 * One planner per kind of write: pure functions from a write and a plain snapshot of what it
 * touches (`BatchView`) to the KV mutations, the user's next state, the changes to announce and
 * the caller's outcome. Nothing here reads or writes KV, so each rule is tested on plain data.
 */
import type { Alarm } from "../domain/alarm.ts";
import { isExpired } from "../domain/alarm.ts";
import { NotFoundError } from "../domain/errors.ts";
import {
  afterCreate,
  afterDelete,
  afterDrop,
  afterRead,
  overCap,
  recounted,
} from "../domain/inbox_rules.ts";
import type { AlarmChange, CreateItem, CreateOutcome, UserState } from "../domain/ports.ts";
import {
  dropMutations,
  outboxMutation,
  storeMutations,
  updateMutation,
} from "./alarm_mutations.ts";
import { planErase } from "./erase_planner.ts";
import { deleteMutation, type Mutation, setMutation } from "./commit_budget.ts";
import { kvKeys } from "./kv_keys.ts";
import { encodeJson, idempotencyConflict, idempotencyVerdict } from "./kv_records.ts";
import {
  alarmViewKey,
  type BatchView,
  idempotencyViewKey,
  type Outcome,
  type PlanContext,
  type Step,
  type UserView,
  type WriteRequest,
} from "./write_plan.ts";

export function planWrite(write: WriteRequest, view: BatchView, ctx: PlanContext): Step {
  switch (write.kind) {
    case "create":
      return planCreate(write.item, view, ctx);
    case "read":
      return planRead(write.userId, write.id, view, ctx);
    case "readAll":
      return planReadAll(write.userId, write.ids, view, ctx);
    case "delete":
      return planDelete(write.userId, write.id, view, ctx);
    case "expire":
      return planExpire(write.userId, write.ids, view);
    case "recount":
      return planRecount(write.userId, view);
    case "erase":
      return planErase(write.userId, view);
  }
}

function noWrite(userId: string, state: UserState, outcome: Outcome): Step {
  return { userId, mutations: [], writesState: false, state, alarms: [], changes: [], outcome };
}

const notFound = (id: string) => new NotFoundError(`Cannot find alarm "${id}"`);

/** The alarm as this batch sees it, or null when absent or past retention. */
function liveAlarm(view: BatchView, ctx: PlanContext, userId: string, id: string) {
  const alarm = view.alarms.get(alarmViewKey(userId, id)) ?? null;
  return alarm && !isExpired(alarm, ctx.now, ctx.retentionMs) ? alarm : null;
}

export function planCreate(item: CreateItem, view: BatchView, ctx: PlanContext): Step {
  const userId = item.alarm.userId;
  const user = view.users.get(userId)!;
  const idem = item.idempotency;
  const idemKey = idem ? kvKeys.idempotency(idem.scope, idem.key, idem.index) : null;
  const idemView = idemKey ? view.idempotency.get(idempotencyViewKey(idemKey)) : undefined;
  if (idem) {
    const stored = idemView?.record ?? null;
    const verdict = idempotencyVerdict(stored, idem, ctx.now);
    if (verdict === "replay") {
      return noWrite(userId, user.state, {
        kind: "resolve",
        value: { alarm: stored!.alarm, replayed: true } satisfies CreateOutcome,
      });
    }
    if (verdict === "conflict") {
      return noWrite(userId, user.state, { kind: "reject", error: idempotencyConflict() });
    }
  }
  const alarm: Alarm = {
    id: ctx.nextId(ctx.now, user.state.lastId),
    userId,
    type: item.alarm.type,
    data: item.alarm.data,
    createdAt: new Date(ctx.now).toISOString(),
    readAt: null,
    notification: item.alarm.notification ?? null,
  };
  const mutations: Mutation[] = storeMutations(alarm, ctx);
  const pushes = item.push && alarm.notification ? 1 : 0;
  if (pushes) mutations.push(outboxMutation(alarm, ctx));
  let idempotency: Step["idempotency"];
  if (idem && idemKey) {
    const record = { fp: idem.fingerprint, alarm, expiresAt: ctx.now + ctx.idempotencyTtlMs };
    mutations.push(setMutation(idemKey, encodeJson(record), ctx.idempotencyTtlMs));
    idempotency = {
      viewKey: idempotencyViewKey(idemKey),
      key: idemKey,
      versionstamp: idemView?.versionstamp ?? null,
      record,
    };
  }
  let state = afterCreate(user.state, alarm.id);
  const victims = overCap(state, ctx.maxAlarmsPerUser, storedOldestFirst(view, user, alarm.id));
  const alarms: [string, Alarm | null][] = [[alarmViewKey(userId, alarm.id), alarm]];
  for (const victim of victims) {
    mutations.push(...dropMutations(victim));
    state = afterDrop(state, victim.id, victim);
    alarms.push([alarmViewKey(userId, victim.id), null]);
  }
  const changes: AlarmChange[] = [{ kind: "created", alarm, prevId: user.state.lastId }];
  if (victims.length > 0) {
    changes.push({ kind: "deleted", userId, ids: victims.map((v) => v.id), unread: state.unread });
  }
  return {
    userId,
    mutations,
    writesState: true,
    state,
    idempotency,
    alarms,
    user: { created: [...user.created, alarm] },
    changes,
    pushesQueued: pushes,
    outcome: { kind: "resolve", value: { alarm, replayed: false } satisfies CreateOutcome },
  };
}

/** The user's alarms still present in this batch's view, oldest first: stored, then new. */
function* storedOldestFirst(view: BatchView, user: UserView, exclude: string) {
  for (const candidate of [...user.oldest, ...user.created]) {
    if (candidate.id === exclude) continue;
    const current = view.alarms.get(alarmViewKey(candidate.userId, candidate.id));
    if (current === null) continue;
    yield current ?? candidate;
  }
}

export function planRead(userId: string, id: string, view: BatchView, ctx: PlanContext): Step {
  const { state } = view.users.get(userId)!;
  const alarm = liveAlarm(view, ctx, userId, id);
  if (!alarm) return noWrite(userId, state, { kind: "reject", error: notFound(id) });
  if (alarm.readAt !== null) {
    return noWrite(userId, state, {
      kind: "resolve",
      value: { changed: false, unread: state.unread },
    });
  }
  const updated = { ...alarm, readAt: new Date(ctx.now).toISOString() };
  const next = afterRead(state, 1);
  return {
    userId,
    mutations: [updateMutation(updated, ctx)],
    writesState: true,
    state: next,
    alarms: [[alarmViewKey(userId, id), updated]],
    changes: [{ kind: "read", userId, ids: [id], unread: next.unread }],
    outcome: { kind: "resolve", value: { changed: true, unread: next.unread } },
  };
}

/**
 * One pass of read-all over the listing the batch read. More passes follow while the listing
 * says there may be more; each resumes below the last id scanned, so passes always end.
 */
export function planReadAll(
  userId: string,
  earlierIds: readonly string[],
  view: BatchView,
  ctx: PlanContext,
): Step {
  const user = view.users.get(userId)!;
  const listing = user.unreadListing!;
  const readAt = new Date(ctx.now).toISOString();
  const mutations: Mutation[] = [];
  const alarms: [string, Alarm][] = [];
  const ids: string[] = [];
  for (const listed of listing.alarms) {
    const viewKey = alarmViewKey(userId, listed.id);
    const alarm = view.alarms.has(viewKey) ? liveAlarm(view, ctx, userId, listed.id) : listed;
    if (!alarm || alarm.readAt !== null) continue;
    const updated = { ...alarm, readAt };
    mutations.push(updateMutation(updated, ctx));
    alarms.push([viewKey, updated]);
    ids.push(alarm.id);
  }
  const state = afterRead(user.state, ids.length);
  const outcome: Outcome = listing.more
    ? { kind: "continue", ids, before: listing.last }
    : { kind: "resolve", value: { ids: [...earlierIds, ...ids], unread: state.unread } };
  return {
    userId,
    mutations,
    writesState: ids.length > 0,
    state,
    alarms,
    // A later read-all of the same user in this batch has nothing left to mark.
    user: { unreadListing: { alarms: [], more: false, last: listing.last } },
    changes: ids.length > 0 ? [{ kind: "read", userId, ids, unread: state.unread }] : [],
    outcome,
  };
}

export function planDelete(userId: string, id: string, view: BatchView, ctx: PlanContext): Step {
  const { state } = view.users.get(userId)!;
  const alarm = liveAlarm(view, ctx, userId, id);
  if (!alarm) return noWrite(userId, state, { kind: "reject", error: notFound(id) });
  const next = afterDelete(state, alarm);
  return {
    userId,
    mutations: dropMutations(alarm),
    writesState: true,
    state: next,
    alarms: [[alarmViewKey(userId, id), null]],
    changes: [{ kind: "deleted", userId, ids: [id], unread: next.unread }],
    outcome: { kind: "resolve", value: { unread: next.unread } },
  };
}

/**
 * Removes alarms past retention. An id whose alarm is already gone (KV's own expiry got there
 * first) leaves the counters wrong, so the outcome asks for a recount.
 */
export function planExpire(userId: string, ids: readonly string[], view: BatchView): Step {
  let { state } = view.users.get(userId)!;
  const mutations: Mutation[] = [];
  const alarms: [string, null][] = [];
  const removed: string[] = [];
  let missing = false;
  for (const id of ids) {
    const alarm = view.alarms.get(alarmViewKey(userId, id)) ?? null;
    if (alarm) {
      mutations.push(...dropMutations(alarm));
      alarms.push([alarmViewKey(userId, id), null]);
      removed.push(id);
    } else {
      mutations.push(deleteMutation(kvKeys.expiry(id, userId)));
      missing = true;
    }
    state = afterDrop(state, id, alarm);
  }
  return {
    userId,
    mutations,
    writesState: true,
    state,
    alarms,
    changes: removed.length > 0
      ? [{ kind: "deleted", userId, ids: removed, unread: state.unread }]
      : [],
    outcome: { kind: "resolve", value: removed.length, recount: missing },
  };
}

/** Replaces the counters with a count of every stored alarm (expired ones until swept). */
export function planRecount(userId: string, view: BatchView): Step {
  const user = view.users.get(userId)!;
  return {
    userId,
    mutations: [],
    writesState: true,
    state: recounted(user.state, user.all ?? []),
    alarms: [],
    changes: [],
    outcome: { kind: "resolve", value: undefined },
  };
}
