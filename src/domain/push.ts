/**
 * Web Push as the domain sees it: who to push to, what to push, and how a push service
 * answered. The sender (push/) and the stores (storage/) implement these; the dispatcher decides
 * from the answers what to retry, drop or forget.
 */

/** A browser's push subscription as alarmd keeps it. */
export interface PushSubscriptionRecord {
  /** Opaque id, for listing and deleting. */
  readonly id: string;
  readonly userId: string;
  /** The push service URL; never logged (its origin and the id are). */
  readonly endpoint: string;
  /** base64url: the browser's P-256 public key (65 bytes) and auth secret (16 bytes). */
  readonly keys: { readonly p256dh: string; readonly auth: string };
  /** Which VAPID key the browser subscribed with (its public key, base64url). */
  readonly vapidPublicKey: string;
  readonly createdAt: string;
}

/** The VAPID key pair every instance signs with: base64url raw P-256 keys. */
export interface VapidKeys {
  /** 65-byte uncompressed point. */
  readonly publicKey: string;
  /** 32-byte private scalar `d`. */
  readonly privateKey: string;
}

/** The alarm fields a push shows; stored with the alarm. */
export interface AlarmNotification {
  readonly title: string;
  readonly body?: string;
  /** A path on the app's origin or an https: URL. */
  readonly url?: string;
  readonly tag?: string;
}

/** How a push service answered one message. */
export type PushResult =
  /** 2xx: accepted. */
  | { readonly kind: "sent"; readonly status: number }
  /** 404/410: the subscription is gone for good; forget it. */
  | { readonly kind: "gone"; readonly status: number }
  /** 429, 5xx or a network failure: try again later, no sooner than `retryAfterMs` when given. */
  | {
    readonly kind: "retry";
    readonly status: number | null;
    readonly retryAfterMs: number | null;
    readonly reason: string;
  }
  /** Any other answer (other 4xx, a redirect) or a local failure: drop this message. */
  | { readonly kind: "rejected"; readonly status: number | null; readonly reason: string };

export interface PushRequest {
  readonly subscription: Pick<PushSubscriptionRecord, "endpoint" | "keys">;
  /** The plaintext, UTF-8 JSON of at most 3,072 bytes. */
  readonly payload: string;
  readonly ttlSeconds: number;
  readonly vapid: VapidKeys;
  /** `mailto:` or `https:` URL: the VAPID `sub`. */
  readonly subject: string;
}

/** Sends one encrypted, signed Web Push message. Never rejects: failures are results. */
export interface PushSender {
  send(request: PushRequest): Promise<PushResult>;
}

/** A subscription as the browser hands it over (`PushSubscription.toJSON()`). */
export interface NewPushSubscription {
  readonly endpoint: string;
  readonly keys: { readonly p256dh: string; readonly auth: string };
}

/** Push subscriptions, at most a few per user; an endpoint belongs to one user at a time. */
export interface PushSubscriptionStore {
  /**
   * Registers `subscription` for `userId`, made with `vapidPublicKey`. The same endpoint again
   * answers the stored record (`created: false`, its keys refreshed); an endpoint registered by
   * another user moves to this one; past `maxPerUser`, the user's oldest is replaced.
   */
  register(
    userId: string,
    subscription: NewPushSubscription,
    vapidPublicKey: string,
    maxPerUser: number,
  ): Promise<{ record: PushSubscriptionRecord; created: boolean }>;
  /** The user's subscriptions, oldest first. */
  list(userId: string): Promise<PushSubscriptionRecord[]>;
  /** False when the user has no such subscription. */
  delete(userId: string, id: string): Promise<boolean>;
  /** Removes a subscription its push service declared gone, unless it was registered again. */
  forget(record: PushSubscriptionRecord): Promise<void>;
}

/** A push waiting to be sent: one per alarm. */
export interface OutboxEntry {
  readonly alarmId: string;
  readonly userId: string;
  readonly dueAt: number;
  readonly expiresAt: number;
  readonly attempts: number;
  /** Subscription ids still to send to; absent: every subscription of the user. */
  readonly remaining?: readonly string[];
}

/**
 * The pushes due: written in the same commit as their alarms, removed once sent or given up.
 * One instance at a time sends, holding the sender lease.
 */
export interface PushOutbox {
  /** Takes or renews the sender lease for `ms`; false while another instance holds it. */
  lease(owner: string, ms: number): Promise<boolean>;
  /** Up to `limit` entries due at `now`, oldest first. */
  due(now: number, limit: number): Promise<OutboxEntry[]>;
  /** Removes `done` and moves each retry to its new due time, in one write where they fit. */
  settle(
    done: readonly OutboxEntry[],
    retries: readonly { entry: OutboxEntry; dueAt: number; remaining?: readonly string[] }[],
  ): Promise<void>;
  /** How many entries wait, and the oldest due time. */
  stats(): Promise<{ pending: number; oldestDueAt: number | null }>;
  /** Removes the `count` oldest entries (the outbox is over its bound); returns how many. */
  dropOldest(count: number): Promise<number>;
}
