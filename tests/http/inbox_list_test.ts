/**
 * GET /api/v1/users/alarms (api.md: Alarms): newest first, paged by an opaque cursor that misses
 * and repeats nothing while alarms arrive, optionally unread only.
 */
import assert from "node:assert/strict";
import { startTestServer } from "../helpers/test_server.ts";
import type { AlarmJson } from "../helpers/api_client.ts";
import {
  createBatchOk,
  createOk,
  expectError,
  expectNoContent,
  expectValidationError,
  listAll,
  listPage,
  markRead,
} from "../helpers/api_client.ts";

Deno.test("the list is newest first, 20 per page by default, with a nextCursor to the rest", async () => {
  await using server = await startTestServer();
  const created = await createBatchOk(
    server,
    await server.publisherToken(),
    Array.from({ length: 25 }, (_, i) => ({ userId: "kim", type: "t", data: { i } })),
  );
  const kim = await server.userToken("kim");
  const first = await listPage(server, kim);
  const newestFirst = [...created].reverse();
  assert.deepEqual(first.items, newestFirst.slice(0, 20));
  assert.equal(typeof first.nextCursor, "string");
  const second = await listPage(server, kim, `cursor=${encodeURIComponent(first.nextCursor!)}`);
  assert.deepEqual(second.items, newestFirst.slice(20));
  assert.equal(second.nextCursor, null);
});

Deno.test("a page that holds the last alarm has nextCursor null", async () => {
  await using server = await startTestServer();
  const kim = await server.userToken("kim");
  assert.deepEqual(await listPage(server, kim), { items: [], nextCursor: null });
  await createBatchOk(
    server,
    await server.publisherToken(),
    Array.from({ length: 20 }, () => ({ userId: "kim", type: "t" })),
  );
  const page = await listPage(server, kim);
  assert.equal(page.items.length, 20);
  assert.equal(page.nextCursor, null);
  const small = await listPage(server, kim, "limit=19");
  assert.equal(small.items.length, 19);
  assert.notEqual(small.nextCursor, null);
});

Deno.test("limit accepts 1..100 and anything else is 400 invalid_request", async () => {
  await using server = await startTestServer();
  await createBatchOk(
    server,
    await server.publisherToken(),
    Array.from({ length: 105 }, () => ({ userId: "kim", type: "t" })),
  );
  const kim = await server.userToken("kim");
  assert.equal((await listPage(server, kim, "limit=1")).items.length, 1);
  assert.equal((await listPage(server, kim, "limit=100")).items.length, 100);
  for (const bad of ["0", "101", "-1", "abc", "1.5", "", "1e9"]) {
    const res = await server.fetch(`/api/v1/users/alarms?limit=${bad}`, { token: kim });
    await expectValidationError(res);
  }
});

Deno.test("paging with the cursor misses nothing and repeats nothing while alarms arrive", async () => {
  await using server = await startTestServer();
  const publisher = await server.publisherToken();
  const original = await createBatchOk(
    server,
    publisher,
    Array.from({ length: 47 }, (_, i) => ({ userId: "kim", type: "t", data: { i } })),
  );
  const kim = await server.userToken("kim");
  const seen: AlarmJson[] = [];
  let cursor: string | null = null;
  const inserted: AlarmJson[] = [];
  do {
    const page: { items: AlarmJson[]; nextCursor: string | null } = await listPage(
      server,
      kim,
      `limit=10${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
    );
    seen.push(...page.items);
    cursor = page.nextCursor;
    // New alarms land between page fetches, on top of the list.
    inserted.push(
      ...await Promise.all([
        createOk(server, publisher, { userId: "kim", type: "new" }),
        createOk(server, publisher, { userId: "kim", type: "new" }),
        createOk(server, publisher, { userId: "kim", type: "new" }),
      ]),
    );
  } while (cursor !== null);

  assert.deepEqual(seen.map((a) => a.id), original.map((a) => a.id).reverse());
  const everything = await listAll(server, kim);
  assert.equal(everything.length, original.length + inserted.length);
  assert.deepEqual(
    new Set(everything.map((a) => a.id)),
    new Set([...original, ...inserted].map((a) => a.id)),
  );
});

Deno.test("a cursor the server did not issue is 400 invalid_request", async () => {
  await using server = await startTestServer();
  await createOk(server, await server.publisherToken(), { userId: "kim", type: "t" });
  const kim = await server.userToken("kim");
  for (
    const cursor of [
      "garbage",
      "!!!",
      btoa("v1:not-an-id"),
      btoa("v2:01J00000000000000000000000"),
      "x".repeat(300),
    ]
  ) {
    const res = await server.fetch(
      `/api/v1/users/alarms?cursor=${encodeURIComponent(cursor)}`,
      { token: kim },
    );
    await expectError(res, 400, "invalid_request");
  }
});

Deno.test("unread=true lists only unread alarms, newest first, across pages", async () => {
  await using server = await startTestServer();
  const created = await createBatchOk(
    server,
    await server.publisherToken(),
    Array.from({ length: 30 }, (_, i) => ({ userId: "kim", type: "t", data: { i } })),
  );
  const kim = await server.userToken("kim");
  const read = created.filter((_, i) => i % 3 === 0);
  for (const alarm of read) await expectNoContent(await markRead(server, kim, alarm.id));

  const unread = created.filter((_, i) => i % 3 !== 0).reverse();
  const listed = await listAll(server, kim, { unread: "true", limit: "7" });
  assert.deepEqual(listed.map((a) => a.id), unread.map((a) => a.id));
  for (const alarm of listed) assert.equal(alarm.readAt, null);

  const all = await listAll(server, kim, { unread: "false" });
  assert.equal(all.length, 30);
  const badFilter = await server.fetch("/api/v1/users/alarms?unread=yes", { token: kim });
  await expectValidationError(badFilter);
});
