import assert from "node:assert/strict";
import { startProcess } from "../helpers/process.ts";

Deno.test("serve --dev prints working tokens, serves /healthz, and stops cleanly on SIGTERM", async () => {
  const dir = await Deno.makeTempDir({ prefix: "alarmd-dev-" });
  await using proc = await startProcess(["serve", "--dev"], {
    ALARMD_KV_PATH: `${dir}/dev.kv`,
  }, { waitFor: /Publisher token/ });
  try {
    const out = await proc.waitForStdout(/Watch the stream/);
    const url = /on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)![1];
    const user = /User token.*\n\s+(\S+)/.exec(out)![1];
    const publisher = /Publisher token.*\n\s+(\S+)/.exec(out)![1];
    assert.match(out, new RegExp(`Inbox .*\\n\\s+${url.replaceAll(".", "\\.")}/\\?token=${user}`));

    const health = await fetch(`${url}/healthz`);
    assert.equal(health.status, 200);
    assert.equal((await health.json()).status, "ok");

    const created = await fetch(`${url}/api/v1/alarms`, {
      method: "POST",
      headers: { authorization: `Bearer ${publisher}`, "content-type": "application/json" },
      body: JSON.stringify({ userId: "dev-user", type: "comment", data: { text: "hi" } }),
    });
    assert.equal(created.status, 201);
    const alarm = await created.json();
    const list = await fetch(`${url}/api/v1/users/alarms`, {
      headers: { authorization: `Bearer ${user}` },
    });
    assert.equal(list.status, 200);
    assert.deepEqual((await list.json()).items.map((a: { id: string }) => a.id), [alarm.id]);

    const started = Date.now();
    const code = await proc.stop("SIGTERM");
    assert.equal(code, 0);
    assert.ok(Date.now() - started < 10_000);
    // The dev store is a real file at the configured path, not an in-memory KV.
    assert.ok((await Deno.stat(`${dir}/dev.kv`)).isFile);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
