import assert from "node:assert/strict";
import {
  CGROUP_MEMORY_FILES,
  memoryCap,
  parseCgroupMemoryLimit,
  readContainerMemoryLimit,
  RSS_SAMPLE_MS,
  watchMemory,
} from "../../src/memory_limit.ts";
import { createFakeClock } from "../helpers/fake_clock.ts";
import { startServeProcess } from "../helpers/process.ts";
import { openSse } from "../helpers/sse_client.ts";
import { publisherToken, userToken } from "../helpers/test_server.ts";

const MIB = 1 << 20;
const [V2, V1] = CGROUP_MEMORY_FILES;

Deno.test("a cgroup memory file gives its limit; max, a huge number or junk mean none", () => {
  assert.equal(parseCgroupMemoryLimit("536870912\n"), 512 * MIB);
  assert.equal(parseCgroupMemoryLimit("max\n"), null);
  // cgroup v1's "no limit"
  assert.equal(parseCgroupMemoryLimit("9223372036854771712\n"), null);
  assert.equal(parseCgroupMemoryLimit(""), null);
  assert.equal(parseCgroupMemoryLimit("0\n"), null);
  assert.equal(parseCgroupMemoryLimit("-1\n"), null);
});

Deno.test("the container's limit is read from cgroup v2, else v1, else there is none", () => {
  const files = (entries: Record<string, string>) => (path: string) => {
    if (!(path in entries)) throw new Deno.errors.NotFound(path);
    return entries[path];
  };
  assert.equal(readContainerMemoryLimit(files({ [V2]: "1073741824\n" })), 1024 * MIB);
  assert.equal(readContainerMemoryLimit(files({ [V1]: "268435456\n" })), 256 * MIB);
  assert.equal(readContainerMemoryLimit(files({ [V2]: "max\n" })), null);
  assert.equal(readContainerMemoryLimit(files({ [V1]: "9223372036854771712\n" })), null);
  assert.equal(readContainerMemoryLimit(files({})), null);
});

Deno.test("the memory cap is the configured one, else 80 % of the container's limit, else none", () => {
  assert.deepEqual(memoryCap(300, 1024 * MIB), { bytes: 300 * MIB, source: "configured" });
  assert.deepEqual(memoryCap(0, 1024 * MIB), { bytes: null, source: "configured" });
  assert.deepEqual(memoryCap(undefined, 1000 * MIB), { bytes: 800 * MIB, source: "cgroup" });
  assert.deepEqual(memoryCap(undefined, null), { bytes: null, source: "none" });
});

Deno.test("resident memory is sampled on a timer, not per check, and the cap applies while over it", () => {
  const clock = createFakeClock();
  let rss = 90 * MIB;
  let reads = 0;
  const changes: [boolean, number][] = [];
  const watch = watchMemory({
    capBytes: 100 * MIB,
    rss: () => (reads++, rss),
    clock,
    onChange: (over, bytes) => changes.push([over, bytes]),
  });
  try {
    for (let i = 0; i < 1000; i++) assert.equal(watch.over(), false);
    assert.equal(reads, 1, "one reading at start, none per check");
    rss = 120 * MIB;
    assert.equal(watch.over(), false, "not read again before the next sample");
    clock.tick(RSS_SAMPLE_MS);
    assert.equal(watch.over(), true);
    rss = 99 * MIB;
    clock.tick(RSS_SAMPLE_MS);
    assert.equal(watch.over(), false, "new streams are accepted again below the cap");
    assert.equal(reads, 3);
    assert.deepEqual(changes, [[true, 120 * MIB], [false, 99 * MIB]]);
  } finally {
    watch.stop();
  }
  clock.tick(10 * RSS_SAMPLE_MS);
  assert.equal(reads, 3, "stop ends the sampling");
  const none = watchMemory({ capBytes: null, rss: () => (reads++, rss), clock });
  assert.equal(none.over(), false);
  assert.equal(reads, 3, "without a cap, memory is never read");
});

Deno.test("above ALARMD_MAX_MEMORY_MB new streams get 503 too_many_connections; the rest keeps working", async () => {
  // Any process's resident memory is above 1 MiB.
  await using alarmd = await startServeProcess({ ALARMD_MAX_MEMORY_MB: "1" });
  const caps = alarmd.logs().find((l) => l.msg === "caps in force");
  assert.equal(caps?.maxMemoryMb, 1, alarmd.stderr());
  assert.equal(caps?.maxMemoryFrom, "configured");
  assert.equal(typeof caps?.maxConnections, "number");
  assert.equal(caps?.maxConnectionsPerUser, 16);
  const warning = alarmd.logs().find((l) => l.level === "warn" && /memory above/.test(`${l.msg}`));
  assert.equal(warning?.maxMemoryMb, 1, "start-up says that streams are refused");

  for (let attempt = 0; attempt < 2; attempt++) {
    const refused = await fetch(`${alarmd.url}/api/v1/users/alarm/subscribe`, {
      headers: { authorization: `Bearer ${await userToken("kim")}` },
    });
    assert.equal(refused.status, 503);
    assert.ok(Number(refused.headers.get("retry-after")) >= 1, "Retry-After");
    assert.match(refused.headers.get("content-type") ?? "", /^application\/json/);
    const body = await refused.json();
    assert.equal(body.error.code, "too_many_connections");
    assert.equal(typeof body.error.message, "string");
  }

  const health = await fetch(`${alarmd.url}/healthz`);
  assert.equal(health.status, 200);
  await health.body?.cancel();
  const created = await fetch(`${alarmd.url}/api/v1/alarms`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${await publisherToken("app")}`,
      "content-type": "application/json",
    },
    body: JSON.stringify({ userId: "kim", type: "comment" }),
  });
  assert.equal(created.status, 201);
  await created.body?.cancel();
  const metrics = await (await fetch(`${alarmd.url}/metrics`)).text();
  assert.match(metrics, /^alarmd_connections_refused_total\{scope="memory"\} 2$/m);
  assert.equal(await alarmd.stop(), 0, "the process stayed up and stops cleanly");
});

Deno.test("without ALARMD_MAX_MEMORY_MB the cap follows the container, and streams are accepted", async () => {
  await using alarmd = await startServeProcess({});
  const expected = memoryCap(undefined, readContainerMemoryLimit());
  const caps = alarmd.logs().find((l) => l.msg === "caps in force");
  assert.equal(caps?.maxMemoryFrom, expected.source, alarmd.stderr());
  assert.equal(
    caps?.maxMemoryMb,
    expected.bytes === null ? null : Math.floor(expected.bytes / MIB),
  );

  await using stream = await openSse(`${alarmd.url}/api/v1/users/alarm/subscribe`, {
    token: await userToken("kim"),
  });
  assert.equal(stream.status, 200);
  await stream.waitFor((e) => e.event === "connect", 1);
  assert.equal(await alarmd.stop(), 0);
});
