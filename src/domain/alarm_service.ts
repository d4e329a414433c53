import type { Alarm, NewAlarm } from "./alarm.ts";
import { ALARM_LIMITS, dataByteLength } from "./alarm.ts";
import { decodeCursor, encodeCursor } from "./cursor.ts";
import { NotFoundError, PayloadTooLargeError } from "./errors.ts";
import { fingerprint } from "./fingerprint.ts";
import type { AlarmStore, CreateItem, LiveBus } from "./ports.ts";
import { checkPushPayload } from "./push_payload.ts";
import { isUlid } from "./ulid.ts";

export interface AlarmService {
  /** Durable before it resolves; `replayed` when the idempotency key answered a retry. */
  create(
    publisher: string,
    alarm: NewAlarm,
    idempotencyKey?: string,
  ): Promise<{ alarm: Alarm; replayed: boolean }>;
  /** Validates every item before storing any; each item keyed `key`+index for safe retries. */
  createBatch(
    publisher: string,
    alarms: readonly NewAlarm[],
    idempotencyKey?: string,
  ): Promise<{ items: Alarm[]; replayed: boolean }>;
  list(
    userId: string,
    query: { limit: number; cursor?: string; unreadOnly?: boolean },
  ): Promise<{ items: Alarm[]; nextCursor: string | null }>;
  unreadCount(userId: string): Promise<number>;
  markRead(userId: string, id: string): Promise<void>;
  markAllRead(userId: string): Promise<void>;
  delete(userId: string, id: string): Promise<void>;
  /** Erases everything of the user (a privacy request); their streams end everywhere. */
  eraseUser(userId: string): Promise<void>;
}

export interface AlarmServiceDeps {
  readonly store: AlarmStore;
  readonly bus: LiveBus;
  /**
   * Whether an alarm with a notification for `userId` is to be pushed, decided at commit (the
   * push policy and presence); the sender checks again before sending. Absent: push is off.
   */
  readonly pushDue?: (userId: string) => boolean;
}

/**
 * The rules around the store: size limits, idempotency fingerprints, cursors, whether a push is
 * due. Every change the store commits is published on the bus, in commit order, so every
 * instance's streams hear it.
 */
export function createAlarmService(deps: AlarmServiceDeps): AlarmService {
  const { store, bus, pushDue } = deps;
  store.onChange((change) => bus.publish(change));

  function checkSize(alarm: NewAlarm, index?: number) {
    const size = dataByteLength(alarm.data);
    if (size > ALARM_LIMITS.dataMaxBytes) {
      const where = index === undefined ? "data" : `alarms[${index}].data`;
      throw new PayloadTooLargeError(
        `${where} is ${size} bytes serialized; the limit is ${ALARM_LIMITS.dataMaxBytes}`,
      );
    }
    checkPushPayload(alarm, index === undefined ? "notification" : `alarms[${index}].notification`);
  }

  /** The item as stored: with `push` when a push is due for it. */
  const withPush = (item: CreateItem): CreateItem =>
    item.alarm.notification && pushDue?.(item.alarm.userId) ? { ...item, push: true } : item;

  const notFound = (id: string) => new NotFoundError(`Cannot find alarm "${id}"`);

  return {
    async create(publisher, alarm, idempotencyKey) {
      checkSize(alarm);
      const item: CreateItem = idempotencyKey
        ? {
          alarm,
          idempotency: {
            scope: publisher,
            key: idempotencyKey,
            index: null,
            fingerprint: await fingerprint(alarm),
          },
        }
        : { alarm };
      const [outcome] = await store.create([withPush(item)]);
      return outcome;
    },

    async createBatch(publisher, alarms, idempotencyKey) {
      alarms.forEach(checkSize);
      const items = await Promise.all(alarms.map(async (alarm, index): Promise<CreateItem> => {
        if (!idempotencyKey) return { alarm };
        return {
          alarm,
          idempotency: {
            scope: publisher,
            key: idempotencyKey,
            index,
            fingerprint: await fingerprint({ alarm, index, count: alarms.length }),
          },
        };
      }));
      const outcomes = await store.create(items.map(withPush));
      return {
        items: outcomes.map((o) => o.alarm),
        replayed: outcomes.every((o) => o.replayed),
      };
    },

    async list(userId, query) {
      const before = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
      const page = await store.list(userId, {
        limit: query.limit,
        before,
        unreadOnly: query.unreadOnly,
      });
      return {
        items: page.items,
        nextCursor: page.nextBefore ? encodeCursor(page.nextBefore) : null,
      };
    },

    async unreadCount(userId) {
      return (await store.userState(userId)).unread;
    },

    async markRead(userId, id) {
      if (!isUlid(id)) throw notFound(id);
      await store.markRead(userId, id);
    },

    async markAllRead(userId) {
      await store.markAllRead(userId);
    },

    async delete(userId, id) {
      if (!isUlid(id)) throw notFound(id);
      await store.delete(userId, id);
    },

    async eraseUser(userId) {
      await store.erase(userId);
    },
  };
}
