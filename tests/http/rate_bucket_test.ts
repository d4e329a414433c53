/**
 * A publisher's rate bucket holds at least a full batch (500 alarms), whatever
 * ALARMD_RATE_PUBLISH_PER_SECOND is, so no valid batch is refused forever; past the bucket,
 * Retry-After says exactly when the same request will pass.
 */
import assert from "node:assert/strict";
import { createFakeClock } from "../helpers/fake_clock.ts";
import type { TestServer } from "../helpers/test_server.ts";
import { startTestServer } from "../helpers/test_server.ts";

async function publishBatch(server: TestServer, token: string, count: number) {
  return await server.fetch("/api/v1/alarms/batch", {
    method: "POST",
    token,
    json: { alarms: Array.from({ length: count }, (_, n) => ({ userId: "kim", type: `t${n}` })) },
  });
}

/** Asserts the contract's 429 and returns its Retry-After in seconds. */
async function rateLimited(res: Response): Promise<number> {
  assert.equal(res.status, 429);
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
  assert.equal((await res.json()).error.code, "rate_limited");
  const retryAfter = Number(res.headers.get("retry-after"));
  assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1, `Retry-After ${retryAfter}`);
  return retryAfter;
}

for (const transport of ["node", "deno"] as const) {
  Deno.test(`[${transport}] at 10 alarms/s a batch of 500 is served, then refused with an honest Retry-After`, async () => {
    // Time moves only when the test says, so the bucket refills exactly as computed here.
    const clock = createFakeClock();
    await using server = await startTestServer(
      { transport, ratePublishPerSecond: 10, maxAlarmsPerUser: 5000 },
      { clock },
    );
    const publisher = await server.publisherToken("backend");

    const first = await publishBatch(server, publisher, 500);
    assert.equal(first.status, 201, "a full batch fits in the bucket at 10/s");
    assert.equal((await first.json()).items.length, 500);

    // The bucket is empty: 500 more take 50 s at 10/s, one alarm takes 1 s.
    assert.equal(await rateLimited(await publishBatch(server, publisher, 500)), 50);
    const single = await server.fetch("/api/v1/alarms", {
      method: "POST",
      token: publisher,
      json: { userId: "kim", type: "single" },
    });
    assert.equal(await rateLimited(single), 1);

    // One second short of the promise is still too early ...
    clock.tick(49_000);
    assert.equal(await rateLimited(await publishBatch(server, publisher, 500)), 1);
    // ... and the promised time is enough.
    clock.tick(1_000);
    const again = await publishBatch(server, publisher, 500);
    assert.equal(again.status, 201);
    await again.body?.cancel();

    const unread = await server.fetch("/api/v1/users/alarms/unread-count", {
      token: await server.userToken("kim"),
    });
    assert.deepEqual(await unread.json(), { unread: 1000 }, "refused requests stored nothing");
  });
}
