/**
 * A load-client process: holds thousands of SSE streams over raw TCP sockets (no fetch, no
 * EventSource: their per-stream cost would be measured instead of the server's) and records
 * publish→receive latency from the `"t"` timestamp each benchmark alarm carries in `data`.
 *
 * Driven by JSON lines on stdin; answers one JSON line per command on stdout:
 *   {"op":"open","id":1,"port":8080,"host":"127.0.0.1","secret":"…","users":[from,count],"mode":"alarmd"}
 * mode "nchan" subscribes to nginx+nchan's `/sub/<user>` instead (same parsing, no token), so
 * both servers are measured by the very same client code.
 *   {"op":"stats","id":2,"reset":true}
 *   {"op":"close-sockets","id":3}  drop every stream (the client keeps each one's last id)
 *   {"op":"reconnect","id":3}      reconnect every stream at once with Last-Event-ID
 *   {"op":"close","id":4}
 */
import { SignJWT } from "jose";

interface Stream {
  user: string;
  /** nchan's ids are not ordered as strings, so its duplicates are found by set. */
  seen?: Set<string>;
  token: string;
  conn: Deno.TcpConn | null;
  lastId: string | null;
  connected: boolean;
  onConnect: (() => void) | null;
}

const now = () => performance.timeOrigin + performance.now();
const encoder = new TextEncoder();
const decoder = new TextDecoder();

let host = "127.0.0.1";
let mode: "alarmd" | "nchan" = "alarmd";
let port = 0;
const streams: Stream[] = [];
let latencies: number[] = [];
let received = 0;
let duplicates = 0;
let lastReceiveAt = 0;
const receivedByUser = new Map<string, number>();

async function signToken(secret: string, sub: string) {
  return await new SignJWT({})
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(sub)
    .setExpirationTime("6h")
    .sign(encoder.encode(secret));
}

function onFrame(stream: Stream, frame: string) {
  let event = "message";
  let id: string | null = null;
  let data = "";
  for (const line of frame.split("\n")) {
    if (line.startsWith("event: ")) event = line.slice(7);
    else if (line.startsWith("id: ")) id = line.slice(4);
    else if (line.startsWith("data: ")) data = line.slice(6);
  }
  if (event === "connect") {
    stream.connected = true;
    stream.onConnect?.();
    stream.onConnect = null;
    return;
  }
  const isAlarm = mode === "nchan" ? event === "message" : event === "alarm";
  if (!isAlarm || id === null) return;
  const at = now();
  if (stream.seen ? stream.seen.has(id) : stream.lastId !== null && id <= stream.lastId) {
    duplicates++;
    return;
  }
  stream.seen?.add(id);
  stream.lastId = id;
  received++;
  lastReceiveAt = at;
  receivedByUser.set(stream.user, (receivedByUser.get(stream.user) ?? 0) + 1);
  const m = /"t":([0-9.]+)/.exec(data);
  if (m) latencies.push(at - Number(m[1]));
}

/** Reads one HTTP/1.1 chunked SSE response, splitting it into frames. */
async function readStream(stream: Stream, conn: Deno.TcpConn) {
  const buf = new Uint8Array(64 * 1024);
  let raw = new Uint8Array(0);
  let headersDone = false;
  let chunked = true;
  let chunkLeft = -1;
  let text = "";
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      const merged = new Uint8Array(raw.length + n);
      merged.set(raw);
      merged.set(buf.subarray(0, n), raw.length);
      raw = merged;
      if (!headersDone) {
        const end = findSeq(raw, [13, 10, 13, 10]);
        if (end === -1) continue;
        const head = decoder.decode(raw.subarray(0, end));
        if (!head.startsWith("HTTP/1.1 200")) {
          stream.onConnect?.();
          stream.onConnect = null;
          break;
        }
        headersDone = true;
        chunked = /\r\ntransfer-encoding:\s*chunked/i.test(head);
        raw = raw.subarray(end + 4);
        if (mode === "nchan") {
          // nchan sends no connect event: the 200 is the subscription.
          stream.connected = true;
          stream.onConnect?.();
          stream.onConnect = null;
        }
      }
      if (!chunked) {
        text += decoder.decode(raw, { stream: true });
        raw = new Uint8Array(0);
      }
      // Chunked transfer decoding.
      while (chunked) {
        if (chunkLeft === -1) {
          const lineEnd = findSeq(raw, [13, 10]);
          if (lineEnd === -1) break;
          chunkLeft = parseInt(decoder.decode(raw.subarray(0, lineEnd)), 16);
          raw = raw.subarray(lineEnd + 2);
          if (chunkLeft === 0) return;
        }
        if (raw.length < chunkLeft + 2) {
          if (raw.length > chunkLeft) break;
          text += decoder.decode(raw, { stream: true });
          chunkLeft -= raw.length;
          raw = new Uint8Array(0);
          break;
        }
        text += decoder.decode(raw.subarray(0, chunkLeft), { stream: true });
        raw = raw.subarray(chunkLeft + 2);
        chunkLeft = -1;
      }
      let sep: number;
      while ((sep = text.indexOf("\n\n")) !== -1) {
        onFrame(stream, text.slice(0, sep));
        text = text.slice(sep + 2);
      }
    }
  } catch {
    // closed by reconnect/close
  } finally {
    // A reconnect replaced this socket: the new one owns the stream's state now.
    if (stream.conn === conn) {
      stream.connected = false;
      stream.onConnect?.();
      stream.onConnect = null;
    }
  }
}

