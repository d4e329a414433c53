import assert from "node:assert/strict";
import { kvKeys } from "../../src/storage/kv_keys.ts";
import { startServeProcess } from "../helpers/process.ts";
import { openSse } from "../helpers/sse_client.ts";
import { publisherToken, userToken } from "../helpers/test_server.ts";

Deno.test("SIGTERM ends every stream cleanly, finishes in-flight creates, closes KV, exits 0 within 10 s", async () => {
  const dir = await Deno.makeTempDir({ prefix: "alarmd-shutdown-" });
  try {
    await using proc = await startServeProcess({ ALARMD_KV_PATH: `${dir}/a.kv` });
    const url = proc.url;
    const user = await userToken("kim");
    const publisher = await publisherToken("b");
    const streams = await Promise.all(
      [1, 2, 3].map(() => openSse(`${url}/api/v1/users/alarm/subscribe`, { token: user })),
    );
    for (const s of streams) await s.next();

    // A burst of creates in flight when the signal arrives: each either completes with 201
    // (and is then stored) or is refused before it was accepted; none is half-done.
    const creates = Array.from({ length: 200 }, (_, i) =>
      fetch(`${url}/api/v1/alarms`, {
        method: "POST",
        headers: { authorization: `Bearer ${publisher}`, "content-type": "application/json" },
        body: JSON.stringify({ userId: "kim", type: "burst", data: { i } }),
      }).then(async (r) => (r.status === 201 ? (await r.json()).id as string : null), () => null));
    // Signal once the server is mid-burst: some answered, most still in flight.
    let answered = 0;
    creates.forEach((c) => c.then((id) => id && answered++));
    while (answered < 5) await new Promise((r) => setTimeout(r, 1));
    const started = Date.now();
    const code = await proc.stop("SIGTERM");
    const elapsed = Date.now() - started;
    const acknowledged = (await Promise.all(creates)).filter((id): id is string => id !== null);

    assert.equal(code, 0, proc.stderr());
    console.log(`${acknowledged.length} of 200 creates acknowledged around SIGTERM`);
    assert.ok(acknowledged.length >= 5);
    assert.ok(elapsed < 10_000, `took ${elapsed} ms`);
    for (const s of streams) {
      await s.ended;
      await s.close();
    }
    const log = proc.stderr().trim().split("\n").map((l) => JSON.parse(l));
    const closed = log.filter((l) => l.msg === "stream closed");
    assert.equal(closed.length, 3);
    assert.ok(closed.every((l) => l.reason === "shutdown"));
    assert.ok(log.some((l) => l.msg === "alarmd stopped"));

    // Everything acknowledged is in the KV file that was closed cleanly.
    const kv = await Deno.openKv(`${dir}/a.kv`);
    try {
      for (const id of acknowledged) {
        assert.ok(
          (await kv.get(kvKeys.alarm("kim", id))).value,
          `alarm ${id} answered 201 but missing`,
        );
      }
    } finally {
      kv.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
