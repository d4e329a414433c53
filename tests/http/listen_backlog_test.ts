/**
 * When thousands of streams reconnect at once, connections queue in the kernel until alarmd
 * accepts them; a queue at Node's default of 511 overflows, and each dropped SYN costs its client
 * a one-second retransmit. The listener asks for as deep a queue as the kernel allows.
 */
import assert from "node:assert/strict";
import { startTestServer } from "../helpers/test_server.ts";

/** The kernel's cap on a listen queue, or null where it cannot be read (not Linux). */
function somaxconn(): number | null {
  try {
    return Number(Deno.readTextFileSync("/proc/sys/net/core/somaxconn").trim());
  } catch {
    return null;
  }
}

/**
 * The listen queue's size for `port` from `ss` (its Send-Q column); -1 when nothing listens
 * there, null without `ss`.
 */
async function listenQueue(port: number): Promise<number | null> {
  try {
    const { stdout } = await new Deno.Command("ss", { args: ["-ltnH", `sport = :${port}`] })
      .output();
    const line = new TextDecoder().decode(stdout).trim().split("\n")[0] ?? "";
    const [, , sendQ] = line.split(/\s+/);
    return sendQ === undefined ? -1 : Number(sendQ);
  } catch {
    return null;
  }
}

const cap = somaxconn();
const reason = cap === null
  ? "no /proc/sys/net/core/somaxconn (not Linux)"
  : (await listenQueue(1)) === null
  ? "`ss` (iproute2) is missing: the queue cannot be read"
  : cap <= 511
  ? `net.core.somaxconn is ${cap}: no deeper than Node's default, nothing to tell apart`
  : null;
if (reason) console.log(`listen backlog test skipped: ${reason}`);

Deno.test({
  name: "the stream listener's accept queue is as deep as the kernel allows, not Node's 511",
  ignore: reason !== null,
  async fn() {
    await using server = await startTestServer({ transport: "node" });
    const port = Number(new URL(server.url).port);
    assert.equal(await listenQueue(port), cap);
  },
});