function findSeq(bytes: Uint8Array, seq: number[]) {
  outer: for (let i = 0; i <= bytes.length - seq.length; i++) {
    for (let j = 0; j < seq.length; j++) if (bytes[i + j] !== seq[j]) continue outer;
    return i;
  }
  return -1;
}

async function connect(stream: Stream): Promise<boolean> {
  const conn = await Deno.connect({ hostname: host, port });
  stream.conn = conn;
  const connected = new Promise<void>((resolve) => (stream.onConnect = resolve));
  const lastId = stream.lastId ? `Last-Event-ID: ${stream.lastId}\r\n` : "";
  const request = mode === "nchan"
    ? `GET /sub/${stream.user} HTTP/1.1\r\nHost: ${host}:${port}\r\n`
    : `GET /api/v1/users/alarm/subscribe HTTP/1.1\r\nHost: ${host}:${port}\r\n` +
      `Authorization: Bearer ${stream.token}\r\n`;
  await conn.write(encoder.encode(`${request}Accept: text/event-stream\r\n${lastId}\r\n`));
  void readStream(stream, conn);
  await connected;
  return stream.connected;
}

async function connectAll(list: Stream[], parallel = 256) {
  let next = 0;
  let failed = 0;
  await Promise.all(Array.from({ length: Math.min(parallel, list.length) }, async () => {
    while (next < list.length) {
      const s = list[next++];
      try {
        if (!(await connect(s))) failed++;
      } catch {
        failed++;
      }
    }
  }));
  return failed;
}

function percentile(sorted: number[], p: number) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] : null;
}

const reply = (msg: Record<string, unknown>) => console.log(JSON.stringify(msg));

for await (
  const line of Deno.stdin.readable.pipeThrough(new TextDecoderStream()).pipeThrough(
    new (class extends TransformStream<string, string> {
      constructor() {
        let rest = "";
        super({
          transform(chunk, c) {
            rest += chunk;
            const lines = rest.split("\n");
            rest = lines.pop()!;
            for (const l of lines) if (l.trim()) c.enqueue(l);
          },
        });
      }
    })(),
  )
) {
  const cmd = JSON.parse(line);
  if (cmd.op === "open") {
    host = cmd.host;
    port = cmd.port;
    mode = cmd.mode ?? "alarmd";
    const [from, count] = cmd.users as [number, number];
    const fresh: Stream[] = [];
    for (let i = from; i < from + count; i++) {
      const user = `u${i}`;
      fresh.push({
        user,
        seen: mode === "nchan" ? new Set() : undefined,
        token: mode === "nchan" ? "" : await signToken(cmd.secret, user),
        conn: null,
        lastId: null,
        connected: false,
        onConnect: null,
      });
    }
    streams.push(...fresh);
    const started = now();
    const failed = await connectAll(fresh);
    reply({ id: cmd.id, opened: fresh.length - failed, failed, ms: now() - started });
  } else if (cmd.op === "stats") {
    const sorted = latencies.slice().sort((a, b) => a - b);
    reply({
      id: cmd.id,
      received,
      duplicates,
      connected: streams.filter((s) => s.connected).length,
      lastReceiveAt,
      samples: sorted.length,
      p50: percentile(sorted, 0.5),
      p90: percentile(sorted, 0.9),
      p99: percentile(sorted, 0.99),
      max: sorted.length ? sorted[sorted.length - 1] : null,
      byUser: cmd.byUser ? Object.fromEntries(receivedByUser) : undefined,
      latencies: cmd.raw ? sorted : undefined,
    });
    if (cmd.reset) {
      latencies = [];
      received = 0;
      duplicates = 0;
      receivedByUser.clear();
    }
  } else if (cmd.op === "close-sockets") {
    for (const s of streams) {
      const conn = s.conn;
      s.conn = null;
      s.connected = false;
      try {
        conn?.close();
      } catch {
        // already closed
      }
    }
    reply({ id: cmd.id, closed: streams.length });
  } else if (cmd.op === "reconnect") {
    for (const s of streams) {
      try {
        s.conn?.close();
      } catch {
        // already closed
      }
    }
    const started = now();
    const failed = await connectAll(streams, 1024);
    reply({ id: cmd.id, reconnected: streams.length - failed, failed, ms: now() - started });
  } else if (cmd.op === "close") {
    for (const s of streams) {
      try {
        s.conn?.close();
      } catch {
        // already closed
      }
    }
    reply({ id: cmd.id, closed: streams.length });
    break;
  }
}
