import type { AlarmNotification } from "./push.ts";

/** An alarm as users, the API and the stream see it. */
export interface Alarm {
  /** A ULID: sorts in creation order per user, unique across processes. */
  readonly id: string;
  readonly userId: string;
  readonly type: string;
  readonly data: Record<string, unknown>;
  /** ISO-8601 UTC. */
  readonly createdAt: string;
  /** ISO-8601 UTC, or null while unread. */
  readonly readAt: string | null;
  /** What a Web Push shows when the user has no tab open; only such alarms are pushed. */
  readonly notification: AlarmNotification | null;
}

/** What a publisher asks for; the store assigns id and timestamps. */
export interface NewAlarm {
  readonly userId: string;
  readonly type: string;
  readonly data: Record<string, unknown>;
  readonly notification?: AlarmNotification;
}

/** Limits that are part of the product contract (api.md), shared by validation and storage. */
export const ALARM_LIMITS = {
  userIdMax: 128,
  typeMax: 64,
  dataMaxBytes: 8 * 1024,
  batchMax: 500,
  idempotencyKeyMax: 128,
  notificationTitleMax: 120,
  notificationBodyMax: 500,
  notificationUrlMax: 2048,
  notificationTagMax: 64,
  /** The decrypted push payload; push services take about 4 KiB once encrypted. */
  pushPayloadMaxBytes: 3072,
} as const;

/** Type names travel in SSE frames and logs, so the alphabet excludes anything that could frame. */
export const ALARM_TYPE_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;

const encoder = new TextEncoder();

/** Size of `data` as stored and as counted against `dataMaxBytes`: UTF-8 bytes of its JSON. */
export function dataByteLength(data: Record<string, unknown>): number {
  return encoder.encode(JSON.stringify(data)).byteLength;
}

/** Whether an alarm created at `createdAt` is past retention at `nowMs`. */
export function isExpired(alarm: Alarm, nowMs: number, retentionMs: number): boolean {
  return Date.parse(alarm.createdAt) + retentionMs <= nowMs;
}
