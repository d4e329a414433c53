import type { OutboxEntry, PushOutbox } from "../domain/push.ts";
import {
  applyMutations,
  deleteMutation,
  type Mutation,
  setMutation,
  sumMutation,
} from "./commit_budget.ts";
import { kvKeys } from "./kv_keys.ts";
import { decodeJson, encodeJson, type OutboxRecord } from "./kv_records.ts";
import { commitUnlessBusy } from "./kv_retry.ts";

/** Entries per commit when settling: each retry is a delete and a set. */
const MUTATIONS_PER_COMMIT = 800;

interface Lease {
  readonly owner: string;
  readonly until: number;
}

/**
 * The push outbox on Deno KV. Entries are keyed by when they are next due, so what is due is a
 * range read from the start. Only the lease holder moves or removes entries, so settling needs no
 * checks; creates add entries in their alarm's commit. Two counters (added, removed) give the
 * depth without a scan: sums commute, so neither side ever conflicts on them.
 */
export function createKvPushOutbox(
  kv: Deno.Kv,
  clock: { now(): number },
  lifetimeMarginMs: number,
): PushOutbox {
  const keyOf = (e: Pick<OutboxEntry, "dueAt" | "alarmId" | "userId">) =>
    kvKeys.outbox(e.dueAt, e.alarmId, e.userId);

  async function commitInChunks(mutations: Mutation[]) {
    for (let i = 0; i < mutations.length; i += MUTATIONS_PER_COMMIT) {
      const chunk = mutations.slice(i, i + MUTATIONS_PER_COMMIT);
      await commitUnlessBusy(() => {
        const atomic = kv.atomic();
        applyMutations(atomic, chunk);
        return atomic;
      });
    }
  }

  async function counters() {
    const [added, removed] = await kv.getMany<[Deno.KvU64, Deno.KvU64]>([
      kvKeys.outboxAdded,
      kvKeys.outboxRemoved,
    ]);
    return { added: added.value?.value ?? 0n, removed: removed.value?.value ?? 0n };
  }

  return {
    async lease(owner, ms) {
      const now = clock.now();
      const current = await kv.get<Lease>(kvKeys.pushDispatcher);
      if (current.value && current.value.owner !== owner && current.value.until > now) return false;
      const result = await commitUnlessBusy(() =>
        kv.atomic().check(current)
          .set(kvKeys.pushDispatcher, { owner, until: now + ms } satisfies Lease)
      );
      return result.ok;
    },

    async due(now, limit) {
      const entries: OutboxEntry[] = [];
      const selector = { start: kvKeys.outboxAll, end: [...kvKeys.outboxAll, now + 1] };
      for await (const row of kv.list<Uint8Array>(selector, { limit })) {
        const [, dueAt, alarmId, userId] = row.key as [string, number, string, string];
        const record = decodeJson<OutboxRecord>(row.value);
        entries.push({ alarmId, userId, dueAt, ...record });
      }
      return entries;
    },

    async settle(done, retries) {
      const mutations: Mutation[] = [];
      for (const entry of done) mutations.push(deleteMutation(keyOf(entry)));
      for (const { entry, dueAt, remaining } of retries) {
        const record: OutboxRecord = {
          expiresAt: entry.expiresAt,
          attempts: entry.attempts + 1,
          remaining,
        };
        const lifetime = Math.max(1, entry.expiresAt - clock.now() + lifetimeMarginMs);
        mutations.push(
          deleteMutation(keyOf(entry)),
          setMutation(keyOf({ ...entry, dueAt }), encodeJson(record), lifetime),
        );
      }
      if (done.length > 0) mutations.push(sumMutation(kvKeys.outboxRemoved, done.length));
      await commitInChunks(mutations);
    },

    async stats() {
      const { added, removed } = await counters();
      let oldestDueAt: number | null = null;
      for await (const row of kv.list({ prefix: kvKeys.outboxAll }, { limit: 1 })) {
        oldestDueAt = row.key[1] as number;
      }
      let pending = Number(added - removed);
      if (oldestDueAt === null && pending !== 0) {
        // Entries KV's own expiry removed were never counted out: an empty outbox says so.
        if (pending > 0) {
          await commitUnlessBusy(() => kv.atomic().sum(kvKeys.outboxRemoved, BigInt(pending)));
        }
        pending = 0;
      }
      return { pending: Math.max(0, pending), oldestDueAt };
    },

    async dropOldest(count) {
      const keys: Deno.KvKey[] = [];
      for await (const row of kv.list({ prefix: kvKeys.outboxAll }, { limit: count })) {
        keys.push(row.key);
      }
      const mutations = keys.map(deleteMutation);
      if (keys.length > 0) mutations.push(sumMutation(kvKeys.outboxRemoved, keys.length));
      await commitInChunks(mutations);
      return keys.length;
    },
  };
}
