/**
 * The exact bytes the contract (shared/api.md, "Live stream") promises on the stream, written
 * out by hand so that a test compares what the server sent with the contract, not with itself.
 */
import type { Alarm } from "../../src/domain/alarm.ts";

/** The frame the contract promises for one alarm. */
export function alarmFrame(alarm: Alarm): string {
  return `id: ${alarm.id}\nevent: alarm\ndata: ${JSON.stringify(alarm)}\n\n`;
}

/** The frame for a `read` or `deleted` change. */
export function changeFrame(
  event: "read" | "deleted",
  ids: readonly string[],
  unread: number,
): string {
  return `event: ${event}\ndata: ${JSON.stringify({ ids, unread })}\n\n`;
}

/** A heartbeat. */
export const PING = ": ping\n\n";
