/**
 * 5,000 streams drop at once, an alarm is created for each user meanwhile, and all reconnect
 * at the same moment with Last-Event-ID: the server stays up, serves every one, and each gets
 * its missed alarm exactly once. The streams are held by the bench's raw-socket client process.
 */
import assert from "node:assert/strict";
import { startServeProcess } from "../helpers/process.ts";
import { publisherToken, TEST_SECRET } from "../helpers/test_server.ts";

const CLIENTS = 5000;

Deno.test(`a reconnect storm of ${CLIENTS} clients is served completely, nothing missed or repeated`, async () => {
  const dir = await Deno.makeTempDir({ prefix: "alarmd-storm-" });
  const client = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../../bench/sse_client.ts", import.meta.url).pathname],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const writer = client.stdin.getWriter();
  const lines = client.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  const call = async (cmd: Record<string, unknown>) => {
    await writer.write(new TextEncoder().encode(JSON.stringify(cmd) + "\n"));
    while (!buffered.includes("\n")) {
      const { value, done } = await lines.read();
      if (done) throw new Error("client exited");
      buffered += value;
    }
    const line = buffered.slice(0, buffered.indexOf("\n"));
    buffered = buffered.slice(line.length + 1);
    return JSON.parse(line);
  };
  try {
    // Disposed (killed) when the test ends, whatever happens.
    await using started = await startServeProcess({
      ALARMD_KV_PATH: `${dir}/a.kv`,
      ALARMD_RATE_CONNECT_PER_IP_PER_SECOND: "0",
    });
    const url = started.url;
    const { port } = new URL(url);
    const opened = await call({
      op: "open",
      id: 1,
      host: "127.0.0.1",
      port: Number(port),
      secret: TEST_SECRET,
      users: [0, CLIENTS],
    });
    assert.equal(opened.failed, 0);
    const publisher = await publisherToken("app");
    const alarmEach = async (type: string) => {
      for (let from = 0; from < CLIENTS; from += 500) {
        const res = await fetch(`${url}/api/v1/alarms/batch`, {
          method: "POST",
          headers: { authorization: `Bearer ${publisher}`, "content-type": "application/json" },
          body: JSON.stringify({
            alarms: Array.from({ length: 500 }, (_, i) => ({ userId: `u${from + i}`, type })),
          }),
        });
        assert.equal(res.status, 201);
        await res.body?.cancel();
      }
    };
    const received = async (count: number) => {
      let stats = await call({ op: "stats", id: 0 });
      for (let i = 0; i < 200 && stats.received < count; i++) {
        await new Promise((r) => setTimeout(r, 50));
        stats = await call({ op: "stats", id: 0 });
      }
      return stats;
    };
    // Each stream gets one alarm live, so that, like a browser, it has a Last-Event-ID.
    await alarmEach("before");
    assert.equal((await received(CLIENTS)).received, CLIENTS);
    await call({ op: "stats", id: 2, reset: true });

    await call({ op: "close-sockets", id: 3 });
    await alarmEach("missed");
    const back = await call({ op: "reconnect", id: 4 });
    assert.equal(back.reconnected, CLIENTS);
    assert.equal(back.failed, 0);
    const stats = await received(CLIENTS);
    assert.equal(stats.received, CLIENTS, "every missed alarm arrived");
    assert.equal(stats.duplicates, 0);
    assert.equal(stats.connected, CLIENTS);
    console.log(`${CLIENTS} reconnected in ${Math.round(back.ms)} ms, every missed alarm once`);
    const health = await fetch(`${url}/healthz`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
    await call({ op: "close", id: 999 });
  } finally {
    await writer.close().catch(() => {});
    await lines.cancel().catch(() => {});
    try {
      client.kill("SIGKILL");
    } catch {
      // exited after "close"
    }
    await client.status;
    await Deno.remove(dir, { recursive: true });
  }
});
