/**
 * The vocabulary of planning a batch of writes: the writes, the plain snapshot a batch reads
 * (`BatchView`), and the `Step` a planner turns one write into.
 */
import type { Alarm } from "../domain/alarm.ts";
import type { AlarmChange, CreateItem, UserState } from "../domain/ports.ts";
import type { Mutation } from "./commit_budget.ts";
import type { IdempotencyRecord } from "./kv_records.ts";

/** A write as queued: plain data (the queue adds how to answer its caller). */
export type WriteRequest =
  | { readonly kind: "create"; readonly item: CreateItem }
  | { readonly kind: "read"; readonly userId: string; readonly id: string }
  | {
    readonly kind: "readAll";
    readonly userId: string;
    /** Ids earlier passes marked read. */
    readonly ids: readonly string[];
    /** Where this pass's scan resumes (it runs newest first): below this id. */
    readonly before: string | null;
  }
  | { readonly kind: "delete"; readonly userId: string; readonly id: string }
  | { readonly kind: "expire"; readonly userId: string; readonly ids: readonly string[] }
  | { readonly kind: "recount"; readonly userId: string }
  | { readonly kind: "erase"; readonly userId: string };

/** What a read-all pass found: the unread alarms, whether there may be more, the last id seen. */
export interface UnreadListing {
  readonly alarms: readonly Alarm[];
  readonly more: boolean;
  readonly last: string | null;
}

/** What a batch knows about one user. */
export interface UserView {
  readonly state: UserState;
  /** The stored state's versionstamp: the user's optimistic lock. */
  readonly versionstamp: string | null;
  /** Oldest stored alarms, ascending: the victims when a create passes the cap. */
  readonly oldest: readonly Alarm[];
  /** Alarms this batch creates, ascending. */
  readonly created: readonly Alarm[];
  /** For read-all: this pass's listing. */
  readonly unreadListing?: UnreadListing;
  /** For recount: every stored alarm. */
  readonly all?: readonly Alarm[];
  /** For erase: this pass's share of the user's keys. */
  readonly erasing?: ErasePass;
}

/** What one pass of an erasure removes. */
export interface ErasePass {
  /** The user's oldest alarms, up to a pass's worth; fewer means this pass is the last. */
  readonly alarms: readonly Alarm[];
  readonly more: boolean;
  /** The user's push subscriptions, and whether each endpoint's owner record is still theirs. */
  readonly subscriptions: readonly { id: string; endpoint: string; owned: boolean }[];
}

export interface IdempotencyView {
  readonly record: IdempotencyRecord | null;
  readonly versionstamp: string | null;
}

/** Everything a batch read, updated as each planned write is admitted. */
export interface BatchView {
  readonly users: Map<string, UserView>;
  /** By `alarmViewKey`; null once this batch removed it. Only what the batch's writes named. */
  readonly alarms: Map<string, Alarm | null>;
  /** By `idempotencyViewKey`. */
  readonly idempotency: Map<string, IdempotencyView>;
}

export interface PlanContext {
  readonly now: number;
  readonly retentionMs: number;
  readonly expiryMarginMs: number;
  readonly idempotencyTtlMs: number;
  readonly maxAlarmsPerUser: number;
  /** How long a due push may wait in the outbox. */
  readonly pushTtlMs: number;
  /** A new id for the user: above `lastId` and every id handed out before. */
  readonly nextId: (now: number, lastId: string | null) => string;
}

/** How a planned write answers its caller once its batch has committed. */
export type Outcome =
  | { readonly kind: "resolve"; readonly value: unknown; readonly recount?: boolean }
  | { readonly kind: "reject"; readonly error: Error }
  | { readonly kind: "continue"; readonly ids: readonly string[]; readonly before: string | null };

export interface Step {
  readonly userId: string;
  readonly mutations: readonly Mutation[];
  /** Whether the user's state is written (the state may be unchanged, as by a recount). */
  readonly writesState: boolean;
  /** Whether the user's state is deleted instead (an erasure's last pass). */
  readonly deletesState?: boolean;
  readonly state: UserState;
  /** The idempotency record the step relies on being absent, and the one it stores. */
  readonly idempotency?: {
    readonly viewKey: string;
    readonly key: Deno.KvKey;
    readonly versionstamp: string | null;
    readonly record: IdempotencyRecord;
  };
  /** What the batch view holds for these alarms once the step is admitted. */
  readonly alarms: readonly (readonly [string, Alarm | null])[];
  readonly user?: Partial<Pick<UserView, "created" | "unreadListing">>;
  readonly changes: readonly AlarmChange[];
  readonly outcome: Outcome;
  /** How many outbox records the step adds (a due push per created alarm). */
  readonly pushesQueued?: number;
}

export const alarmViewKey = (userId: string, id: string): string => `${id}\u0000${userId}`;
export const idempotencyViewKey = (key: Deno.KvKey): string => JSON.stringify(key);

export function userOf(write: WriteRequest): string {
  return write.kind === "create" ? write.item.alarm.userId : write.userId;
}
