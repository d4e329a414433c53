/**
 * A client generated from the live `/openapi.json` works against the server: openapi-typescript
 * turns the document into `paths`/`operations` types, a driver written against them with
 * openapi-fetch is type-checked and run by `deno run --check` in a subprocess. A renamed
 * operationId, a response shape that changed in the document, or a server that answers other
 * than documented fails it. A second file with deliberate mistakes must fail the type check,
 * so the generated types cannot have decayed to `any`.
 */
import assert from "node:assert/strict";
import type { OpenAPI3 } from "openapi-typescript";
import openapiTS, { astToString } from "openapi-typescript";
import { startTestServer } from "../helpers/test_server.ts";
import { liveDocument, runDeno, tempDir } from "./openapi_support.ts";

/** Runs against the server; prints `{"checked":[…]}` last. Each step asserts status and body. */
const DRIVER = String.raw`
import assert from "node:assert/strict";
import createClient from "openapi-fetch";
import type { components, operations, paths } from "./schema.ts";

/** Compiles only when A and B are the same type. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Json<Op extends keyof operations, S extends keyof operations[Op]["responses"]> =
  operations[Op]["responses"][S] extends { content: { "application/json": infer B } } ? B
    : never;
type Alarm = components["schemas"]["Alarm"];
type ErrorBody = components["schemas"]["Error"];

const operationIds: Same<
  keyof operations,
  | "createAlarm"
  | "createAlarmBatch"
  | "listMyAlarms"
  | "getMyUnreadCount"
  | "markAllMyAlarmsRead"
  | "markMyAlarmRead"
  | "deleteMyAlarm"
  | "subscribeToAlarms"
  | "getLiveness"
  | "getReadiness"
  | "getMetrics"
  | "getOpenApiDocument"
  | "getApiReference"
  | "getInbox"
  | "getPresence"
  | "getVapidPublicKey"
  | "registerMyPushSubscription"
  | "listMyPushSubscriptions"
  | "deleteMyPushSubscription"
  | "eraseUserData"
> = true;
const shapes: [
  Same<Alarm, {
    id: string;
    userId: string;
    type: string;
    data: { [key: string]: unknown };
    createdAt: string;
    readAt: string | null;
    notification: { title: string; body?: string; url?: string; tag?: string } | null;
  }>,
  Same<Json<"createAlarm", 201>, Alarm>,
  Same<Json<"createAlarm", 200>, Alarm>,
  Same<Json<"createAlarmBatch", 201>, { items: Alarm[] }>,
  Same<Json<"listMyAlarms", 200>, { items: Alarm[]; nextCursor: string | null }>,
  Same<Json<"getMyUnreadCount", 200>, { unread: number }>,
  Same<Json<"getMyUnreadCount", 401>, ErrorBody>,
  Same<Json<"listMyAlarms", 400>, ErrorBody>,
  Same<Json<"createAlarm", 403>, ErrorBody>,
  Same<Json<"createAlarm", 409>, ErrorBody>,
  Same<Json<"markMyAlarmRead", 404>, ErrorBody>,
  Same<Json<"getLiveness", 200>, { status: "ok"; version: string; worker: number }>,
] = [true, true, true, true, true, true, true, true, true, true, true, true];
void operationIds;
void shapes;

const env = (name: string) => Deno.env.get(name) ?? assert.fail(name + " is not set");
const baseUrl = env("ALARMD_URL");
const userId = env("ALARMD_USER");
const bearer = (token: string) => ({ Authorization: "Bearer " + token });
const publisher = createClient<paths>({ baseUrl, headers: bearer(env("ALARMD_PUBLISHER_TOKEN")) });
const user = createClient<paths>({ baseUrl, headers: bearer(env("ALARMD_USER_TOKEN")) });
const anonymous = createClient<paths>({ baseUrl });
const checked: string[] = [];

function ok<T>(result: { data?: T; error?: unknown; response: Response }, status: number): T {
  assert.equal(result.response.status, status, JSON.stringify(result.error));
  assert.equal(result.error, undefined);
  return result.data as T;
}

function failed(
  result: { error?: ErrorBody; response: Response },
  status: number,
  code: ErrorBody["error"]["code"],
): ErrorBody["error"] {
  assert.equal(result.response.status, status);
  assert.match(result.response.headers.get("content-type") ?? "", /^application\/json/);
  const body = result.error ?? assert.fail("no error body");
  assert.deepEqual(Object.keys(body), ["error"]);
  assert.equal(body.error.code, code);
  assert.equal(typeof body.error.message, "string");
  return body.error;
}

const created = await publisher.POST("/api/v1/alarms", {
  params: { header: { "Idempotency-Key": "openapi-client-1" } },
  body: { userId, type: "comment", data: { text: "Lee commented on your post", postId: 981 } },
});
const alarm: Alarm = ok(created, 201);
assert.deepEqual(Object.keys(alarm).sort(), ["createdAt", "data", "id", "notification", "readAt", "type", "userId"]);
assert.equal(alarm.userId, userId);
assert.equal(alarm.readAt, null);
assert.deepEqual(alarm.data, { text: "Lee commented on your post", postId: 981 });
const retried = await publisher.POST("/api/v1/alarms", {
  params: { header: { "Idempotency-Key": "openapi-client-1" } },
  body: { userId, type: "comment", data: { text: "Lee commented on your post", postId: 981 } },
});
assert.deepEqual(ok(retried, 200), alarm);
checked.push("createAlarm");

const batch = ok(
  await publisher.POST("/api/v1/alarms/batch", {
    body: { alarms: [{ userId: "someone-else", type: "like", data: { post: 7 } }, { userId, type: "follow" }] },
  }),
  201,
);
assert.deepEqual(batch.items.map((a) => [a.userId, a.type]), [["someone-else", "like"], [userId, "follow"]]);
const follow = batch.items[1];
checked.push("createAlarmBatch");

type PresenceAnswer = { users: { userId: string; online: boolean; connections: number }[] };
const presenceShape: Same<Json<"getPresence", 200>, PresenceAnswer> = true;
void presenceShape;
const presence = ok(
  await publisher.GET("/api/v1/presence", { params: { query: { userId: [userId, "nobody"] } } }),
  200,
);
assert.deepEqual(presence.users, [
  { userId, online: false, connections: 0 },
  { userId: "nobody", online: false, connections: 0 },
]);
failed(await user.GET("/api/v1/presence", { params: { query: { userId: [userId] } } }), 403, "forbidden");
checked.push("getPresence");

const first = ok(await user.GET("/api/v1/users/alarms", { params: { query: { limit: 1 } } }), 200);
assert.deepEqual(first.items.map((a) => a.id), [follow.id]);
const cursor = first.nextCursor ?? assert.fail("no nextCursor after a full page");
const rest = ok(
  await user.GET("/api/v1/users/alarms", { params: { query: { limit: 10, cursor } } }),
  200,
);
assert.deepEqual(rest, { items: [alarm], nextCursor: null });
checked.push("listMyAlarms");

const unread = async () => ok(await user.GET("/api/v1/users/alarms/unread-count"), 200).unread;
assert.equal(await unread(), 2);
checked.push("getMyUnreadCount");

ok(await user.POST("/api/v1/users/alarms/{id}/read", { params: { path: { id: alarm.id } } }), 204);
assert.equal(await unread(), 1);
const onlyUnread = ok(
  await user.GET("/api/v1/users/alarms", { params: { query: { unread: "true" } } }),
  200,
);
assert.deepEqual(onlyUnread.items.map((a) => a.id), [follow.id]);
const all = ok(await user.GET("/api/v1/users/alarms"), 200);
assert.equal(typeof all.items.find((a) => a.id === alarm.id)?.readAt, "string");
checked.push("markMyAlarmRead");

ok(await user.DELETE("/api/v1/users/alarms/{id}", { params: { path: { id: follow.id } } }), 204);
assert.equal(await unread(), 0);
checked.push("deleteMyAlarm");

ok(await user.POST("/api/v1/users/alarms/read-all"), 204);
checked.push("markAllMyAlarmsRead");

const stream = await user.GET("/api/v1/users/alarm/subscribe", {
  params: { header: { "Last-Event-ID": alarm.id } },
  parseAs: "stream",
});
assert.equal(stream.response.status, 200);
assert.match(stream.response.headers.get("content-type") ?? "", /^text\/event-stream/);
const frames = (stream.data ?? assert.fail("no stream")).pipeThrough(new TextDecoderStream());
let seen = "";
for await (const chunk of frames) {
  seen += chunk;
  if (seen.includes("event: connect")) break;
}
assert.match(seen, /^retry: \d+\n/);
assert.match(seen, /event: connect\ndata: \{[^\n]*"userId":"kim"/);
failed(await anonymous.GET("/api/v1/users/alarm/subscribe"), 401, "unauthorized");
checked.push("subscribeToAlarms");

const health = ok(await anonymous.GET("/healthz"), 200);
assert.equal(health.status, "ok");
checked.push("getLiveness");
assert.equal(ok(await anonymous.GET("/readyz"), 200).status, "ready");
checked.push("getReadiness");
assert.match(ok(await anonymous.GET("/metrics", { parseAs: "text" }), 200), /^# (HELP|TYPE) alarmd_/m);
checked.push("getMetrics");
assert.equal(ok(await anonymous.GET("/openapi.json"), 200).openapi, "3.1.0");
checked.push("getOpenApiDocument");
for (const page of ["/docs", "/"] as const) {
  assert.match(ok(await anonymous.GET(page, { parseAs: "text" }), 200), /<!doctype html>/i);
}
checked.push("getApiReference", "getInbox");

const noToken = await anonymous.GET("/api/v1/users/alarms/unread-count");
failed(noToken, 401, "unauthorized");
assert.match(noToken.response.headers.get("www-authenticate") ?? "", /^Bearer /);
const badLimit = failed(
  await user.GET("/api/v1/users/alarms", { params: { query: { limit: 0 } } }),
  400,
  "invalid_request",
);
assert.deepEqual(badLimit.issues?.map((i) => i.path), ["limit"]);
failed(await user.POST("/api/v1/alarms", { body: { userId, type: "x" } }), 403, "forbidden");
failed(
  await user.POST("/api/v1/users/alarms/{id}/read", { params: { path: { id: "01KAZ3T5QF6V2J8M0X3G7N4R2B" } } }),
  404,
  "not_found",
);
failed(
  await publisher.POST("/api/v1/alarms", {
    params: { header: { "Idempotency-Key": "openapi-client-1" } },
    body: { userId, type: "another" },
  }),
  409,
  "idempotency_conflict",
);
checked.push("errors");

console.log(JSON.stringify({ checked }));
`;

