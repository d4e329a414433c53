import assert from "node:assert/strict";
import { FD_RESERVE, parseOpenFileLimit, streamCap } from "../../src/open_file_limit.ts";
import { startServeProcess } from "../helpers/process.ts";
import { openSse, type SseStream } from "../helpers/sse_client.ts";
import { publisherToken, userToken } from "../helpers/test_server.ts";

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            20000                20000                files
Max locked memory         8388608              8388608              bytes
`;

Deno.test("the soft open-file limit is read from /proc's limits text", () => {
  assert.equal(parseOpenFileLimit(LIMITS), 20000);
  assert.equal(parseOpenFileLimit(LIMITS.replace("20000 ", "unlimited ")), null);
  assert.equal(parseOpenFileLimit("Max cpu time unlimited"), null);
});

Deno.test("streams are capped at the open files left after the reserve, shared by workers", () => {
  assert.equal(streamCap(100_000, 20_000), 20_000 - FD_RESERVE);
  assert.equal(streamCap(100_000, 20_000, 4), Math.floor((20_000 - FD_RESERVE) / 4));
  assert.equal(streamCap(500, 20_000), 500);
  assert.equal(streamCap(100_000, null), 100_000);
  assert.equal(streamCap(100_000, 100), 0);
});

Deno.test("under a low ulimit -n, streams past the open files get 503 and publishing keeps working", async () => {
  const cap = 60;
  await using proc = await startServeProcess({}, [], { openFileLimit: FD_RESERVE + cap });
  const warning = proc.logs().find((l) => String(l.msg).startsWith("the open-file limit caps"));
  assert.equal(warning?.streamsPerWorker, cap, proc.stderr());

  const subscribe = `${proc.url}/api/v1/users/alarm/subscribe`;
  const streams: SseStream[] = [];
  try {
    for (let i = 0; i < cap; i++) {
      const s = await openSse(subscribe, { token: await userToken(`user-${i}`) });
      streams.push(s);
      assert.equal(s.status, 200);
    }
    const refused = await fetch(subscribe, {
      headers: { authorization: `Bearer ${await userToken("one-too-many")}` },
    });
    assert.equal(refused.status, 503);
    assert.ok(refused.headers.get("retry-after"));
    assert.equal((await refused.json()).error.code, "too_many_connections");

    const created = await fetch(`${proc.url}/api/v1/alarms`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${await publisherToken("app")}`,
        "content-type": "application/json",
      },
      body: JSON.stringify({ userId: "user-7", type: "comment", data: { by: "kim" } }),
    });
    assert.equal(created.status, 201);
    const { id } = await created.json();
    await streams[7].next(); // "connect complete"
    const alarm = await streams[7].next();
    assert.equal(alarm.event, "alarm");
    assert.equal(alarm.id, id);
  } finally {
    await Promise.all(streams.map((s) => s.close()));
  }
});
