import type { Alarm, NewAlarm } from "./alarm.ts";
import { ALARM_LIMITS } from "./alarm.ts";
import { InvalidRequestError } from "./errors.ts";

/** What a push carries, decrypted by the browser's service worker: the alarm's notification. */
export function pushPayload(alarm: Alarm): string {
  const n = alarm.notification!;
  return JSON.stringify({
    id: alarm.id,
    type: alarm.type,
    title: n.title,
    body: n.body ?? null,
    url: n.url ?? null,
    tag: n.tag ?? null,
    createdAt: alarm.createdAt,
  });
}

const encoder = new TextEncoder();

/**
 * Refuses a new alarm whose push payload would pass the limit, before anything is stored: the
 * id and timestamp it will get have fixed lengths, so the size is known now.
 */
export function checkPushPayload(alarm: NewAlarm, where = "notification"): void {
  if (!alarm.notification) return;
  const bytes = encoder.encode(pushPayload({
    id: "0".repeat(26),
    userId: alarm.userId,
    type: alarm.type,
    data: {},
    createdAt: new Date(0).toISOString(),
    readAt: null,
    notification: alarm.notification,
  })).byteLength;
  if (bytes > ALARM_LIMITS.pushPayloadMaxBytes) {
    throw new InvalidRequestError(
      `${where} makes a push payload of ${bytes} bytes; the limit is ` +
        `${ALARM_LIMITS.pushPayloadMaxBytes} (UTF-8 JSON of id, type, title, body, url, tag, createdAt)`,
    );
  }
}
