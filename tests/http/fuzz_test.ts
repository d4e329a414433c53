/**
 * Thousands of generated malformed requests against every endpoint: bad JSON, wrong types,
 * huge and unicode strings, nulls, deep nesting, wrong content types, odd methods, traversal
 * in ids, injection attempts in headers; bodies sent with a length, chunked, or cut off by a
 * client that hangs up mid-body. Whatever comes in: never a 5xx, every error is the contract's
 * JSON, a rejected request stores nothing, and the server keeps serving.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { startTestServer } from "../helpers/test_server.ts";

const RUNS = 3000;

const hostileString = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.constantFrom(
    "../../etc/passwd",
    "%2e%2e%2f%2e%2e%2f",
    "\u0000",
    "a\r\nid: 1\r\nevent: alarm",
    "data: {}\n\n",
    "🔔".repeat(70),
    "x".repeat(5000),
    "01KAZ3T5QF6V2J8M0X3G7N4R2B",
    "ZZZZZZZZZZZZZZZZZZZZZZZZZZ",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
  ),
);

function deep(depth: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { a: v };
  return v;
}

/** What a header can carry at all: Latin-1 without CR, LF or NUL (fetch refuses the rest). */
const headerValue = hostileString.map((v) => v.replace(/[^\x20-\xff]/g, "?"));

const anyValue = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }),
  hostileString,
  fc.constant(null),
  fc.integer().map((d) => deep(10 + (Math.abs(d) % 5000))),
);

/** Bodies that look like creates, with every field possibly wrong; userId is "fuzz" if a string. */
const alarmish = fc.record({
  userId: fc.oneof(
    fc.constant("fuzz"),
    fc.constant(""),
    fc.constant("u".repeat(129)),
    anyValue.filter((v) => typeof v !== "string"),
  ),
  type: fc.oneof(fc.constantFrom("comment", "a b", "x".repeat(65), "é", "ok.type:1-2_3"), anyValue),
  data: fc.oneof(
    fc.constant(undefined),
    anyValue,
    fc.dictionary(hostileString, anyValue, { maxKeys: 5 }),
  ),
  extra: fc.option(anyValue, { nil: undefined }),
}, { requiredKeys: [] });

const bodyText = fc.oneof(
  alarmish.map((b) => JSON.stringify(b)),
  fc.array(alarmish, { maxLength: 3 }).map((alarms) => JSON.stringify({ alarms })),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  hostileString,
  fc.constantFrom(
    "{",
    "[]",
    "null",
    '{"alarms":',
    '{"userId":"fuzz","type":"t","data":{"a":1}}}',
    "",
  ),
);

const PATHS = [
  "/api/v1/alarms",
  "/api/v1/alarms/batch",
  "/api/v1/users/alarms",
  "/api/v1/users/alarms/unread-count",
  "/api/v1/users/alarms/read-all",
  "/api/v1/users/alarm/subscribe",
  "/healthz",
  "/openapi.json",
];

const request = fc.record({
  method: fc.constantFrom("GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS"),
  path: fc.oneof(
    fc.constantFrom(...PATHS),
    hostileString.map((id) => `/api/v1/users/alarms/${encodeURIComponent(id)}/read`),
    hostileString.map((id) => `/api/v1/users/alarms/${encodeURIComponent(id)}`),
    fc.constantFrom(
      "/api/v1/users/alarms/..%2f..%2fhealthz",
      "/api//v1/alarms",
      "/%00",
      "/api/v1/alarms/",
    ),
  ),
  query: fc.oneof(
    fc.constant(""),
    fc.constantFrom(
      "?limit=0",
      "?limit=abc",
      "?limit=1e9",
      "?cursor=zzz",
      "?unread=maybe",
      "?limit=-1&cursor=",
    ),
    hostileString.map((s) =>
      `?cursor=${encodeURIComponent(s)}&lastEventId=${encodeURIComponent(s)}`
    ),
  ),
  contentType: fc.constantFrom(
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "multipart/form-data; boundary=x",
    "application/x-www-form-urlencoded",
    "",
  ),
  auth: fc.constantFrom("publisher", "user", "garbage", "none", "basic"),
  idempotencyKey: fc.option(headerValue, { nil: undefined }),
  lastEventId: fc.option(headerValue, { nil: undefined }),
  body: bodyText,
  framing: fc.constantFrom("length", "length", "chunked", "cut"),
});

/** Creates that are valid or nearly so, so that "exactly the accepted ones are stored" bites. */
const plausibleCreate = fc.record({
  method: fc.constant("POST"),
  path: fc.constantFrom("/api/v1/alarms", "/api/v1/alarms/batch"),
  query: fc.constant(""),
  contentType: fc.constantFrom("application/json", "text/plain"),
  auth: fc.constantFrom("publisher", "publisher", "user"),
  idempotencyKey: fc.option(fc.constantFrom("k1", "k2", "k3"), { nil: undefined }),
  lastEventId: fc.constant(undefined),
  body: fc.record({
    userId: fc.constantFrom("fuzz", "fuzz", ""),
    type: fc.constantFrom("comment", "like", "bad type"),
    data: fc.option(
      fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }),
      {
        nil: undefined,
      },
    ),
  }).chain((alarm) =>
    fc.constantFrom(JSON.stringify(alarm), JSON.stringify({ alarms: [alarm, alarm] }))
  ),
  framing: fc.constantFrom("length", "chunked", "cut"),
});

