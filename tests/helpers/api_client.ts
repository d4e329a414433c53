/**
 * Small helpers for the HTTP behaviour tests: read a response the way the contract describes
 * it (status, then content type, then body) and walk the alarm API like a client would.
 */
import assert from "node:assert/strict";
import type { TestServer } from "./test_server.ts";

/** A ULID in Crockford base32 (what alarmd uses for ids, per the contract "sorts in creation order"). */
export const ULID_PATTERN = /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/;

export interface AlarmJson {
  id: string;
  userId: string;
  type: string;
  data: Record<string, unknown>;
  createdAt: string;
  readAt: string | null;
  notification: { title: string; body?: string; url?: string; tag?: string } | null;
}

export interface ErrorBody {
  code: string;
  message: string;
  issues?: { path: string; message: string }[];
}

/** Asserts status, then `application/json`, then parses the body. */
export async function expectJson<T = unknown>(res: Response, status: number): Promise<T> {
  const text = await res.text();
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${text}`);
  assert.match(res.headers.get("content-type") ?? "", /^application\/json(;|$)/i);
  return JSON.parse(text) as T;
}

/**
 * Asserts the contract's error shape `{"error":{"code","message","issues"?}}` with the given
 * status and code; returns the inner error object.
 */
export async function expectError(res: Response, status: number, code: string) {
  const body = await expectJson<{ error: ErrorBody }>(res, status);
  assert.deepEqual(Object.keys(body), ["error"], `unexpected body: ${JSON.stringify(body)}`);
  assert.equal(body.error.code, code, JSON.stringify(body));
  assert.equal(typeof body.error.message, "string");
  assert.ok(body.error.message.length > 0, "error message is empty");
  assert.doesNotMatch(JSON.stringify(body), /\bat .*\.(ts|js):\d+/, "stack trace leaked");
  return body.error;
}

/**
 * A 400 invalid_request that lists its validation issues (the contract: "zod issues listed"):
 * `issues` is a non-empty array of `{path, message}`.
 */
export async function expectValidationError(res: Response) {
  const error = await expectError(res, 400, "invalid_request");
  assert.ok(Array.isArray(error.issues), `no issues listed: ${JSON.stringify(error)}`);
  assert.ok(error.issues.length > 0, "issues is empty");
  for (const issue of error.issues) {
    assert.equal(typeof issue.path, "string", JSON.stringify(issue));
    assert.equal(typeof issue.message, "string", JSON.stringify(issue));
  }
  return error as ErrorBody & { issues: { path: string; message: string }[] };
}

export async function expectNoContent(res: Response) {
  const text = await res.text();
  assert.equal(res.status, 204, `expected 204, got ${res.status}: ${text}`);
  assert.equal(text, "");
}

export function assertAlarmShape(alarm: AlarmJson) {
  assert.deepEqual(
    Object.keys(alarm).sort(),
    ["createdAt", "data", "id", "notification", "readAt", "type", "userId"],
  );
  assert.match(alarm.id, ULID_PATTERN);
  assert.equal(new Date(alarm.createdAt).toISOString(), alarm.createdAt, "createdAt is ISO UTC");
  if (alarm.readAt !== null) {
    assert.equal(new Date(alarm.readAt).toISOString(), alarm.readAt, "readAt is ISO UTC");
  }
}

export function create(
  server: TestServer,
  token: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  return server.fetch("/api/v1/alarms", { method: "POST", token, json: body, headers });
}

/** Creates one alarm and expects 201. */
export async function createOk(
  server: TestServer,
  token: string,
  body: { userId: string; type: string; data?: Record<string, unknown>; notification?: unknown },
  headers: Record<string, string> = {},
): Promise<AlarmJson> {
  return await expectJson<AlarmJson>(await create(server, token, body, headers), 201);
}

export async function createBatchOk(
  server: TestServer,
  token: string,
  alarms: {
    userId: string;
    type: string;
    data?: Record<string, unknown>;
    notification?: unknown;
  }[],
): Promise<AlarmJson[]> {
  const res = await server.fetch("/api/v1/alarms/batch", {
    method: "POST",
    token,
    json: { alarms },
  });
  const body = await expectJson<{ items: AlarmJson[] }>(res, 201);
  return body.items;
}

export interface Page {
  items: AlarmJson[];
  nextCursor: string | null;
}

export async function listPage(server: TestServer, token: string, query = ""): Promise<Page> {
  const res = await server.fetch(`/api/v1/users/alarms${query ? `?${query}` : ""}`, { token });
  const page = await expectJson<Page>(res, 200);
  assert.deepEqual(Object.keys(page).sort(), ["items", "nextCursor"]);
  return page;
}

/** Every alarm of the caller, following `nextCursor`; asserts newest first and no repeats. */
export async function listAll(
  server: TestServer,
  token: string,
  extra: Record<string, string> = {},
): Promise<AlarmJson[]> {
  const all: AlarmJson[] = [];
  let cursor: string | null = null;
  for (let pages = 0;; pages++) {
    assert.ok(pages < 10_000, "pagination does not end");
    const params = new URLSearchParams({ limit: "100", ...extra });
    if (cursor) params.set("cursor", cursor);
    const page = await listPage(server, token, params.toString());
    all.push(...page.items);
    cursor = page.nextCursor;
    if (cursor === null) break;
    assert.equal(typeof cursor, "string");
  }
  for (let i = 1; i < all.length; i++) {
    assert.ok(all[i - 1].id > all[i].id, `not newest first at ${i}: ${all[i - 1].id} ${all[i].id}`);
  }
  return all;
}

export async function unreadCount(server: TestServer, token: string): Promise<number> {
  const res = await server.fetch("/api/v1/users/alarms/unread-count", { token });
  const body = await expectJson<{ unread: number }>(res, 200);
  assert.deepEqual(Object.keys(body), ["unread"]);
  assert.ok(Number.isInteger(body.unread) && body.unread >= 0, JSON.stringify(body));
  return body.unread;
}

export function markRead(server: TestServer, token: string, id: string): Promise<Response> {
  return server.fetch(`/api/v1/users/alarms/${encodeURIComponent(id)}/read`, {
    method: "POST",
    token,
  });
}

export function remove(server: TestServer, token: string, id: string): Promise<Response> {
  return server.fetch(`/api/v1/users/alarms/${encodeURIComponent(id)}`, {
    method: "DELETE",
    token,
  });
}

/** Serializes `value` like the server counts it: UTF-8 bytes of its JSON. */
export function jsonBytes(value: unknown): number {
  return new TextEncoder().encode(JSON.stringify(value)).byteLength;
}

export const KIB = 1024;

/** `{"s":"xxx…"}` serialized to exactly `bytes` UTF-8 bytes. */
export function dataOfBytes(bytes: number): Record<string, unknown> {
  const data = { s: "x".repeat(bytes - jsonBytes({ s: "" })) };
  assert.equal(jsonBytes(data), bytes);
  return data;
}

/** A POST whose body is sent as given (a string, bytes or a stream), labelled as JSON. */
export function postBody(
  server: TestServer,
  path: string,
  token: string,
  body: BodyInit,
): Promise<Response> {
  return server.fetch(path, {
    method: "POST",
    token,
    headers: { "content-type": "application/json" },
    body,
  });
}
