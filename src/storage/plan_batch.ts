import type { AlarmChange, UserState } from "../domain/ports.ts";
import {
  type Check,
  createCommitBudget,
  deleteMutation,
  type Mutation,
  setMutation,
  sumMutation,
} from "./commit_budget.ts";
import { kvKeys } from "./kv_keys.ts";
import { toStoredUserState } from "./kv_records.ts";
import type { BatchView, Outcome, PlanContext, WriteRequest } from "./write_plan.ts";
import { planWrite } from "./write_planners.ts";

/** What one atomic commit does, and how each included write answers once it has committed. */
export interface BatchPlan {
  /** How many leading writes the plan holds; the rest wait for the next batch. */
  readonly included: number;
  readonly checks: readonly Check[];
  /** Empty when no included write changes anything: nothing to commit. */
  readonly mutations: readonly Mutation[];
  /** Each changed user's state as the commit stores it. */
  readonly states: ReadonlyMap<string, UserState>;
  /** Users whose state the commit deletes (erased). */
  readonly deletedStates: ReadonlySet<string>;
  readonly changes: readonly AlarmChange[];
  /** One per included write, in order. */
  readonly outcomes: readonly Outcome[];
}

/**
 * Plans as many leading writes as fit one atomic commit, updating `view` as each is admitted so
 * the next write of the same user sees it.
 *
 * `claim` is the writer claim this process holds (see writer_claim.ts): then the commit only
 * checks that the claim is unchanged. With null (shared mode), it checks the stored state of
 * every user it changes and each idempotency record it relies on being absent, and it changes
 * the claim key, so that a process holding the claim notices.
 */
export function planBatch(
  writes: readonly WriteRequest[],
  view: BatchView,
  ctx: PlanContext,
  claim: string | null,
): BatchPlan {
  const shared = claim === null;
  // The claim key is checked (claimed) or set (shared): reserve room for either.
  // And the outbox counter, added once when any write queues a push.
  const budget = createCommitBudget({ checks: 1, mutations: 2, keyBytes: 32, totalBytes: 128 });
  const checks: Check[] = shared ? [] : [{ key: kvKeys.writerClaim, versionstamp: claim }];
  const mutations: Mutation[] = [];
  const states = new Map<string, UserState>();
  const deletedStates = new Set<string>();
  const changes: AlarmChange[] = [];
  const outcomes: Outcome[] = [];
  const checkedIdempotency = new Set<string>();
  let pushesQueued = 0;

  for (const write of writes) {
    const step = planWrite(write, view, ctx);
    const user = view.users.get(step.userId)!;
    if (step.mutations.length > 0 || step.writesState) {
      const stepChecks: Check[] = [];
      const stepMutations = [...step.mutations];
      const stateKey = kvKeys.userState(step.userId);
      if (!states.has(step.userId)) {
        // Staged for its size: the user's state is written once, when the plan is complete.
        stepMutations.push(setMutation(stateKey, null));
        if (shared) stepChecks.push({ key: stateKey, versionstamp: user.versionstamp });
      }
      const idem = step.idempotency;
      if (shared && idem && !checkedIdempotency.has(idem.viewKey)) {
        stepChecks.push({ key: idem.key, versionstamp: idem.versionstamp });
      }
      if (!budget.admit(stepMutations, stepChecks)) break;
      checks.push(...stepChecks);
      mutations.push(...step.mutations);
      if (idem) {
        checkedIdempotency.add(idem.viewKey);
        view.idempotency.set(idem.viewKey, { record: idem.record, versionstamp: null });
      }
      for (const [key, alarm] of step.alarms) view.alarms.set(key, alarm);
      if (step.writesState) states.set(step.userId, step.state);
      if (step.deletesState) deletedStates.add(step.userId);
      changes.push(...step.changes);
      pushesQueued += step.pushesQueued ?? 0;
    }
    view.users.set(step.userId, { ...user, ...step.user, state: step.state });
    outcomes.push(step.outcome);
  }
  if (states.size > 0) {
    for (const [userId, state] of states) {
      const key = kvKeys.userState(userId);
      mutations.push(
        deletedStates.has(userId)
          ? deleteMutation(key)
          : setMutation(key, toStoredUserState(state)),
      );
    }
    if (shared) mutations.push(setMutation(kvKeys.writerClaim, 1));
  }
  if (pushesQueued > 0) mutations.push(sumMutation(kvKeys.outboxAdded, pushesQueued));
  return { included: outcomes.length, checks, mutations, states, deletedStates, changes, outcomes };
}
