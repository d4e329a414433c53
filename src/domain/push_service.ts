import {
  EndpointNotAllowedError,
  InvalidRequestError,
  NotFoundError,
  PushDisabledError,
} from "./errors.ts";
import type { NewPushSubscription, PushSubscriptionRecord, PushSubscriptionStore } from "./push.ts";

/** Subscriptions a user keeps at most; a new one past it replaces the oldest. */
export const MAX_PUSH_SUBSCRIPTIONS_PER_USER = 10;

export interface PushService {
  /** The public key browsers subscribe with; PushDisabledError when push is off. */
  publicKey(): string;
  register(
    userId: string,
    subscription: NewPushSubscription,
  ): Promise<{ record: PushSubscriptionRecord; created: boolean }>;
  list(userId: string): Promise<PushSubscriptionRecord[]>;
  delete(userId: string, id: string): Promise<void>;
}

export interface PushServiceDeps {
  readonly subscriptions: PushSubscriptionStore;
  /** The current VAPID public key, or null when push is off. */
  readonly vapidPublicKey: string | null;
  /** Why an endpoint is refused (not a known push service), or null when it is allowed. */
  readonly endpointProblem: (endpoint: string) => string | null;
  /** Why the subscription's keys are unusable, or null. */
  readonly keysProblem: (keys: NewPushSubscription["keys"]) => string | null;
}

/** Users' browser subscriptions: validated, one owner per endpoint, a few per user. */
export function createPushService(deps: PushServiceDeps): PushService {
  const enabled = () => {
    if (deps.vapidPublicKey === null) {
      throw new PushDisabledError("push is not enabled on this server");
    }
    return deps.vapidPublicKey;
  };
  return {
    publicKey: enabled,
    async register(userId, subscription) {
      const vapidPublicKey = enabled();
      const keys = deps.keysProblem(subscription.keys);
      if (keys !== null) throw new InvalidRequestError(`keys: ${keys}`);
      const endpoint = deps.endpointProblem(subscription.endpoint);
      if (endpoint !== null) throw new EndpointNotAllowedError(`endpoint: ${endpoint}`);
      return await deps.subscriptions.register(
        userId,
        subscription,
        vapidPublicKey,
        MAX_PUSH_SUBSCRIPTIONS_PER_USER,
      );
    },
    list(userId) {
      enabled();
      return deps.subscriptions.list(userId);
    },
    async delete(userId, id) {
      enabled();
      if (!(await deps.subscriptions.delete(userId, id))) {
        throw new NotFoundError(`Cannot find push subscription "${id}"`);
      }
    },
  };
}

/** What a server without push answers: every call is `404 push_disabled`. */
export function disabledPushService(): PushService {
  const error = () => new PushDisabledError("push is not enabled on this server");
  return {
    publicKey: () => {
      throw error();
    },
    register: () => Promise.reject(error()),
    list: () => Promise.reject(error()),
    delete: () => Promise.reject(error()),
  };
}
