/**
 * A due push survives a crash: alarmd killed with SIGKILL after the 201 and before the push
 * service answered sends it again after a restart on the same KV file (at least once).
 */
import assert from "node:assert/strict";
import { startServeProcess } from "../helpers/process.ts";
import { startTestPushService } from "../helpers/test_push_service.ts";
import { publisherToken, userToken } from "../helpers/test_server.ts";
import { waitUntil } from "../helpers/wait.ts";

Deno.test("kill -9 after the 201 and before the push was answered: sent after the restart", async () => {
  await using service = await startTestPushService();
  const dir = await Deno.makeTempDir({ prefix: "alarmd-push-crash-" });
  const env = {
    ALARMD_KV_PATH: `${dir}/alarmd.kv`,
    ALARMD_VAPID_SUBJECT: "mailto:ops@example.com",
    ALARMD_PUSH_ALLOWED_ORIGINS: service.origin,
  };
  try {
    const sub = await service.subscribe();
    // The first message is held unanswered: alarmd has sent it, but nothing says it arrived.
    service.answer(sub.id, [{ status: 201, delayMs: 60_000 }]);
    const first = await startServeProcess(env);
    let alarmId: string;
    try {
      const registered = await fetch(`${first.url}/api/v1/users/push-subscriptions`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${await userToken("kim")}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({ endpoint: sub.endpoint, keys: sub.keys }),
      });
      assert.equal(registered.status, 201, await registered.text());
      const created = await fetch(`${first.url}/api/v1/alarms`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${await publisherToken()}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({ userId: "kim", type: "t", notification: { title: "Hello" } }),
      });
      assert.equal(created.status, 201);
      alarmId = (await created.json()).id;
      await waitUntil(() => service.requests.length === 1, "the push reached the service", 10_000);
    } finally {
      await first.stop("SIGKILL");
    }
    await using second = await startServeProcess(env);
    // The dead instance's sender lease lapses first (10 s at most), then the new one sends.
    const sends = () => service.received().filter((p) => JSON.parse(p.payload).id === alarmId);
    assert.equal(sends().length, 1, "the held message arrived once before the crash");
    await waitUntil(
      () => sends().length === 2,
      "the push was sent again after the restart",
      25_000,
    );
    assert.ok(second.logs().some((l) => l.msg === "push is on"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
