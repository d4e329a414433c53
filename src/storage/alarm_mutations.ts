/** The KV writes that store, update, drop and push one alarm, for the planners. */
import type { Alarm } from "../domain/alarm.ts";
import { deleteMutation, type Mutation, setMutation } from "./commit_budget.ts";
import { kvKeys } from "./kv_keys.ts";
import { encodeJson, INDEX_VALUE, type OutboxRecord } from "./kv_records.ts";
import type { PlanContext } from "./write_plan.ts";

/** A new alarm and its retention entry; KV's own expiry backs the sweeper up. */
export function storeMutations(alarm: Alarm, ctx: PlanContext): Mutation[] {
  return [
    setMutation(
      kvKeys.alarm(alarm.userId, alarm.id),
      encodeJson(alarm),
      ctx.retentionMs + ctx.expiryMarginMs,
    ),
    setMutation(kvKeys.expiry(alarm.id, alarm.userId), INDEX_VALUE),
  ];
}

/** An alarm changed in place (read): its lifetime still ends where it did. */
export function updateMutation(alarm: Alarm, ctx: PlanContext): Mutation {
  return setMutation(
    kvKeys.alarm(alarm.userId, alarm.id),
    encodeJson(alarm),
    expireInOf(alarm, ctx),
  );
}

/** The stored alarm's lifetime from now: retention after its creation, plus the margin. */
function expireInOf(alarm: Alarm, ctx: PlanContext) {
  return Math.max(
    1,
    Date.parse(alarm.createdAt) + ctx.retentionMs + ctx.expiryMarginMs - ctx.now,
  );
}

export function dropMutations(alarm: Alarm): Mutation[] {
  return [
    deleteMutation(kvKeys.alarm(alarm.userId, alarm.id)),
    deleteMutation(kvKeys.expiry(alarm.id, alarm.userId)),
  ];
}

/** The alarm's due push, one record whatever the number of subscriptions. */
export function outboxMutation(alarm: Alarm, ctx: PlanContext): Mutation {
  const record: OutboxRecord = { expiresAt: ctx.now + ctx.pushTtlMs, attempts: 0 };
  const key = kvKeys.outbox(ctx.now, alarm.id, alarm.userId);
  return setMutation(key, encodeJson(record), ctx.pushTtlMs + ctx.expiryMarginMs);
}
