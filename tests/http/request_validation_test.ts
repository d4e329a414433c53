/**
 * Requests the API refuses (api.md: Errors): malformed, mistyped, unknown or oversized bodies
 * are 400 invalid_request with issues or 413 payload_too_large, and nothing is stored; an
 * unknown route is a JSON 404.
 */
import assert from "node:assert/strict";
import { startTestServer } from "../helpers/test_server.ts";
import {
  create,
  createOk,
  expectError,
  expectValidationError,
  KIB,
  listAll,
  postBody,
} from "../helpers/api_client.ts";

/** `levels` objects nested in each other: `{}` is 1 level, `{"a":{}}` is 2. */
function nestedObject(levels: number): Record<string, unknown> {
  let value: Record<string, unknown> = {};
  for (let i = 1; i < levels; i++) value = { a: value };
  return value;
}

Deno.test("a malformed JSON body is 400 invalid_request with issues", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  for (const body of ['{"userId":"kim","type":', "{'userId':'kim'}", "nope", "{}{}"]) {
    const res = await server.fetch("/api/v1/alarms", {
      method: "POST",
      token: publisher,
      headers: { "content-type": "application/json" },
      body,
    });
    await expectValidationError(res);
  }
});

Deno.test("a body that is not application/json is 400 invalid_request with issues", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  const body = JSON.stringify({ userId: "kim", type: "t" });
  for (const contentType of ["text/plain", "application/x-www-form-urlencoded", null]) {
    const headers: Record<string, string> = contentType ? { "content-type": contentType } : {};
    const res = await server.fetch("/api/v1/alarms", {
      method: "POST",
      token: publisher,
      headers,
      body: contentType === null ? new TextEncoder().encode(body) : body,
    });
    await expectValidationError(res);
  }
  assert.deepEqual(await listAll(server, await server.userToken("kim")), []);
});

Deno.test("a JSON body that is not an object is 400 invalid_request with issues", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  for (const json of [[], null, 42, "text", true]) {
    await expectValidationError(await create(server, publisher, json));
  }
});

Deno.test("missing fields are 400 with an issue for each", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  const both = await expectValidationError(await create(server, publisher, {}));
  assert.ok(both.issues.some((i) => i.path === "userId"), JSON.stringify(both.issues));
  assert.ok(both.issues.some((i) => i.path === "type"), JSON.stringify(both.issues));
  const noType = await expectValidationError(await create(server, publisher, { userId: "kim" }));
  assert.ok(noType.issues.some((i) => i.path === "type"), JSON.stringify(noType.issues));
  const noUser = await expectValidationError(await create(server, publisher, { type: "t" }));
  assert.ok(noUser.issues.some((i) => i.path === "userId"), JSON.stringify(noUser.issues));
});

Deno.test("unknown fields are 400 invalid_request", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  for (
    const json of [
      { userId: "kim", type: "t", extra: 1 },
      { userId: "kim", type: "t", id: "01J00000000000000000000000" },
      { userId: "kim", type: "t", readAt: null },
    ]
  ) {
    await expectValidationError(await create(server, publisher, json));
  }
  assert.deepEqual(await listAll(server, await server.userToken("kim")), []);
});

Deno.test("type must be 1..64 characters of A-Z a-z 0-9 . _ : -", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  for (const type of ["a", "Az09._:-", "t".repeat(64)]) {
    const alarm = await createOk(server, publisher, { userId: "kim", type });
    assert.equal(alarm.type, type);
  }
  for (
    const type of [
      "",
      "t".repeat(65),
      "has space",
      "slash/y",
      "new\nline",
      "cr\rx",
      "ünï",
      "emoji😀",
      "semi;colon",
      'quote"',
      42,
      null,
    ]
  ) {
    await expectValidationError(await create(server, publisher, { userId: "kim", type }));
  }
  assert.equal((await listAll(server, await server.userToken("kim"))).length, 3);
});

Deno.test("userId must be a string of 1..128 characters", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  const longest = "u".repeat(128);
  await createOk(server, publisher, { userId: longest, type: "t" });
  assert.equal((await listAll(server, await server.userToken(longest))).length, 1);
  for (const userId of ["", "u".repeat(129), 7, null, ["kim"]]) {
    await expectValidationError(await create(server, publisher, { userId, type: "t" }));
  }
});

Deno.test("data must be a JSON object", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  for (const data of [[], [1, 2], null, "text", 1, true]) {
    await expectValidationError(
      await create(server, publisher, { userId: "kim", type: "t", data }),
    );
  }
  assert.deepEqual(await listAll(server, await server.userToken("kim")), []);
});

Deno.test("data nested deeper than 32 levels is 400; 32 levels are accepted", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  const ok = await createOk(server, publisher, {
    userId: "kim",
    type: "t",
    data: nestedObject(32),
  });
  assert.deepEqual(ok.data, nestedObject(32));
  await expectValidationError(
    await create(server, publisher, { userId: "kim", type: "t", data: nestedObject(34) }),
  );
  // Far deeper than allowed, within the body limit: still a 400, never a 500.
  const deepArrays = "[".repeat(20_000) + "]".repeat(20_000);
  const res = await postBody(
    server,
    "/api/v1/alarms",
    publisher,
    `{"userId":"kim","type":"t","data":{"a":${deepArrays}}}`,
  );
  await expectValidationError(res);
  assert.equal((await listAll(server, await server.userToken("kim"))).length, 1);
});

Deno.test("a body over the size limit is 413 payload_too_large, with or without Content-Length", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  const huge = JSON.stringify({ userId: "kim", type: "t", data: { s: "x".repeat(200 * KIB) } });

  const sized = await postBody(server, "/api/v1/alarms", publisher, huge);
  await expectError(sized, 413, "payload_too_large");

  const bytes = new TextEncoder().encode(huge);
  const chunked = await server.fetch("/api/v1/alarms", {
    method: "POST",
    token: publisher,
    headers: { "content-type": "application/json" },
    body: new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < bytes.length; i += 16 * KIB) {
          controller.enqueue(bytes.slice(i, i + 16 * KIB));
        }
        controller.close();
      },
    }),
  });
  await expectError(chunked, 413, "payload_too_large");

  const batchBody = JSON.stringify({
    alarms: [{ userId: "kim", type: "t", data: { s: "x".repeat(6 * 1024 * KIB) } }],
  });
  const batch = await postBody(server, "/api/v1/alarms/batch", publisher, batchBody);
  await expectError(batch, 413, "payload_too_large");
  assert.deepEqual(await listAll(server, await server.userToken("kim")), []);
});

Deno.test("an unknown route is 404 not_found as JSON", async () => {
  await using server = await startTestServer();
  const kim = await server.userToken("kim");
  await expectError(await server.fetch("/nope"), 404, "not_found");
  await expectError(await server.fetch("/api/v1/nope", { token: kim }), 404, "not_found");
  await expectError(await server.fetch("/api/v2/users/alarms", { token: kim }), 404, "not_found");
  await expectError(
    await server.fetch("/api/v1/users/alarms/unread-count/extra", { token: kim }),
    404,
    "not_found",
  );
});
