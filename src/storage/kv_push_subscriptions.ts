import type {
  NewPushSubscription,
  PushSubscriptionRecord,
  PushSubscriptionStore,
} from "../domain/push.ts";
import { createUlidGenerator } from "../domain/ulid.ts";
import { kvKeys } from "./kv_keys.ts";
import { backoff, isBusy, RETRIES_ON_CONFLICT } from "./kv_retry.ts";

/** Who owns an endpoint: stored under ["e", endpoint]. */
interface EndpointOwner {
  readonly userId: string;
  readonly id: string;
}

/**
 * Push subscriptions on Deno KV: each under its user (["U", userId, "s", id], ids in creation
 * order) and each endpoint's owner under ["e", endpoint], changed together with a check on the
 * owner, so that an endpoint belongs to one user even when two register it at once.
 */
export function createKvPushSubscriptions(
  kv: Deno.Kv,
  clock: { now(): number },
  /** A second handle for lists, so that the sender's reads do not wait behind commits. */
  readKv: Deno.Kv = kv,
): PushSubscriptionStore {
  const ids = createUlidGenerator();

  async function list(userId: string): Promise<PushSubscriptionRecord[]> {
    const out: PushSubscriptionRecord[] = [];
    const selector = { prefix: kvKeys.pushSubscriptionsOf(userId) };
    for await (const row of readKv.list<PushSubscriptionRecord>(selector)) out.push(row.value);
    return out;
  }

  /** Runs `attempt` until it commits: false means another writer changed what it checked. */
  async function retrying<T>(attempt: () => Promise<T | false>): Promise<T> {
    for (let n = 0;; n++) {
      try {
        const result = await attempt();
        if (result !== false) return result;
      } catch (error) {
        if (!isBusy(error) || n >= RETRIES_ON_CONFLICT) throw error;
      }
      if (n >= RETRIES_ON_CONFLICT) throw new Error("push subscriptions are too contended");
      await backoff(n);
    }
  }

  return {
    register(userId, subscription: NewPushSubscription, vapidPublicKey, maxPerUser) {
      const ownerKey = kvKeys.pushEndpoint(subscription.endpoint);
      return retrying(async () => {
        const owner = await kv.get<EndpointOwner>(ownerKey);
        const atomic = kv.atomic().check(owner);
        if (owner.value?.userId === userId) {
          const key = kvKeys.pushSubscription(userId, owner.value.id);
          const stored = await kv.get<PushSubscriptionRecord>(key);
          if (stored.value) {
            // A browser may renew its keys for the same endpoint: the newest are the ones to use.
            const record = { ...stored.value, keys: subscription.keys, vapidPublicKey };
            const result = await atomic.check(stored).set(key, record).commit();
            return result.ok ? { record, created: false } : false;
          }
        } else if (owner.value) {
          // The browser now belongs to another user: the previous one gets nothing through it.
          atomic.delete(kvKeys.pushSubscription(owner.value.userId, owner.value.id));
        }
        const existing = (await list(userId)).filter((s) => s.endpoint !== subscription.endpoint);
        for (const old of existing.slice(0, Math.max(0, existing.length - maxPerUser + 1))) {
          atomic.delete(kvKeys.pushSubscription(userId, old.id));
          atomic.delete(kvKeys.pushEndpoint(old.endpoint));
        }
        const now = clock.now();
        const record: PushSubscriptionRecord = {
          id: ids.next(now, existing.at(-1)?.id ?? null),
          userId,
          endpoint: subscription.endpoint,
          keys: { p256dh: subscription.keys.p256dh, auth: subscription.keys.auth },
          vapidPublicKey,
          createdAt: new Date(now).toISOString(),
        };
        atomic.set(kvKeys.pushSubscription(userId, record.id), record);
        atomic.set(ownerKey, { userId, id: record.id } satisfies EndpointOwner);
        return (await atomic.commit()).ok ? { record, created: true } : false;
      });
    },

    list,

    delete(userId, id) {
      return retrying(async () => {
        const stored = await kv.get<PushSubscriptionRecord>(kvKeys.pushSubscription(userId, id));
        if (!stored.value) return null;
        const ownerKey = kvKeys.pushEndpoint(stored.value.endpoint);
        const owner = await kv.get<EndpointOwner>(ownerKey);
        const atomic = kv.atomic().check(stored, owner).delete(stored.key);
        if (owner.value?.id === id) atomic.delete(ownerKey);
        return (await atomic.commit()).ok ? true : false;
      }).then((deleted) => deleted === true);
    },

    async forget(record) {
      await retrying(async () => {
        const ownerKey = kvKeys.pushEndpoint(record.endpoint);
        const owner = await kv.get<EndpointOwner>(ownerKey);
        if (owner.value?.id !== record.id) return null;
        const result = await kv.atomic().check(owner)
          .delete(ownerKey)
          .delete(kvKeys.pushSubscription(record.userId, record.id))
          .commit();
        return result.ok ? null : false;
      });
    },
  };
}
