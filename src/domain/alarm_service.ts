import type { Alarm, NewAlarm } from "./alarm.ts";
import { ALARM_LIMITS, dataByteLength } from "./alarm.ts";
import { decodeCursor, encodeCursor } from "./cursor.ts";
import { NotFoundError, PayloadTooLargeError } from "./errors.ts";
import { fingerprint } from "./fingerprint.ts";
import type { AlarmStore, CreateItem, LiveBus } from "./ports.ts";
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
}

/**
 * The rules around the store: size limits, idempotency fingerprints, cursors. Every change the
 * store commits is published on the bus, in commit order, so every instance's streams hear it.
 */
export function createAlarmService(deps: { store: AlarmStore; bus: LiveBus }): AlarmService {
  const { store, bus } = deps;
  store.onChange((change) => bus.publish(change));

  function checkSize(alarm: NewAlarm, index?: number) {
    const size = dataByteLength(alarm.data);
    if (size > ALARM_LIMITS.dataMaxBytes) {
      const where = index === undefined ? "data" : `alarms[${index}].data`;
      throw new PayloadTooLargeError(
        `${where} is ${size} bytes serialized; the limit is ${ALARM_LIMITS.dataMaxBytes}`,
      );
    }
  }

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
      const [outcome] = await store.create([item]);
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
      const outcomes = await store.create(items);
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
  };
}
