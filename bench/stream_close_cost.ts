/**
 * What closing SSE streams costs `node:http`, with and without releasing each stream's request
 * once its head is out (as src/http/node_transport.ts does): N streams open on a bare server in
 * this process, then every client hangs up; prints the process's CPU until all are closed.
 * Without the release, node:http destroys each still-open request with an "aborted" error whose
 * stack it formats.
 *
 *   deno run -A bench/stream_close_cost.ts plain|release [streams]
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { processTicks, TICKS_PER_SECOND } from "./proc_cpu.ts";

const mode = Deno.args[0] === "release" ? "release" : "plain";
const streams = Number(Deno.args[1] ?? 4000);
let opened = 0;
let closed = 0;
const server = http.createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/event-stream" });
  res.write("event: connect\ndata: {}\n\n");
  if (mode === "release") {
    req.once("end", () => req.destroy());
    req.resume();
  }
  opened++;
  res.on("close", () => closed++);
});
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
const { port } = server.address() as AddressInfo;
const request = new TextEncoder().encode("GET /s HTTP/1.1\r\nHost: bench\r\n\r\n");
const conns: Deno.TcpConn[] = [];
for (let i = 0; i < streams; i++) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(request);
  conns.push(conn);
}
const until = async (done: () => boolean) => {
  for (let i = 0; i < 6000 && !done(); i++) await new Promise((r) => setTimeout(r, 5));
};
await until(() => opened === streams);
await new Promise((r) => setTimeout(r, 300));
const ticks = processTicks("self");
const started = performance.now();
for (const conn of conns) conn.close();
await until(() => closed === streams);
const cpuMs = (processTicks("self") - ticks) * 1000 / TICKS_PER_SECOND;
console.log(
  `${mode}: ${closed} of ${streams} streams closed, ${cpuMs} ms CPU (server and clients), ` +
    `${Math.round(performance.now() - started)} ms`,
);
server.close();
Deno.exit(0);
