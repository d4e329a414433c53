import { afterDelete, NO_USER_STATE } from "../domain/inbox_rules.ts";
import { dropMutations } from "./alarm_mutations.ts";
import { deleteMutation, type Mutation } from "./commit_budget.ts";
import { kvKeys } from "./kv_keys.ts";
import { alarmViewKey, type BatchView, type Step } from "./write_plan.ts";

/**
 * One pass of an erasure: the user's oldest alarms up to a pass's worth; the last pass (nothing
 * more to list) also removes the push subscriptions and the user's state, and reports `erased`.
 */
export function planErase(userId: string, view: BatchView): Step {
  const user = view.users.get(userId)!;
  const pass = user.erasing!;
  const mutations: Mutation[] = [];
  let state = user.state;
  for (const alarm of pass.alarms) {
    mutations.push(...dropMutations(alarm));
    state = afterDelete(state, alarm);
  }
  const alarms = pass.alarms.map((a) => [alarmViewKey(userId, a.id), null] as const);
  if (pass.more) {
    return {
      userId,
      mutations,
      writesState: true,
      state,
      alarms,
      changes: [],
      outcome: { kind: "continue", ids: [], before: null },
    };
  }
  for (const sub of pass.subscriptions) {
    mutations.push(deleteMutation(kvKeys.pushSubscription(userId, sub.id)));
    if (sub.owned) mutations.push(deleteMutation(kvKeys.pushEndpoint(sub.endpoint)));
  }
  return {
    userId,
    mutations,
    writesState: true,
    deletesState: true,
    state: NO_USER_STATE,
    alarms,
    changes: [{ kind: "erased", userId }],
    outcome: { kind: "resolve", value: undefined },
  };
}
