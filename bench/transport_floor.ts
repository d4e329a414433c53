/**
 * The transport floor under alarmd's publish path: a bare `node:http` server that speaks just
 * enough of alarmd's wire protocol for `deno task bench --url` (a token's subject picks the
 * stream, a POST's `userId` gets one `alarm` frame, answered 201 with the alarm; a batch, one
 * frame per item) and nothing else: no verification, no validation, no store, no replay, no
 * log. Whatever alarmd's JS thread spends per alarm above this server's is alarmd's own work;
 * what this one spends is the runtime's. It listens with alarmd's accept queue.
 *
 *   deno run -A bench/transport_floor.ts 18091 [deno] &
 *   deno task bench --url http://127.0.0.1:18091 --secret unused --pid $! --scenarios targeted \
 *     [--publish-url http://127.0.0.1:18092]
 *   deno task bench --url http://127.0.0.1:18091 --secret unused --pid $! --scenarios fanout,storm
 *
 * In the storm it replays nothing, so its alarms created while streams are down count as missed:
 * only the reconnect time is the floor's.
 */
import http from "node:http";
import type { ServerResponse } from "node:http";

const port = Number(Deno.args[0] ?? 18091);
const streams = new Map<string, Set<ServerResponse>>();
let sequence = 0;

/** The JWT's `sub`, unverified: the floor measures transport, not authentication. */
function subjectOf(authorization: string | undefined): string {
  const payload = (authorization ?? "").split(".")[1] ?? "";
  const json = atob(payload.replaceAll("-", "+").replaceAll("_", "/"));
  return (JSON.parse(json) as { sub: string }).sub;
}

function subscribe(req: http.IncomingMessage, res: ServerResponse) {
  const user = subjectOf(req.headers.authorization);
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store" });
  res.write("event: connect\ndata: connected!\n\n");
  let set = streams.get(user);
  if (!set) streams.set(user, set = new Set());
  set.add(res);
  res.on("close", () => {
    set.delete(res);
    if (set.size === 0) streams.delete(user);
  });
}

interface Input {
  userId: string;
  data: unknown;
}

/** Sends one alarm frame to the user's streams; returns the alarm as JSON. */
function deliver(input: Input): string {
  const id = String(++sequence).padStart(26, "0");
  const alarm = JSON.stringify({ id, userId: input.userId, data: input.data });
  for (const stream of streams.get(input.userId) ?? []) {
    stream.write(`event: alarm\nid: ${id}\ndata: ${alarm}\n\n`);
  }
  return alarm;
}

function publish(req: http.IncomingMessage, res: ServerResponse) {
  const chunks: Uint8Array[] = [];
  req.on("data", (chunk: Uint8Array) => chunks.push(chunk));
  req.on("end", () => {
    const input = JSON.parse(Buffer.concat(chunks).toString()) as Input | { alarms: Input[] };
    const body = "alarms" in input
      ? `{"items":[${input.alarms.map(deliver).join(",")}]}`
      : deliver(input);
    res.writeHead(201, { "content-type": "application/json" });
    res.end(body);
  });
}

/** `deno` mode: publishes also arrive on Deno.serve at port + 1 (Rust parses their HTTP). */
if (Deno.args[1] === "deno") {
  Deno.serve({ hostname: "127.0.0.1", port: port + 1, onListen() {} }, async (req) => {
    const alarm = deliver(await req.json() as Input);
    return new Response(alarm, { status: 201, headers: { "content-type": "application/json" } });
  });
}

http.createServer((req, res) => {
  if (req.method === "POST") publish(req, res);
  else if (req.url?.startsWith("/healthz")) res.end("ok");
  else subscribe(req, res);
}).listen({ port, host: "127.0.0.1", backlog: 65_535 });
