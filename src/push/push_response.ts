/**
 * What a push service's answer means for the message (RFC 8030 section 5 and the services'
 * documented codes): accepted, the subscription is gone, try again later, or drop it. Redirects
 * count as refusals, because following one would let a push service point alarmd anywhere.
 */
import type { PushResult } from "../domain/push.ts";

/** The result for an answer with `status` and `Retry-After` header `retryAfter`, at `nowMs`. */
export function pushResultOf(status: number, retryAfter: string | null, nowMs: number): PushResult {
  if (status >= 200 && status < 300) return { kind: "sent", status };
  if (status === 404 || status === 410) return { kind: "gone", status };
  if (status === 429 || (status >= 500 && status < 600)) {
    return {
      kind: "retry",
      status,
      retryAfterMs: retryAfterMsOf(retryAfter, nowMs),
      reason: `the push service answered ${status}`,
    };
  }
  if (status >= 300 && status < 400) {
    return { kind: "rejected", status, reason: `the push service redirected (${status})` };
  }
  return { kind: "rejected", status, reason: `the push service answered ${status}` };
}

/**
 * A `Retry-After` value (delay-seconds or an HTTP-date, RFC 9110 section 10.2.3) as
 * milliseconds from `nowMs`: null when absent or unreadable, 0 for a date already past.
 */
export function retryAfterMsOf(value: string | null, nowMs: number): number | null {
  if (value === null) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) {
    const ms = Number(text) * 1000;
    return Number.isSafeInteger(ms) ? ms : null;
  }
  // Date.parse reads almost anything; an HTTP-date always starts with the day's name.
  if (!/^(Mon|Tue|Wed|Thu|Fri|Sat|Sun)/.test(text)) return null;
  const at = Date.parse(text);
  return Number.isNaN(at) ? null : Math.max(0, at - nowMs);
}
