/**
 * Durability (api.md: "201 … durable in KV before the response"): what a client was told is
 * stored survives a clean restart and a `kill -9` of a real alarmd process.
 */
import assert from "node:assert/strict";
import { startServeProcess } from "../helpers/process.ts";
import { publisherToken, startTestServer } from "../helpers/test_server.ts";
import type { AlarmJson } from "../helpers/api_client.ts";
import {
  create,
  createOk,
  expectError,
  expectJson,
  expectNoContent,
  listAll,
  markRead,
  remove,
  unreadCount,
} from "../helpers/api_client.ts";

Deno.test("alarms, read state, deletions and idempotency keys survive a restart on the same KV file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "alarmd-restart-" });
  try {
    const body = { userId: "kim", type: "keyed", data: { n: 1 } };
    const key = { "idempotency-key": "restart-key" };
    let before: AlarmJson[];
    let keyed: AlarmJson;
    {
      await using first = await startTestServer({}, { dir });
      const publisher = await first.publisherToken();
      const kim = await first.userToken("kim");
      keyed = await expectJson<AlarmJson>(await create(first, publisher, body, key), 201);
      const others = [];
      for (let i = 0; i < 5; i++) {
        others.push(await createOk(first, publisher, { userId: "kim", type: "t", data: { i } }));
      }
      await createOk(first, publisher, { userId: "lee", type: "t" });
      await expectNoContent(await markRead(first, kim, others[1].id));
      await expectNoContent(await remove(first, kim, others[2].id));
      await expectNoContent(await remove(first, kim, others[3].id));
      await expectNoContent(await markRead(first, kim, others[4].id));
      before = await listAll(first, kim);
      assert.equal(before.length, 4);
      assert.equal(await unreadCount(first, kim), 2);
    }

    await using second = await startTestServer({}, { dir });
    const publisher = await second.publisherToken();
    const kim = await second.userToken("kim");
    assert.deepEqual(await listAll(second, kim), before);
    assert.equal(await unreadCount(second, kim), 2);
    assert.deepEqual(
      (await listAll(second, kim, { unread: "true" })).map((a) => a.id),
      before.filter((a) => a.readAt === null).map((a) => a.id),
    );
    assert.equal((await listAll(second, await second.userToken("lee"))).length, 1);

    // The idempotency record survived: a retry is answered, not stored again.
    assert.deepEqual(await expectJson(await create(second, publisher, body, key), 200), keyed);
    await expectError(
      await create(second, publisher, { ...body, type: "other" }, key),
      409,
      "idempotency_conflict",
    );
    // New ids still sort after every id from before the restart.
    const after = await createOk(second, publisher, { userId: "kim", type: "t" });
    assert.ok(before.every((a) => a.id < after.id), "an id after restart sorts before older ids");
    assert.equal((await listAll(second, kim)).length, 5);
    assert.equal(await unreadCount(second, kim), 3);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("after kill -9 mid-burst every alarm answered 201 is stored and the unread count matches", async () => {
  const dir = await Deno.makeTempDir({ prefix: "alarmd-kill-" });
  const kvPath = `${dir}/alarmd.kv`;
  const USERS = ["u0", "u1", "u2", "u3", "u4", "u5"];
  const TOTAL = 3000;
  const IN_FLIGHT = 64;
  const KILL_AFTER = 1500;

  const alarmd = await startServeProcess({ ALARMD_KV_PATH: kvPath });
  const url = alarmd.url;

  const acked = new Map<string, AlarmJson>();
  const unexpected: string[] = [];
  let attempted = 0;
  let failedAfterKill = 0;
  let killed = false;
  try {
    const publisher = await publisherToken("burst");

    let next = 0;
    const kill = () => {
      if (killed) return;
      killed = true;
      void alarmd.stop("SIGKILL");
    };
    const worker = async () => {
      while (!killed && next < TOTAL) {
        const i = next++;
        attempted++;
        try {
          const res = await fetch(`${url}/api/v1/alarms`, {
            method: "POST",
            headers: { authorization: `Bearer ${publisher}`, "content-type": "application/json" },
            body: JSON.stringify({ userId: USERS[i % USERS.length], type: "burst", data: { i } }),
          });
          const text = await res.text();
          if (res.status === 201) {
            const alarm = JSON.parse(text) as AlarmJson;
            acked.set(alarm.id, alarm);
            if (acked.size >= KILL_AFTER) kill();
          } else {
            unexpected.push(`${res.status} ${text}`);
          }
        } catch (error) {
          if (!killed) throw error;
          failedAfterKill++;
        }
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  } finally {
    await alarmd.stop("SIGKILL");
  }
  console.log(
    `kill -9 after ${acked.size} acknowledged creates ` +
      `(${attempted} sent, ${failedAfterKill} cut off by the kill)`,
  );
  try {
    assert.ok(killed, "the burst finished before the kill");
    assert.deepEqual(unexpected, [], "only 201s were answered before the kill");
    assert.ok(acked.size >= KILL_AFTER && attempted < TOTAL, "the kill was not mid-burst");
    assert.equal((await alarmd.status).signal, "SIGKILL");

    await using server = await startTestServer({}, { dir });
    let stored = 0;
    for (const user of USERS) {
      const token = await server.userToken(user);
      const listed = await listAll(server, token);
      const byId = new Map(listed.map((a) => [a.id, a]));
      for (const alarm of acked.values()) {
        if (alarm.userId !== user) continue;
        assert.deepEqual(byId.get(alarm.id), alarm, `acknowledged alarm ${alarm.id} was lost`);
      }
      for (const alarm of listed) {
        assert.equal(alarm.userId, user);
        assert.equal(alarm.readAt, null);
      }
      assert.equal(await unreadCount(server, token), listed.length, `unread count of ${user}`);
      stored += listed.length;
    }
    assert.ok(stored >= acked.size && stored <= attempted, `${stored} stored`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
