/**
 * Alarms with a `notification` (what a Web Push shows): accepted, stored and returned on every
 * path, validated field by field, and refused when the push payload would be too large.
 */
import assert from "node:assert/strict";
import { startTestServer } from "../helpers/test_server.ts";
import {
  create,
  createBatchOk,
  createOk,
  expectError,
  expectValidationError,
  listAll,
} from "../helpers/api_client.ts";

const notification = { title: "Kim commented", body: "Nice post!", url: "/posts/7", tag: "post-7" };

Deno.test("a notification is stored with its alarm and returned by create, list and batch; absent it is null", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  const withIt = await createOk(server, publisher, { userId: "kim", type: "t", notification });
  assert.deepEqual(withIt.notification, notification);
  const without = await createOk(server, publisher, { userId: "kim", type: "t" });
  assert.equal(without.notification, null);
  const [batched] = await createBatchOk(server, publisher, [
    { userId: "kim", type: "t", notification: { title: "only a title" } },
  ]);
  assert.deepEqual(batched.notification, { title: "only a title" });
  const listed = await listAll(server, await server.userToken("kim"));
  assert.deepEqual(listed.map((a) => a.notification), [
    { title: "only a title" },
    null,
    notification,
  ]);
});

Deno.test("a notification is validated field by field: title, body, url (a path or https), tag, nothing else", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  const bad: unknown[] = [
    {},
    { title: "" },
    { title: "x".repeat(121) },
    { title: "t", body: "x".repeat(501) },
    { title: "t", url: "//evil.example/phish" },
    { title: "t", url: "/\\evil.example" },
    { title: "t", url: "http://plain.example/" },
    { title: "t", url: "javascript:alert(1)" },
    { title: "t", url: "relative/path" },
    { title: "t", tag: "x".repeat(65) },
    { title: "t", icon: "/i.png" },
    "a string",
  ];
  for (const n of bad) {
    const res = await create(server, publisher, { userId: "kim", type: "t", notification: n });
    const error = await expectValidationError(res);
    assert.ok(error.issues.some((i) => i.path.startsWith("notification")), JSON.stringify(n));
  }
  for (const url of ["/", "/posts/7?x=1#c", "https://app.example.com/posts/7"]) {
    await createOk(server, publisher, {
      userId: "kim",
      type: "t",
      notification: { title: "t", url },
    });
  }
  assert.equal(
    (await listAll(server, await server.userToken("kim"))).length,
    3,
    "only the valid ones",
  );
});

Deno.test("a notification whose push payload would pass 3,072 bytes is 400, single or in a batch, and nothing is stored", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  // Every field within its own limit, but 500 three-byte characters and a long path add up.
  const big = { title: "t", body: "€".repeat(500), url: "/" + "p".repeat(1600) };
  const single = await create(server, publisher, { userId: "kim", type: "t", notification: big });
  const error = await expectError(single, 400, "invalid_request");
  assert.match(error.message, /push payload of \d+ bytes; the limit is 3072/);
  const batch = await server.fetch("/api/v1/alarms/batch", {
    method: "POST",
    token: publisher,
    json: {
      alarms: [{ userId: "kim", type: "t" }, { userId: "kim", type: "t", notification: big }],
    },
  });
  const batchError = await expectError(batch, 400, "invalid_request");
  assert.match(batchError.message, /^alarms\[1\]\.notification/);
  assert.deepEqual(await listAll(server, await server.userToken("kim")), []);
});
