import assert from "node:assert/strict";
import { pushResultOf, retryAfterMsOf } from "../../src/push/push_response.ts";

const NOW = Date.UTC(2026, 11, 1, 12, 0, 0);

Deno.test("Retry-After reads delay-seconds and the three HTTP-date forms", () => {
  assert.equal(retryAfterMsOf("120", NOW), 120_000);
  assert.equal(retryAfterMsOf(" 0 ", NOW), 0);
  assert.equal(retryAfterMsOf("Tue, 01 Dec 2026 12:01:00 GMT", NOW), 60_000);
  assert.equal(retryAfterMsOf("Tuesday, 01-Dec-26 12:00:30 GMT", NOW), 30_000);
  assert.equal(
    retryAfterMsOf("Tue Dec  1 12:00:10 2026", NOW - new Date(NOW).getTimezoneOffset() * 60_000),
    10_000,
  );
  assert.equal(retryAfterMsOf("Tue, 01 Dec 2026 11:00:00 GMT", NOW), 0, "a past date is now");
});

Deno.test("an unreadable Retry-After is null, never NaN or a guess", () => {
  for (
    const value of [null, "", "soon", "1.5", "-1", "1e3", "12abc", "9".repeat(400), "2026-12-01"]
  ) {
    assert.equal(retryAfterMsOf(value, NOW), null, String(value));
  }
});

Deno.test("statuses map to results: 1xx and other codes outside the table are rejected", () => {
  assert.deepEqual(pushResultOf(201, null, NOW), { kind: "sent", status: 201 });
  assert.deepEqual(pushResultOf(410, "5", NOW), { kind: "gone", status: 410 });
  assert.deepEqual(pushResultOf(429, "5", NOW), {
    kind: "retry",
    status: 429,
    retryAfterMs: 5000,
    reason: "the push service answered 429",
  });
  assert.equal(pushResultOf(599, null, NOW).kind, "retry");
  assert.equal(pushResultOf(304, null, NOW).kind, "rejected");
  assert.equal(pushResultOf(401, "5", NOW).kind, "rejected");
  assert.equal(pushResultOf(600, null, NOW).kind, "rejected");
  assert.equal(pushResultOf(101, null, NOW).kind, "rejected");
});
