/**
 * Presence across processes (Redis) and across the isolates of one process (`--workers`): real
 * processes, a real redis-server on a random loopback port.
 */
import assert from "node:assert/strict";
import { startServeProcess } from "../helpers/process.ts";
import { readResponse, writeAll } from "../helpers/raw_http.ts";
import { redisAvailable, startRedis } from "../helpers/redis.ts";
import { openSse } from "../helpers/sse_client.ts";
import { publisherToken, userToken } from "../helpers/test_server.ts";
import { waitUntil } from "../helpers/wait.ts";

const skip = await redisAvailable();
const SUBSCRIBE = "/api/v1/users/alarm/subscribe";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface Answer {
  readonly status: number;
  readonly body: {
    users?: { userId: string; online: boolean; connections: number }[];
    error?: { code: string };
  };
  readonly retryAfter: string | null;
}

async function ask(url: string, token: string, ids: readonly string[]): Promise<Answer> {
  const search = ids.map((id) => `userId=${encodeURIComponent(id)}`).join("&");
  const res = await fetch(`${url}/api/v1/presence?${search}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  return { status: res.status, body: await res.json(), retryAfter: res.headers.get("retry-after") };
}

/** `connections` per user, or the error code when the answer is not 200. */
async function counts(url: string, token: string, ids: readonly string[]) {
  const answer = await ask(url, token, ids);
  return answer.status === 200
    ? answer.body.users!.map((u) => u.connections)
    : answer.body.error?.code ?? String(answer.status);
}

Deno.test({
  name:
    "two instances on Redis: each counts the other's streams; a SIGKILLed one stops counting within 30 s; Redis down is 503",
  ignore: skip !== null,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "alarmd-presence-" });
    await using redis = await startRedis();
    const env = { ALARMD_KV_PATH: `${dir}/shared.kv`, ALARMD_REDIS_URL: redis.url };
    // A keeps the product's timing; B says it is alive every 300 ms (its heartbeat), so A drops
    // it after about a second of silence instead of 30 s: the silence limit is the sender's.
    await using a = await startServeProcess(env);
    await using b = await startServeProcess({ ...env, ALARMD_HEARTBEAT_MS: "300" });
    try {
      const publisher = await publisherToken("app");
      await waitUntil(
        async () => (await ask(a.url, publisher, ["kim"])).status === 200,
        "A knows presence after its warm-up",
        10_000,
      );
      await using onB = await openSse(b.url + SUBSCRIBE, { token: await userToken("kim") });
      await onB.next();
      await using onA = await openSse(a.url + SUBSCRIBE, { token: await userToken("lee") });
      await onA.next();
      await waitUntil(
        async () =>
          JSON.stringify(await counts(a.url, publisher, ["kim", "lee", "max"])) === "[1,1,0]",
        "A counts B's stream and its own",
      );
      await waitUntil(
        async () =>
          JSON.stringify(await counts(b.url, publisher, ["kim", "lee", "max"])) === "[1,1,0]",
        "B counts A's stream and its own",
      );
      const seen = await ask(a.url, publisher, ["kim"]);
      assert.deepEqual(seen.body, { users: [{ userId: "kim", online: true, connections: 1 }] });

      // B crashes: no goodbye, its socket to Redis just goes away.
      const killedAt = Date.now();
      await b.stop("SIGKILL");
      await waitUntil(
        async () => JSON.stringify(await counts(a.url, publisher, ["kim", "lee"])) === "[0,1]",
        "A stops counting B's stream",
        30_000,
        50,
      );
      const after = Date.now() - killedAt;
      assert.ok(after < 5_000, `A counted the crashed B's stream for ${after} ms`);

      // Redis goes down: A cannot know whether other instances hold streams.
      await redis.kill();
      await waitUntil(
        async () => (await ask(a.url, publisher, ["lee"])).status === 503,
        "A answers 503 while Redis is down",
      );
      const down = await ask(a.url, publisher, ["lee"]);
      assert.equal(down.body.error?.code, "unavailable");
      assert.match(down.retryAfter ?? "", /^\d+$/);
      await redis.restart();
      await waitUntil(
        async () => JSON.stringify(await counts(a.url, publisher, ["lee", "kim"])) === "[1,0]",
        "A knows presence again once Redis is back",
        15_000,
      );
      assert.ok(a.stderr().includes("presence channel down"), "A logged the outage");
      await onA.close();
    } finally {
      await a.stop("SIGTERM");
      await b.stop("SIGKILL");
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** A keep-alive TCP connection to one isolate of a `--workers` process, and which one it is. */
async function connectToWorker(url: string): Promise<{ worker: number; conn: Deno.TcpConn }> {
  const { hostname, port } = new URL(url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  await writeAll(conn, encoder.encode(`GET /healthz HTTP/1.1\r\nHost: ${hostname}\r\n\r\n`));
  const health = await readResponse(conn);
  return { worker: JSON.parse(health.body).worker, conn };
}

/** Starts a stream on `conn` and waits for its head; the stream stays open until conn closes. */
async function streamOn(conn: Deno.TcpConn, token: string) {
  const request = `GET ${SUBSCRIBE} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n\r\n`;
  await writeAll(conn, encoder.encode(request));
  let head = "";
  const buf = new Uint8Array(4096);
  while (!head.includes("\r\n\r\n")) {
    const n = await conn.read(buf);
    assert.notEqual(n, null, "the stream closed before its head");
    head += decoder.decode(buf.subarray(0, n!));
  }
  assert.match(head, /^HTTP\/1\.1 200 /);
}

/** Asks the isolate `worker` (found by trying connections) about `ids`. */
async function askWorker(url: string, worker: number, token: string, ids: readonly string[]) {
  for (let attempt = 0; attempt < 100; attempt++) {
    const { worker: got, conn } = await connectToWorker(url);
    try {
      if (got !== worker) continue;
      const search = ids.map((id) => `userId=${encodeURIComponent(id)}`).join("&");
      const request = `GET /api/v1/presence?${search} HTTP/1.1\r\nHost: x\r\n` +
        `Authorization: Bearer ${token}\r\nConnection: close\r\n\r\n`;
      await writeAll(conn, encoder.encode(request));
      const res = await readResponse(conn);
      if (res.status !== 200) return res.status;
      return (JSON.parse(res.body).users as { connections: number }[]).map((u) => u.connections);
    } finally {
      conn.close();
    }
  }
  throw new Error(`no connection reached worker ${worker}`);
}

Deno.test("serve --workers 2: a stream on either isolate is counted by both", async () => {
  await using proc = await startServeProcess({}, ["--workers", "2"]);
  const publisher = await publisherToken("app");
  const streams = new Map<number, Deno.TcpConn>();
  try {
    // One stream on each isolate, for users named after it.
    for (let attempt = 0; attempt < 100 && streams.size < 2; attempt++) {
      const { worker, conn } = await connectToWorker(proc.url);
      if (streams.has(worker)) {
        conn.close();
        continue;
      }
      await streamOn(conn, await userToken(`on-${worker}`));
      streams.set(worker, conn);
    }
    assert.equal(streams.size, 2, "both isolates hold a stream");
    for (const worker of [0, 1]) {
      await waitUntil(
        async () =>
          JSON.stringify(await askWorker(proc.url, worker, publisher, ["on-0", "on-1", "x"])) ===
            "[1,1,0]",
        `isolate ${worker} counts both streams`,
        10_000,
      );
    }
    streams.get(1)!.close();
    streams.delete(1);
    for (const worker of [0, 1]) {
      await waitUntil(
        async () =>
          JSON.stringify(await askWorker(proc.url, worker, publisher, ["on-0", "on-1"])) ===
            "[1,0]",
        `isolate ${worker} sees the stream on isolate 1 end`,
      );
    }
  } finally {
    for (const conn of streams.values()) conn.close();
  }
  assert.equal(await proc.stop("SIGTERM"), 0);
});
