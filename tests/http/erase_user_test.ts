/** `DELETE /api/v1/user-data/{userId}`: the erasure a privacy request needs, through HTTP. */
import assert from "node:assert/strict";
import {
  createBatchOk,
  createOk,
  expectError,
  expectJson,
  expectNoContent,
  listAll,
  unreadCount,
} from "../helpers/api_client.ts";
import { SUBSCRIBE_PATH } from "../helpers/live_fixtures.ts";
import { openSse } from "../helpers/sse_client.ts";
import { startTestPushService } from "../helpers/test_push_service.ts";
import { startTestServer } from "../helpers/test_server.ts";
import { within } from "../helpers/wait.ts";

Deno.test("erasing a user removes 1,000 alarms, counters and push subscriptions in one call and ends their streams", async () => {
  await using service = await startTestPushService();
  await using server = await startTestServer({
    vapidSubject: "mailto:ops@example.com",
    pushAllowedOrigins: service.origin,
  });
  const publisher = await server.publisherToken();
  const kim = await server.userToken("kim");
  for (let batch = 0; batch < 2; batch++) {
    await createBatchOk(
      server,
      publisher,
      Array.from({ length: 500 }, (_, n) => ({ userId: "kim", type: "t", data: { n } })),
    );
  }
  await createOk(server, publisher, { userId: "lee", type: "t" });
  const sub = await service.subscribe();
  const registered = await server.fetch("/api/v1/users/push-subscriptions", {
    method: "POST",
    token: kim,
    json: { endpoint: sub.endpoint, keys: sub.keys },
  });
  await expectJson(registered, 201);
  await using stream = await openSse(server.url + SUBSCRIBE_PATH, { token: kim });
  await stream.waitFor((e) => e.event === "connect", 1);

  const erase = () => server.fetch("/api/v1/user-data/kim", { method: "DELETE", token: publisher });
  await expectNoContent(await erase());
  await within(3000, stream.ended, "kim's stream ends");
  assert.deepEqual(await listAll(server, kim), []);
  assert.equal(await unreadCount(server, kim), 0);
  const subs = await server.fetch("/api/v1/users/push-subscriptions", { token: kim });
  assert.deepEqual(await expectJson(subs, 200), { items: [] });
  assert.equal((await listAll(server, await server.userToken("lee"))).length, 1, "lee keeps hers");

  await expectNoContent(await erase()); // idempotent
  const fresh = await createOk(server, publisher, { userId: "kim", type: "t" });
  await using again = await openSse(server.url + SUBSCRIBE_PATH, { token: kim });
  const [connect] = await again.waitFor((e) => e.event === "connect", 1);
  assert.deepEqual(
    { unread: JSON.parse(connect.data).unread, lastId: JSON.parse(connect.data).lastId },
    { unread: 1, lastId: fresh.id },
    "the id starts afresh",
  );
});

Deno.test("erasing needs the publish scope and a valid user id", async () => {
  await using server = await startTestServer();
  const kim = await server.userToken("kim");
  await expectError(
    await server.fetch("/api/v1/user-data/kim", { method: "DELETE" }),
    401,
    "unauthorized",
  );
  await expectError(
    await server.fetch("/api/v1/user-data/kim", { method: "DELETE", token: kim }),
    403,
    "forbidden",
  );
  const publisher = await server.publisherToken();
  const long = encodeURIComponent("x".repeat(129));
  await expectError(
    await server.fetch(`/api/v1/user-data/${long}`, { method: "DELETE", token: publisher }),
    400,
    "invalid_request",
  );
  await expectNoContent(
    await server.fetch(`/api/v1/user-data/${encodeURIComponent("ünïcode user")}`, {
      method: "DELETE",
      token: publisher,
    }),
  );
});
