/**
 * Requests at the edges of HTTP, on both transports: streamed (chunked) and empty bodies,
 * absolute-form targets, bodies far over the limit, encoded bodies, heads the parser refuses,
 * HEAD on the stream, caching, over-long Last-Event-IDs, look-alike user ids.
 */
import assert from "node:assert/strict";
import { chunked, rawRequest } from "../helpers/raw_http.ts";
import { openSse } from "../helpers/sse_client.ts";
import type { TestServer } from "../helpers/test_server.ts";
import { startTestServer } from "../helpers/test_server.ts";
import { createOk, expectError, expectJson, postBody, unreadCount } from "../helpers/api_client.ts";

const SUBSCRIBE = "/api/v1/users/alarm/subscribe";
const ALARM = JSON.stringify({ userId: "kim", type: "edge" });
const BATCH = JSON.stringify({
  alarms: [{ userId: "kim", type: "a" }, { userId: "kim", type: "b" }],
});

function head(server: TestServer, method: string, target: string, token: string, extra = "") {
  const { host } = new URL(server.url);
  return `${method} ${target} HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${token}\r\n` +
    `Content-Type: application/json\r\n${extra}`;
}

for (const transport of ["node", "deno"] as const) {
  Deno.test(`[${transport}] every POST endpoint reads chunked bodies and absolute-form targets like any other`, async () => {
    await using server = await startTestServer({ transport });
    const publisher = await server.publisherToken();
    const kim = await server.userToken("kim");
    const cases: [string, string, number][] = [
      ["/api/v1/alarms", ALARM, 201],
      ["/api/v1/alarms/batch", BATCH, 201],
    ];
    for (const [path, body, status] of cases) {
      const viaChunks = await rawRequest(server.url, [
        head(server, "POST", path, publisher, "Transfer-Encoding: chunked\r\n\r\n"),
        chunked(body),
      ]);
      assert.equal(viaChunks.status, status, `chunked ${path}: ${viaChunks.body}`);
      const absolute = await rawRequest(
        server.url,
        head(
          server,
          "POST",
          server.url + path,
          publisher,
          `Content-Length: ${body.length}\r\n\r\n`,
        ) +
          body,
      );
      assert.equal(absolute.status, status, `absolute-form ${path}: ${absolute.body}`);
    }
    assert.equal(await unreadCount(server, kim), 6);
    const page = await expectJson<{ items: { id: string }[] }>(
      await server.fetch("/api/v1/users/alarms", { token: kim }),
      200,
    );
    for (
      const path of [
        "/api/v1/users/alarms/read-all",
        `/api/v1/users/alarms/${page.items[0].id}/read`,
      ]
    ) {
      const viaChunks = await rawRequest(server.url, [
        head(server, "POST", path, kim, "Transfer-Encoding: chunked\r\n\r\n"),
        chunked("{}"),
      ]);
      assert.equal(viaChunks.status, 204, `chunked ${path}: ${viaChunks.body}`);
      const absolute = await rawRequest(
        server.url,
        head(server, "POST", server.url + path, kim, "Content-Length: 0\r\n\r\n"),
      );
      assert.equal(absolute.status, 204, `absolute-form ${path}: ${absolute.body}`);
    }
    assert.equal(await unreadCount(server, kim), 0);
  });

  Deno.test(`[${transport}] a POST without a body is 400 invalid_request in JSON, never 500`, async () => {
    await using server = await startTestServer({ transport });
    const publisher = await server.publisherToken();
    for (const path of ["/api/v1/alarms", "/api/v1/alarms/batch"]) {
      for (
        const framing of [
          "Content-Length: 0\r\n\r\n",
          "\r\n",
          "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ]
      ) {
        const res = await rawRequest(server.url, head(server, "POST", path, publisher, framing));
        assert.equal(res.status, 400, `${path} ${JSON.stringify(framing)}: ${res.body}`);
        assert.match(res.headers["content-type"], /^application\/json/);
        assert.equal(JSON.parse(res.body).error.code, "invalid_request");
      }
    }
  });

  Deno.test(`[${transport}] bodies of 64 KiB, 2 MiB and 12 MiB read as 413 payload_too_large to fetch`, async () => {
    await using server = await startTestServer({ transport });
    const publisher = await server.publisherToken();
    const big = (bytes: number) =>
      JSON.stringify({ userId: "kim", type: "big", data: { pad: "x".repeat(bytes) } });
    for (
      const [path, bytes] of [
        ["/api/v1/alarms", 64 * 1024],
        ["/api/v1/alarms", 2 * 1024 * 1024],
        ["/api/v1/alarms", 12 * 1024 * 1024],
        ["/api/v1/alarms/batch", 12 * 1024 * 1024],
      ] as const
    ) {
      const res = await server.fetch(path, {
        method: "POST",
        token: publisher,
        headers: { "content-type": "application/json" },
        body: big(bytes),
      });
      await expectError(res, 413, "payload_too_large");
    }
    // Streamed without a length, the limit still holds.
    const stream = ReadableStream.from([big(100 * 1024)].map((s) => new TextEncoder().encode(s)));
    const res = await postBody(server, "/api/v1/alarms", publisher, stream);
    await expectError(res, 413, "payload_too_large");
    assert.equal(await unreadCount(server, await server.userToken("kim")), 0);
  });

  Deno.test(`[${transport}] an encoded body is 415 unsupported_media_type, identity is served`, async () => {
    await using server = await startTestServer({ transport });
    const publisher = await server.publisherToken();
    const gzipped = await new Response(
      new Blob([ALARM]).stream().pipeThrough(new CompressionStream("gzip")),
    ).arrayBuffer();
    const res = await server.fetch("/api/v1/alarms", {
      method: "POST",
      token: publisher,
      headers: { "content-type": "application/json", "content-encoding": "gzip" },
      body: gzipped,
    });
    await expectError(res, 415, "unsupported_media_type");
    const plain = await server.fetch("/api/v1/alarms", {
      method: "POST",
      token: publisher,
      headers: { "content-type": "application/json", "content-encoding": "identity" },
      body: ALARM,
    });
    assert.equal(plain.status, 201);
    await plain.body?.cancel();
  });

  Deno.test(`[${transport}] HEAD on the stream answers its headers without holding a place`, async () => {
    await using server = await startTestServer({ transport, maxConnectionsPerUser: 1 });
    const kim = await server.userToken("kim");
    for (let i = 0; i < 3; i++) {
      const res = await server.fetch(SUBSCRIBE, { method: "HEAD", token: kim });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), "text/event-stream");
      assert.equal(await res.text(), "");
    }
    assert.equal(server.server.connectionCount("kim"), 0);
    await using stream = await openSse(server.url + SUBSCRIBE, { token: kim });
    assert.equal(stream.status, 200, "the user's one place is still free");
    const anonymous = await server.fetch(SUBSCRIBE, { method: "HEAD" });
    assert.equal(anonymous.status, 401);
  });

  Deno.test(`[${transport}] per-user answers carry Cache-Control: no-store`, async () => {
    await using server = await startTestServer({ transport });
    const kim = await server.userToken("kim");
    const created = await server.fetch("/api/v1/alarms", {
      method: "POST",
      token: await server.publisherToken(),
      json: { userId: "kim", type: "x" },
    });
    assert.equal(created.headers.get("cache-control"), "no-store");
    await created.body?.cancel();
    for (const path of ["/api/v1/users/alarms", "/api/v1/users/alarms/unread-count"]) {
      const res = await server.fetch(path, { token: kim });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("cache-control"), "no-store", path);
      await res.body?.cancel();
    }
    const refused = await server.fetch("/api/v1/users/alarms");
    assert.equal(refused.headers.get("cache-control"), "no-store");
    await refused.body?.cancel();
  });

  Deno.test(`[${transport}] a Last-Event-ID over 256 characters is a reset, in the header or the query`, async () => {
    await using server = await startTestServer({ transport });
    const kim = await server.userToken("kim");
    await createOk(server, await server.publisherToken(), { userId: "kim", type: "x" });
    const long = "0".repeat(257);
    await using viaHeader = await openSse(server.url + SUBSCRIBE, {
      token: kim,
      lastEventId: long,
    });
    assert.equal(viaHeader.status, 200);
    const connect = await viaHeader.next((e) => e.event === "connect");
    assert.equal(JSON.parse(connect.data).replay, "reset");
    await using viaQuery = await openSse(`${server.url}${SUBSCRIBE}?lastEventId=${long}`, {
      token: kim,
    });
    assert.equal(viaQuery.status, 200);
    assert.equal(
      JSON.parse((await viaQuery.next((e) => e.event === "connect")).data).replay,
      "reset",
    );
  });

  Deno.test(`[${transport}] user ids that differ only in ill-formed Unicode never share an inbox`, async () => {
    await using server = await startTestServer({ transport });
    const publisher = await server.publisherToken();
    for (const sub of ["\ud800", "\ud801", "a\udc00b"]) {
      const token = await server.userToken(sub, 60_000);
      await expectError(await server.fetch("/api/v1/users/alarms", { token }), 401, "unauthorized");
      await expectError(
        await server.fetch("/api/v1/alarms", {
          method: "POST",
          token: publisher,
          json: { userId: sub, type: "x" },
        }),
        400,
        "invalid_request",
      );
      await expectError(
        await server.fetch("/api/v1/alarms/batch", {
          method: "POST",
          token: publisher,
          json: { alarms: [{ userId: "ok", type: "x" }, { userId: sub, type: "x" }] },
        }),
        400,
        "invalid_request",
      );
    }
    // U+FFFD itself is a well-formed id with an inbox of its own.
    await createOk(server, publisher, { userId: "\ufffd", type: "x" });
    assert.equal(await unreadCount(server, await server.userToken("\ufffd")), 1);
    assert.equal(await unreadCount(server, await server.userToken("ok")), 0);
  });
}

Deno.test("[node] heads the parser refuses are answered in JSON", async () => {
  await using server = await startTestServer();
  const huge = await rawRequest(
    server.url,
    `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ${"a".repeat(64 * 1024)}\r\n\r\n`,
  );
  assert.equal(huge.status, 431);
  assert.match(huge.headers["content-type"], /^application\/json/);
  assert.equal(JSON.parse(huge.body).error.code, "invalid_request");
  const malformed = await rawRequest(server.url, "GET /healthz HTTP/9.x\r\n\r\n");
  assert.equal(malformed.status, 400);
  assert.equal(JSON.parse(malformed.body).error.code, "invalid_request");
});