/** Mistakes the generated types must catch, one per line listed in MISTAKE_LINES. */
const MISTAKES = `import createClient from "openapi-fetch";
import type { operations, paths } from "./schema.ts";
const client = createClient<paths>({ baseUrl: "http://127.0.0.1:9" });
export type Renamed = operations["createAlarms"];
export async function misuse() {
  const count = await client.GET("/api/v1/users/alarms/unread-count");
  const n: string | undefined = count.data?.unread;
  await client.GET("/api/v1/users/alarm");
  await client.POST("/api/v1/alarms", { body: { userId: "kim" } });
  const page = await client.GET("/api/v1/users/alarms");
  return [n, page.data?.items[0].readAt.length];
}
`;
/** operationId unknown, unread is a number, no such path, `type` missing, readAt may be null. */
const MISTAKE_LINES = [4, 7, 8, 9, 11];

Deno.test("a client generated from openapi.json type-checks and drives the API", async () => {
  await using server = await startTestServer();
  await using dir = await tempDir("alarmd-openapi-client-");
  const doc = await liveDocument(server);
  const types = astToString(await openapiTS(doc as unknown as OpenAPI3));
  await Deno.writeTextFile(`${dir.path}/schema.ts`, types);
  await Deno.writeTextFile(`${dir.path}/driver.ts`, DRIVER);
  await Deno.writeTextFile(`${dir.path}/mistakes.ts`, MISTAKES);

  const env = {
    ALARMD_URL: server.url,
    ALARMD_USER: "kim",
    ALARMD_USER_TOKEN: await server.userToken("kim"),
    ALARMD_PUBLISHER_TOKEN: await server.publisherToken(),
  };
  const [driver, mistakes] = await Promise.all([
    runDeno([
      "run",
      "--check",
      `--allow-env=${Object.keys(env).join(",")}`,
      "--allow-net=127.0.0.1",
      "driver.ts",
    ], { cwd: dir.path, env }),
    runDeno(["check", "mistakes.ts"], { cwd: dir.path }),
  ]);

  assert.equal(driver.code, 0, `the driver failed:\n${driver.stderr}\n${driver.stdout}`);
  assert.deepEqual(JSON.parse(driver.stdout.trim().split("\n").at(-1)!), {
    checked: [
      "createAlarm",
      "createAlarmBatch",
      "getPresence",
      "listMyAlarms",
      "getMyUnreadCount",
      "markMyAlarmRead",
      "deleteMyAlarm",
      "markAllMyAlarmsRead",
      "subscribeToAlarms",
      "getLiveness",
      "getReadiness",
      "getMetrics",
      "getOpenApiDocument",
      "getApiReference",
      "getInbox",
      "errors",
    ],
  });

  assert.notEqual(mistakes.code, 0, "the deliberate mistakes type-checked");
  const lines = [...mistakes.stderr.matchAll(/mistakes\.ts:(\d+):\d+/g)].map((m) => Number(m[1]));
  assert.deepEqual([...new Set(lines)].sort((a, b) => a - b), MISTAKE_LINES, mistakes.stderr);
});
