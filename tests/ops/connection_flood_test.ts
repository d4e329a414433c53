/**
 * A connection flood against a real alarmd process under a low `ulimit -n`: more idle sockets
 * than the process has descriptors. alarmd must keep serving what it holds, serve new
 * connections again once the flood's sockets pass the header deadline, recover within seconds
 * once they close, and never exit.
 */
import assert from "node:assert/strict";
import { startServeProcess } from "../helpers/process.ts";
import { readResponse, writeAll } from "../helpers/raw_http.ts";
import { openSse } from "../helpers/sse_client.ts";
import { publisherToken, userToken } from "../helpers/test_server.ts";
import { waitUntil } from "../helpers/wait.ts";

const OPEN_FILES = 1500;
const FLOOD = 1600;
const HEADER_TIMEOUT_MS = 2000;

async function healthz(url: string, timeoutMs = 1000): Promise<number | string> {
  try {
    const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(timeoutMs) });
    await res.body?.cancel();
    return res.status;
  } catch (error) {
    return (error as Error).name;
  }
}

for (const transport of ["node", "deno"] as const) {
  Deno.test(`[${transport}] a flood of idle sockets past the open-file limit does not take alarmd down`, async () => {
    await using proc = await startServeProcess(
      {
        ALARMD_TRANSPORT: transport,
        ALARMD_HEADER_TIMEOUT_MS: String(HEADER_TIMEOUT_MS),
        ALARMD_RATE_CONNECT_PER_IP_PER_SECOND: "0",
      },
      [],
      { openFileLimit: OPEN_FILES },
    );
    const { hostname, port } = new URL(proc.url);
    const publisher = await publisherToken("app");
    await using stream = await openSse(`${proc.url}/api/v1/users/alarm/subscribe`, {
      token: await userToken("kim"),
    });
    assert.equal(stream.status, 200);
    await stream.next((e) => e.event === "connect");

    // A publisher's keep-alive connection, opened before the flood.
    const keepAlive = await Deno.connect({ hostname, port: Number(port) });
    const body = JSON.stringify({ userId: "kim", type: "during-flood" });
    const publish = async () => {
      await writeAll(
        keepAlive,
        new TextEncoder().encode(
          `POST /api/v1/alarms HTTP/1.1\r\nHost: ${hostname}\r\nAuthorization: Bearer ${publisher}\r\n` +
            `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
        ),
      );
      const res = await readResponse(keepAlive);
      assert.equal(res.status, 201, res.body);
      return JSON.parse(res.body).id as string;
    };
    await publish();
    await stream.next((e) => e.event === "alarm");

    const flood: Deno.TcpConn[] = [];
    try {
      for (let i = 0; i < FLOOD; i++) {
        try {
          flood.push(await Deno.connect({ hostname, port: Number(port) }));
        } catch {
          break; // the kernel's backlog may refuse some: the flood is still over the limit
        }
      }
      assert.ok(flood.length > OPEN_FILES, `opened ${flood.length} flood sockets`);
      // What alarmd holds keeps working while the flood stays open.
      const id = await publish();
      const started = Date.now();
      const delivered = await stream.next((e) => e.event === "alarm", 1000);
      assert.equal(delivered.id, id);
      assert.ok(Date.now() - started < 1000);

      // New connections are served again once the flood's sockets pass the header deadline,
      // while the flood keeps them open.
      await waitUntil(
        async () => (await healthz(proc.url)) === 200,
        "healthz answers during the flood",
        HEADER_TIMEOUT_MS * 4 + 5000,
        100,
      );
      assert.equal(await publish() !== "", true);
    } finally {
      for (const conn of flood) {
        try {
          conn.close();
        } catch {
          // already closed by the server
        }
      }
      keepAlive.close();
    }
    await waitUntil(
      async () => (await healthz(proc.url)) === 200,
      "healthz answers after the flood",
      5000,
      100,
    );
    await using again = await openSse(`${proc.url}/api/v1/users/alarm/subscribe`, {
      token: await userToken("lee"),
    });
    assert.equal(again.status, 200);
    const exited = await Promise.race([proc.status.then(() => true), Promise.resolve(false)]);
    assert.equal(exited, false, `alarmd exited: ${proc.stderr().slice(-2000)}`);
  });
}
