import assert from "node:assert/strict";
import { openSse } from "./helpers/sse_client.ts";
import { startTestServer } from "./helpers/test_server.ts";

Deno.test("an alarm created by a publisher reaches the user's open stream", async () => {
  await using server = await startTestServer();
  const user = await server.userToken("kim");
  await using stream = await openSse(`${server.url}/api/v1/users/alarm/subscribe`, { token: user });
  assert.equal(stream.status, 200);
  const connect = await stream.next();
  assert.equal(connect.event, "connect");
  const res = await server.fetch("/api/v1/alarms", {
    method: "POST",
    token: await server.publisherToken(),
    json: { userId: "kim", type: "comment", data: { text: "hi" } },
  });
  assert.equal(res.status, 201);
  const alarm = await res.json();
  const event = await stream.next();
  assert.equal(event.event, "alarm");
  assert.equal(event.id, alarm.id);
  assert.deepEqual(JSON.parse(event.data), alarm);
});
