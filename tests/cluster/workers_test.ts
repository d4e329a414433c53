import assert from "node:assert/strict";
import { startServeProcess } from "../helpers/process.ts";
import { openSse } from "../helpers/sse_client.ts";
import { publisherToken, userToken } from "../helpers/test_server.ts";

Deno.test("serve --workers 2: both isolates serve one port, and every stream gets every alarm once, in order", async () => {
  const dir = await Deno.makeTempDir({ prefix: "alarmd-workers-" });
  try {
    await using proc = await startServeProcess({ ALARMD_KV_PATH: `${dir}/a.kv` }, [
      "--workers",
      "2",
    ]);
    const url = proc.url;

    // New connections are spread over the isolates by the kernel.
    const seen = new Set<number>();
    for (let i = 0; i < 40 && seen.size < 2; i++) {
      const res = await fetch(`${url}/healthz`, { headers: { connection: "close" } });
      seen.add((await res.json()).worker);
    }
    assert.deepEqual([...seen].sort(), [0, 1], "both isolates answer");

    const user = await userToken("kim");
    const publisher = await publisherToken("app");
    const streams = await Promise.all(
      Array.from(
        { length: 10 },
        () => openSse(`${url}/api/v1/users/alarm/subscribe`, { token: user }),
      ),
    );
    try {
      for (const s of streams) await s.next();
      const ids: string[] = [];
      for (let n = 0; n < 30; n++) {
        const res = await fetch(`${url}/api/v1/alarms`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${publisher}`,
            "content-type": "application/json",
            connection: "close", // each create may land on either isolate
          },
          body: JSON.stringify({ userId: "kim", type: "w", data: { n } }),
        });
        assert.equal(res.status, 201);
        ids.push((await res.json()).id);
      }
      for (const s of streams) {
        const got = await s.waitFor((e) => e.event === "alarm", 30);
        assert.deepEqual(got.map((e) => e.id), ids);
      }
    } finally {
      for (const s of streams) await s.close();
    }
    assert.equal(await proc.stop("SIGTERM"), 0);
    assert.equal(
      proc.stderr().split('"msg":"alarmd stopped"').length - 1,
      2,
      "both isolates stopped",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
