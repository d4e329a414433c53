/**
 * Where a running alarmd's JS thread spends its time: samples it over the inspector protocol
 * (`Profiler.start`, 200 µs interval) for N seconds and puts each sample in the first kind of
 * work its stack matches, per alarm of wall time on the JS thread. Start the server with
 * `--inspect=127.0.0.1:9229` and drive it with the bench, then, while it runs:
 *
 *   deno run --unstable-kv --unstable-net --inspect=127.0.0.1:9229 -A main.ts serve &
 *   deno task bench --url http://127.0.0.1:8080 --secret S --pid $! --scenarios targeted \
 *     --rate 2000 --seconds 20 &
 *   sleep 12; deno run -A bench/cpu_profile.ts --port 9229 --seconds 8 --rate 2000
 *
 * `--within REGEX` also prints the time of every sample with a frame matching REGEX anywhere in
 * its stack, whatever kind it went to (`--within tick@live_hub` for the hub's tick).
 */
interface CallFrame {
  functionName: string;
  url: string;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const flag = (name: string, fallback: number) => {
  const at = Deno.args.indexOf(`--${name}`);
  return at === -1 ? fallback : Number(Deno.args[at + 1]);
};
const port = flag("port", 9229);
const seconds = flag("seconds", 8);
const rate = flag("rate", 2000);
const withinAt = Deno.args.indexOf("--within");
const within = withinAt === -1 ? null : new RegExp(Deno.args[withinAt + 1]);

/** Kinds of work, first match wins; a frame reads `function@file`. */
const KINDS: [string, (stack: string[]) => boolean][] = [
  ["idle", (s) => s[0].startsWith("(idle)")],
  ["GC on the JS thread", (s) => s[0].startsWith("(garbage collector)")],
  ["socket writes (writev)", (s) => s[0].startsWith("writev@")],
  ["KV operations, synchronous part", (s) => s[0].startsWith("op_kv")],
  [
    "delivery to streams (hub, connection, frame queue)",
    (s) =>
      s.some((f) =>
        /^(emit@listener_set|deliver@live_connection|#pump@frame_queue|write@node_sse_sink)/
          .test(f)
      ),
  ],
  [
    "store: read, plan, commit, settle",
    (s) => s.some((f) => /kv_alarm_store|batch_reads|plan_batch|write_queue|01_db\.ts/.test(f)),
  ],
  [
    "validation (zod, JSON)",
    (s) => s.some((f) => /schemas\.js|^parseJsonBody|^parseOr400/.test(f)),
  ],
  ["authentication", (s) => s.some((f) => /auth\.ts|^authenticate@/.test(f))],
  [
    "pipeline and route (routing, headers, log)",
    (s) =>
      s.some((f) =>
        /pipeline\.ts|publisher_routes|request_log|origin_policy|client_address|alarm_service|router|^search@node\.js/
          .test(f)
      ),
  ],
  [
    "node:http answer (head, end)",
    (s) =>
      s.some((f) =>
        /^(writeHead@|end@node:_http_outgoing|_storeHeader|write@node_transport|resOnFinish|onFinish@node:_http_outgoing)/
          .test(f)
      ),
  ],
  [
    "node:http request (accept, parse, body)",
    (s) => s.some((f) => /node:_http|net\.ts|readable\.js|^onEnd@node_transport/.test(f)),
  ],
  ["timers and the event loop", (s) => s.some((f) => /timers|01_core\.js/.test(f))],
];

async function sample(): Promise<Profile> {
  const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const ws = new WebSocket(targets[0].webSocketDebuggerUrl);
  await new Promise((resolve) => (ws.onopen = resolve));
  const pending = new Map<number, (result: Record<string, unknown>) => void>();
  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    pending.get(message.id)?.(message.result);
    pending.delete(message.id);
  };
  let id = 0;
  const call = (method: string, params = {}) =>
    new Promise<Record<string, unknown>>((resolve) => {
      pending.set(++id, resolve);
      ws.send(JSON.stringify({ id, method, params }));
    });
  await call("Profiler.enable");
  await call("Profiler.setSamplingInterval", { interval: 200 });
  await call("Profiler.start");
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const { profile } = await call("Profiler.stop") as { profile: Profile };
  ws.close();
  return profile;
}

const profile = await sample();
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const parent = new Map<number, number>();
for (const node of profile.nodes) {
  for (const child of node.children ?? []) parent.set(child, node.id);
}
const frame = (node: ProfileNode) =>
  `${node.callFrame.functionName || "(anon)"}@${node.callFrame.url.split("/").pop()}`;
const stacks = new Map<number, string[]>();
const stackOf = (leaf: number) => {
  let stack = stacks.get(leaf);
  if (!stack) {
    stack = [];
    for (let at: number | undefined = leaf; at !== undefined; at = parent.get(at)) {
      stack.push(frame(byId.get(at)!));
    }
    stacks.set(leaf, stack);
  }
  return stack;
};
const time = new Map<string, number>();
let withinUs = 0;
profile.samples.forEach((leaf, i) => {
  const stack = stackOf(leaf);
  if (within && stack.some((f) => within.test(f))) withinUs += profile.timeDeltas[i + 1] ?? 0;
  const kind = KINDS.find(([, matches]) => matches(stack))?.[0] ?? "other";
  time.set(kind, (time.get(kind) ?? 0) + (profile.timeDeltas[i + 1] ?? 0));
});
const busy = [...time].reduce((sum, [kind, us]) => kind === "idle" ? sum : sum + us, 0);
const alarms = rate * seconds;
console.log(`JS thread busy ${(busy / alarms).toFixed(1)} µs per alarm (wall time, sampled)`);
for (const [kind, us] of [...time].sort((a, b) => b[1] - a[1])) {
  if (kind === "idle") continue;
  const share = (100 * us / busy).toFixed(1).padStart(5);
  console.log(`${(us / alarms).toFixed(1).padStart(7)} µs ${share} %  ${kind}`);
}
if (within) {
  const share = (100 * withinUs / busy).toFixed(1);
  console.log(
    `within ${within.source}: ${(withinUs / alarms).toFixed(1)} µs per alarm, ${share} %`,
  );
}