/**
 * A client that announces the whole body, sends half of it and hangs up: no answer is possible,
 * and the server must neither store anything nor stop serving.
 */
async function sendCut(
  url: string,
  method: string,
  target: string,
  headers: Headers,
  body: string,
) {
  const { hostname, port } = new URL(url);
  const bytes = new TextEncoder().encode(body);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  let head = `${method} ${target} HTTP/1.1\r\nHost: ${hostname}\r\n`;
  for (const [name, value] of headers) head += `${name}: ${value}\r\n`;
  head += `Content-Length: ${bytes.length + 10}\r\n\r\n`;
  try {
    await conn.write(
      new Uint8Array([...new TextEncoder().encode(head), ...bytes.subarray(0, bytes.length >> 1)]),
    );
  } finally {
    conn.close();
  }
}

Deno.test(`${RUNS} malformed requests: never a 5xx, always the JSON error, nothing stored`, async () => {
  await using server = await startTestServer({ maxConnectionsPerUser: 1000 });
  const tokens = {
    publisher: `Bearer ${await server.publisherToken()}`,
    user: `Bearer ${await server.userToken("fuzz")}`,
    garbage: "Bearer not.a.jwt",
    basic: "Basic Zm9vOmJhcg==",
    none: undefined,
  };
  /** Distinct ids answered for the fuzz user: an idempotent retry answers the same alarm again. */
  const acceptedForFuzz = new Set<string>();
  let tried = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.oneof({ arbitrary: request, weight: 3 }, { arbitrary: plausibleCreate, weight: 1 }),
      async (r) => {
        const headers = new Headers();
        try {
          if (tokens[r.auth]) headers.set("authorization", tokens[r.auth]!);
          if (r.contentType) headers.set("content-type", r.contentType);
          if (r.idempotencyKey !== undefined) headers.set("idempotency-key", r.idempotencyKey);
          if (r.lastEventId !== undefined) headers.set("last-event-id", r.lastEventId);
        } catch {
          return; // a header value fetch itself refuses (CR, LF, NUL) never reaches a server
        }
        const hasBody = !["GET", "HEAD", "OPTIONS"].includes(r.method);
        if (hasBody && r.framing === "cut") {
          await sendCut(server.url, r.method, r.path + r.query, headers, r.body);
          tried++;
          return;
        }
        const controller = new AbortController();
        const encoded = new TextEncoder().encode(r.body);
        const res = await fetch(server.url + r.path + r.query, {
          method: r.method,
          headers,
          // A stream body goes out chunked, as Java, Go and Node clients send streamed bodies.
          body: !hasBody
            ? undefined
            : r.framing === "chunked"
            ? ReadableStream.from([encoded])
            : encoded,
          signal: controller.signal,
        });
        tried++;
        assert.ok(res.status < 500, `${r.method} ${r.path}${r.query} → ${res.status}`);
        const type = res.headers.get("content-type") ?? "";
        if (type.startsWith("text/event-stream")) {
          controller.abort();
          await res.body?.cancel().catch(() => {});
          return;
        }
        const text = await res.text();
        if (res.status >= 400) {
          assert.match(type, /^application\/json/, `${res.status} without JSON: ${text}`);
          const body = JSON.parse(text);
          assert.equal(typeof body.error.code, "string");
          assert.equal(typeof body.error.message, "string");
          assert.ok(!/\bat .*\.ts:\d+/.test(text), `a stack trace leaked: ${text}`);
        }
        if ((res.status === 201 || res.status === 200) && r.method === "POST") {
          const body = JSON.parse(text);
          for (const alarm of Array.isArray(body?.items) ? body.items : [body]) {
            if (alarm?.userId === "fuzz") acceptedForFuzz.add(alarm.id);
          }
        }
      },
    ),
    { numRuns: RUNS, seed: Number(Deno.env.get("FUZZ_SEED") ?? Date.now() % 2 ** 31) },
  );
  // Exactly the accepted alarms were stored (no generated request can name a real id to delete).
  let stored = 0;
  let cursor = "";
  const fuzzToken = await server.userToken("fuzz");
  do {
    const query = cursor ? `&cursor=${cursor}` : "";
    const page = await server.fetch(`/api/v1/users/alarms?limit=100${query}`, { token: fuzzToken });
    assert.equal(page.status, 200);
    const body = await page.json();
    stored += body.items.length;
    cursor = body.nextCursor ?? "";
  } while (cursor);
  assert.equal(stored, acceptedForFuzz.size, `${stored} stored, ${acceptedForFuzz.size} accepted`);
  const health = await server.fetch("/healthz");
  assert.equal(health.status, 200);
  await health.body?.cancel();
  console.log(`${tried} requests sent, ${acceptedForFuzz.size} alarms accepted for the fuzz user`);
});
