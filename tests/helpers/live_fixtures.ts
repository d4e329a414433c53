/**
 * Fixtures for the live-stream tests: publishing through the real HTTP API, reading the stream
 * (the frames themselves are in sse_frames.ts), a raw TCP client that never reads, and a reader
 * that tells a clean end of stream from a broken one.
 */
import assert from "node:assert/strict";
import { listAll } from "./api_client.ts";
import type { FakeClock } from "./fake_clock.ts";
import type { SseStream } from "./sse_client.ts";
import type { TestServer } from "./test_server.ts";
import { startTestServer } from "./test_server.ts";
import { delay, within } from "./wait.ts";

export const SUBSCRIBE_PATH = "/api/v1/users/alarm/subscribe";

import type { Alarm } from "../../src/domain/alarm.ts";
export type { Alarm };

/**
 * startTestServer whose close fails the test after 10 s instead of hanging the suite: the
 * contract gives a shutdown 10 s.
 */
export async function startLiveServer(
  ...args: Parameters<typeof startTestServer>
): Promise<TestServer> {
  const server = await startTestServer(...args);
  const close = () => within(10_000, server.close(), "server shutdown");
  return { ...server, close, [Symbol.asyncDispose]: close };
}

/** What a test needs of a server: the in-process one or a subprocess. */
export interface ServerHandle {
  readonly url: string;
}

export async function createAlarm(
  server: ServerHandle,
  publisher: string,
  userId: string,
  data?: Record<string, unknown>,
): Promise<Alarm> {
  const res = await fetch(`${server.url}/api/v1/alarms`, {
    method: "POST",
    headers: { authorization: `Bearer ${publisher}`, "content-type": "application/json" },
    body: JSON.stringify(
      data === undefined ? { userId, type: "test" } : { userId, type: "test", data },
    ),
  });
  const body = await res.json();
  assert.equal(res.status, 201, JSON.stringify(body));
  return body as Alarm;
}

/** Creates `count` alarms for one user through the batch endpoint (500 per request). */
export async function createAlarms(
  server: ServerHandle,
  publisher: string,
  userId: string,
  count: number,
  data: Record<string, unknown> = {},
): Promise<Alarm[]> {
  const out: Alarm[] = [];
  for (let done = 0; done < count; done += 500) {
    const n = Math.min(500, count - done);
    const res = await within(
      30_000,
      fetch(`${server.url}/api/v1/alarms/batch`, {
        method: "POST",
        headers: { authorization: `Bearer ${publisher}`, "content-type": "application/json" },
        body: JSON.stringify({
          alarms: Array.from({ length: n }, () => ({ userId, type: "test", data })),
        }),
      }),
      "POST /api/v1/alarms/batch",
    );
    const body = await res.json();
    assert.equal(res.status, 201, JSON.stringify(body).slice(0, 300));
    out.push(...(body.items as Alarm[]));
  }
  return out;
}

/** Every stored alarm id of the token's user, oldest first, read through the list API. */
export async function storedIds(server: TestServer, userToken: string): Promise<string[]> {
  return (await listAll(server, userToken)).map((a) => a.id).reverse();
}

export async function userAction(
  server: TestServer,
  userToken: string,
  method: "POST" | "DELETE",
  path: string,
): Promise<void> {
  const res = await server.fetch(path, { method, token: userToken });
  await res.body?.cancel();
  assert.equal(res.status, 204, `${method} ${path}`);
}

/** Waits for the connect event and returns its parsed data. */
export async function connectData(stream: SseStream): Promise<Record<string, unknown>> {
  const [connect] = await stream.waitFor((e) => e.event === "connect", 1);
  return JSON.parse(connect.data);
}

/** Raw text the stream received after the connect frame (waits for the connect frame). */
export async function afterConnect(stream: SseStream): Promise<string> {
  await stream.waitFor((e) => e.event === "connect", 1);
  const text = stream.text();
  const start = text.indexOf("event: connect\n");
  const end = text.indexOf("\n\n", start);
  assert.ok(start !== -1 && end !== -1, text);
  return text.slice(end + 2);
}

/** Alarm ids the stream received, in arrival order. */
export function alarmIds(stream: SseStream): string[] {
  return stream.events.filter((e) => e.event === "alarm").map((e) => e.id!);
}

/**
 * Moves a fake clock forward in steps, letting real I/O run between them, as time passes for a
 * real server: one synchronous jump would make every write in flight look stuck for the whole jump.
 */
export async function advance(clock: FakeClock, ms: number, stepMs = 1000): Promise<void> {
  for (let left = ms; left > 0; left -= stepMs) {
    clock.tick(Math.min(stepMs, left));
    await delay(1);
  }
}

export function assertStrictlyIncreasing(ids: readonly string[], what: string): void {
  for (let i = 1; i < ids.length; i++) {
    assert.ok(ids[i - 1] < ids[i], `${what}: ${ids[i - 1]} then ${ids[i]} at ${i}`);
  }
}

/** A well-formed ULID for the given time (Crockford base32 time + random part). */
export function ulidAt(ms: number): string {
  const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  let t = ms;
  let time = "";
  for (let i = 0; i < 10; i++) {
    time = alphabet[t % 32] + time;
    t = Math.floor(t / 32);
  }
  return time + "ABCDEFGHJKMNPQRS";
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** How a streamed body ended: `clean` is a normal end of body, not an error or a reset. */
export interface StreamEnd {
  readonly text: string;
  readonly clean: boolean;
}

/** Reads a response body to its end, recording whether it ended cleanly. */
export async function readToEnd(response: Response): Promise<StreamEnd> {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { text, clean: true };
      text += value;
    }
  } catch {
    return { text, clean: false };
  }
}

/**
 * A client that sends the subscribe request over a raw TCP socket and then never reads a byte,
 * as a stalled browser tab or a dead network peer would.
 */
export interface StalledClient {
  /** The client's local port, to find its socket in /proc/net/tcp. */
  readonly localPort: number;
  /** The socket, for a test that starts reading later. */
  readonly conn: Deno.TcpConn;
  close(): void;
}

export async function openStalledClient(
  port: number,
  token: string,
  lastEventId?: string,
): Promise<StalledClient> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const request = [
    `GET ${SUBSCRIBE_PATH} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    `Authorization: Bearer ${token}`,
    "Accept: text/event-stream",
    ...(lastEventId === undefined ? [] : [`Last-Event-ID: ${lastEventId}`]),
    "",
    "",
  ].join("\r\n");
  await conn.write(new TextEncoder().encode(request));
  let closed = false;
  return {
    localPort: (conn.localAddr as Deno.NetAddr).port,
    conn,
    close() {
      if (closed) return;
      closed = true;
      conn.close();
    },
  };
}

/**
 * Bytes the kernel holds unsent in the socket from `localPort` to `remotePort` (its tx_queue in
 * /proc/net/tcp), or null when the socket is not listed. On loopback, a send queue that stops
 * draining means the peer's receive window is closed: the peer is not reading.
 */
export function sendQueueBytes(localPort: number, remotePort: number): number | null {
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = Deno.readTextFileSync(file);
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 5) continue;
      const local = parseInt(fields[1].split(":")[1], 16);
      const remote = parseInt(fields[2].split(":")[1], 16);
      if (local === localPort && remote === remotePort) {
        return parseInt(fields[4].split(":")[0], 16);
      }
    }
  }
  return null;
}

/** Resident memory of a process in bytes, from /proc/<pid>/status. */
export function residentBytes(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  assert.ok(match, "VmRSS missing from /proc status");
  return Number(match[1]) * 1024;
}
