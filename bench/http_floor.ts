/**
 * The HTTP floor under alarmd: a bare server that parses a JSON POST and answers 201, on
 * `node:http` or on `Deno.serve`, to measure with the same wrk script as alarmd's creates:
 *
 *   deno run -A bench/http_floor.ts node 18090 &
 *   ALARMD_BENCH_TOKEN=unused wrk -t1 -c64 -d5s -s bench/wrk_post.lua http://127.0.0.1:18090/
 */
import http from "node:http";

const [transport = "node", portArg = "18090"] = Deno.args;
const port = Number(portArg);
const answer = '{"id":"01ABCDEFGHJKMNPQRSTVWXYZ0","userId":"u1"}';

if (transport === "deno") {
  Deno.serve({ hostname: "127.0.0.1", port }, async (req) => {
    JSON.parse(await req.text());
    return new Response(answer, { status: 201, headers: { "content-type": "application/json" } });
  });
} else {
  http.createServer((req, res) => {
    const chunks: Uint8Array[] = [];
    req.on("data", (chunk: Uint8Array) => chunks.push(chunk));
    req.on("end", () => {
      JSON.parse(new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c]))));
      res.writeHead(201, { "content-type": "application/json" });
      res.end(answer);
    });
  }).listen(port, "127.0.0.1");
}
