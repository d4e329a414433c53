/**
 * A real full disk: the KV file lives on a 4 MiB tmpfs with a ballast file. Creates fill it
 * until SQLite cannot write; from then on alarmd answers 503 unavailable (readiness too) and
 * loses nothing it acknowledged; once the ballast is deleted, it recovers without a restart.
 * Needs permission to mount a tmpfs (root with CAP_SYS_ADMIN, as on CI); skipped otherwise.
 */
import assert from "node:assert/strict";
import { startTestServer } from "../helpers/test_server.ts";

async function run(cmd: string, args: string[]) {
  const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  return { ok: out.success, stderr: new TextDecoder().decode(out.stderr) };
}

const probeDir = await Deno.makeTempDir({ prefix: "alarmd-mount-probe-" });
const probe = await run("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", probeDir]);
if (probe.ok) await run("umount", [probeDir]);
await Deno.remove(probeDir);
if (!probe.ok) {
  console.log(`disk-full test skipped: cannot mount a tmpfs here (${probe.stderr.trim()})`);
}

Deno.test({
  name:
    "a full disk answers 503 unavailable, loses nothing acknowledged, and recovers when space returns",
  ignore: !probe.ok,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "alarmd-full-" });
    assert.ok((await run("mount", ["-t", "tmpfs", "-o", "size=4m", "tmpfs", dir])).ok);
    try {
      await Deno.writeFile(`${dir}/ballast`, new Uint8Array(1024 * 1024));
      const server = await startTestServer({}, { dir });
      try {
        const publisher = await server.publisherToken();
        const acknowledged: string[] = [];
        let refusal: Response | null = null;
        for (let i = 0; i < 2000 && !refusal; i++) {
          const res = await server.fetch("/api/v1/alarms", {
            method: "POST",
            token: publisher,
            json: { userId: "kim", type: "fill", data: { pad: "x".repeat(7000), i } },
          });
          if (res.status === 201) acknowledged.push((await res.json()).id);
          else refusal = res;
        }
        assert.ok(refusal, "the disk never filled up");
        assert.ok(acknowledged.length > 10, `only ${acknowledged.length} fit`);
        assert.equal(refusal.status, 503);
        assert.ok(Number(refusal.headers.get("retry-after")) >= 1);
        const body = await refusal.json();
        assert.equal(body.error.code, "unavailable");
        assert.doesNotMatch(JSON.stringify(body), /SQLITE|disk|\.ts:\d+/i, "internals leaked");
        const notReady = await server.fetch("/readyz");
        assert.equal(notReady.status, 503);
        await notReady.body?.cancel();

        // Reads still work while writes cannot.
        const user = await server.userToken("kim");
        const health = await server.fetch("/healthz");
        assert.equal(health.status, 200);
        await health.body?.cancel();

        await Deno.remove(`${dir}/ballast`);
        let recovered = 0;
        for (let i = 0; i < 50 && recovered === 0; i++) {
          const res = await server.fetch("/api/v1/alarms", {
            method: "POST",
            token: publisher,
            json: { userId: "kim", type: "after", data: { i } },
          });
          if (res.status === 201) {
            acknowledged.push((await res.json()).id);
            recovered = 1;
          } else {
            await res.body?.cancel();
            await new Promise((r) => setTimeout(r, 50));
          }
        }
        assert.equal(recovered, 1, "writes did not recover after space was freed");
        const ready = await server.fetch("/readyz");
        assert.equal(ready.status, 200);
        await ready.body?.cancel();

        const stored = new Set<string>();
        let cursor = "";
        do {
          const page = await server.fetch(
            `/api/v1/users/alarms?limit=100${cursor ? `&cursor=${cursor}` : ""}`,
            { token: user },
          );
          const json = await page.json();
          for (const a of json.items) stored.add(a.id);
          cursor = json.nextCursor ?? "";
        } while (cursor);
        for (const id of acknowledged) assert.ok(stored.has(id), `acknowledged ${id} is missing`);
        const unread = await server.fetch("/api/v1/users/alarms/unread-count", { token: user });
        assert.deepEqual(await unread.json(), { unread: stored.size });
        console.log(`disk full after ${acknowledged.length - 1} alarms; recovered; none lost`);
      } finally {
        await server.close();
      }
    } finally {
      await run("umount", [dir]);
      await Deno.remove(dir, { recursive: true });
    }
  },
});
