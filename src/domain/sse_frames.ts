import type { Alarm } from "./alarm.ts";

/**
 * SSE framing (https://html.spec.whatwg.org/multipage/server-sent-events.html), shared by every
 * transport so that no sink can frame differently. A field value with CR or LF would end the
 * field early and let its remainder be parsed as new fields, so `id` and `event` refuse them and
 * `data` is split into one `data:` line per line.
 */
const LINE_BREAK = /\r\n|\r|\n/;

function assertSingleLine(field: string, value: string) {
  if (/[\r\n\0]/.test(value)) throw new TypeError(`SSE ${field} must be a single line`);
}

/**
 * One event block. `retryMs` puts a `retry:` field in the same block: a block of its own would
 * carry no data, and some clients (@microsoft/fetch-event-source) surface it as an empty message.
 */
export function eventFrame(event: string, data: string, id?: string, retryMs?: number): string {
  assertSingleLine("event", event);
  let frame = retryMs === undefined ? "" : `retry: ${Math.max(0, Math.floor(retryMs))}\n`;
  if (id !== undefined) {
    assertSingleLine("id", id);
    frame += `id: ${id}\n`;
  }
  frame += `event: ${event}\n`;
  for (const line of data.split(LINE_BREAK)) frame += `data: ${line}\n`;
  return frame + "\n";
}

/**
 * A stream's first event: whom it serves, the user's unread count and newest id, and whether
 * the client's `Last-Event-ID` could not be resumed from (`replay: "reset"`).
 */
export function connectFrame(
  userId: string,
  connectionId: string,
  state: { readonly unread: number; readonly lastId: string | null },
  reset: boolean,
  retryMs: number,
): string {
  const { unread, lastId } = state;
  const data = { message: "connect complete", userId, connectionId, unread, lastId };
  return eventFrame(
    "connect",
    JSON.stringify(reset ? { ...data, replay: "reset" } : data),
    undefined,
    retryMs,
  );
}

/** An alarm's event: its id, and the alarm as JSON. */
export function alarmFrame(alarm: Alarm): string {
  return eventFrame("alarm", JSON.stringify(alarm), alarm.id);
}

export const PING_FRAME = ": ping\n\n";
