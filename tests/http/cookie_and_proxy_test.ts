/**
 * The cookie-origin rule (a cookie token is honoured only for alarmd's own pages or listed
 * origins) and proxy trust (only listed proxies are believed about the client), on both
 * transports.
 */
import assert from "node:assert/strict";
import { openSse } from "../helpers/sse_client.ts";
import type { TestServer } from "../helpers/test_server.ts";
import { startTestServer } from "../helpers/test_server.ts";
import { createOk, expectError, expectNoContent, unreadCount } from "../helpers/api_client.ts";

const SUBSCRIBE = "/api/v1/users/alarm/subscribe";

/** The headers a browser sends with a cross-site form post or fetch, and the ones it omits. */
const FORGED: Record<string, Record<string, string>> = {
  "another origin": { origin: "https://evil.example", "sec-fetch-site": "cross-site" },
  "Origin: null": { origin: "null" },
  "Sec-Fetch-Site: cross-site": { "sec-fetch-site": "cross-site" },
  "Sec-Fetch-Site: same-site": { "sec-fetch-site": "same-site", origin: "https://sib.example" },
  "neither header": {},
};

async function cookieRequests(server: TestServer, token: string, headers: Record<string, string>) {
  const cookie = { cookie: `alarmd_token=${token}`, ...headers };
  const alarm = await createOk(server, await server.publisherToken(), { userId: "kim", type: "x" });
  return [
    await server.fetch("/api/v1/users/alarms/read-all", { method: "POST", headers: cookie }),
    await server.fetch(`/api/v1/users/alarms/${alarm.id}/read`, {
      method: "POST",
      headers: cookie,
    }),
    await server.fetch(`/api/v1/users/alarms/${alarm.id}`, { method: "DELETE", headers: cookie }),
    await server.fetch("/api/v1/users/alarms", { headers: cookie }),
    await server.fetch(SUBSCRIBE, { headers: cookie }),
  ];
}

for (const transport of ["node", "deno"] as const) {
  Deno.test(`[${transport}] cookie requests forged from other sites are 403 on every method and the stream`, async () => {
    await using server = await startTestServer({
      transport,
      corsOrigins: "https://app.example.com",
    });
    const kim = await server.userToken("kim");
    for (const [name, headers] of Object.entries(FORGED)) {
      for (const res of await cookieRequests(server, kim, headers)) {
        await expectError(res, 403, "forbidden").catch((e) => {
          throw new Error(`${name}: ${e.message}`);
        });
      }
    }
    const forgeries = Object.keys(FORGED).length;
    assert.equal(await unreadCount(server, kim), forgeries, "nothing was read or deleted");
    assert.equal(server.server.connectionCount("kim"), 0);
  });

  Deno.test(`[${transport}] cookie requests from alarmd's own pages and listed origins are served`, async () => {
    await using server = await startTestServer({
      transport,
      corsOrigins: "https://app.example.com",
    });
    const kim = await server.userToken("kim");
    for (
      const headers of <Record<string, string>[]> [
        { "sec-fetch-site": "same-origin" },
        { origin: server.url },
        { origin: "https://app.example.com", "sec-fetch-site": "cross-site" },
      ]
    ) {
      const [readAll, read, remove, list, stream] = await cookieRequests(server, kim, headers);
      await expectNoContent(readAll);
      await expectNoContent(read);
      await expectNoContent(remove);
      assert.equal(list.status, 200);
      await list.body?.cancel();
      assert.equal(stream.status, 200);
      assert.equal(stream.headers.get("content-type"), "text/event-stream");
      await stream.body?.cancel();
    }
  });

  Deno.test(`[${transport}] CORS * never admits a cookie; header and query tokens ignore Origin`, async () => {
    await using server = await startTestServer({ transport, corsOrigins: "*" });
    const kim = await server.userToken("kim");
    const evil = { origin: "https://evil.example", "sec-fetch-site": "cross-site" };
    await expectError(
      await server.fetch("/api/v1/users/alarms", {
        headers: { cookie: `alarmd_token=${kim}`, ...evil },
      }),
      403,
      "forbidden",
    );
    const viaHeader = await server.fetch("/api/v1/users/alarms", { token: kim, headers: evil });
    assert.equal(viaHeader.status, 200);
    await viaHeader.body?.cancel();
    const viaQuery = await server.fetch(`/api/v1/users/alarms?access_token=${kim}`, {
      headers: { ...evil, cookie: `alarmd_token=${kim}` },
    });
    assert.equal(viaQuery.status, 200, "an explicit token wins over the cookie");
    await viaQuery.body?.cancel();
  });

  Deno.test(`[${transport}] behind a trusted proxy, per-address limits and the own origin follow X-Forwarded-*`, async () => {
    await using server = await startTestServer({
      transport,
      trustedProxies: "127.0.0.1, ::1",
      rateConnectPerIpPerSecond: 1,
    });
    // Burst 5 per address: the sixth attempt from one client is refused, another client is not.
    const attempt = async (client: string) => {
      const res = await fetch(server.url + SUBSCRIBE, {
        headers: { "x-forwarded-for": `198.51.100.7, ${client}` },
      });
      await res.body?.cancel();
      return res.status;
    };
    const first = [];
    for (let i = 0; i < 6; i++) first.push(await attempt("203.0.113.1"));
    assert.deepEqual(first, [401, 401, 401, 401, 401, 429]);
    assert.equal(await attempt("203.0.113.2"), 401, "another client has its own budget");
    const logged = server.logs.find((l) => l.msg === "request" && l.client === "203.0.113.2");
    assert.ok(logged, "the access log names the client, not the proxy");

    const kim = await server.userToken("kim");
    const res = await server.fetch("/api/v1/users/alarms", {
      headers: {
        cookie: `alarmd_token=${kim}`,
        origin: "https://alarms.example.com",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "alarms.example.com",
      },
    });
    assert.equal(res.status, 200, "the origin the proxy forwarded for is alarmd's own");
    await res.body?.cancel();
  });

  Deno.test(`[${transport}] forwarded headers from an untrusted peer are ignored`, async () => {
    await using server = await startTestServer({ transport, rateConnectPerIpPerSecond: 1 });
    const statuses = [];
    for (let i = 0; i < 6; i++) {
      const res = await fetch(server.url + SUBSCRIBE, {
        headers: { "x-forwarded-for": `203.0.113.${i}` },
      });
      await res.body?.cancel();
      statuses.push(res.status);
    }
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429], "one peer, one budget");
    const kim = await server.userToken("kim");
    await expectError(
      await server.fetch("/api/v1/users/alarms", {
        headers: {
          cookie: `alarmd_token=${kim}`,
          origin: "https://alarms.example.com",
          "x-forwarded-proto": "https",
          "x-forwarded-host": "alarms.example.com",
        },
      }),
      403,
      "forbidden",
    );
  });

  Deno.test(`[${transport}] ALARMD_PUBLIC_URL defines the own origin for cookie requests`, async () => {
    await using server = await startTestServer({
      transport,
      publicUrl: "https://alarms.example.com/inbox",
    });
    const kim = await server.userToken("kim");
    const cookie = `alarmd_token=${kim}`;
    const ok = await server.fetch("/api/v1/users/alarms", {
      headers: { cookie, origin: "https://alarms.example.com" },
    });
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
    await expectError(
      await server.fetch("/api/v1/users/alarms", { headers: { cookie, origin: server.url } }),
      403,
      "forbidden",
    );
  });
}

Deno.test("a stream opened with a same-origin cookie receives alarms", async () => {
  await using server = await startTestServer();
  const kim = await server.userToken("kim");
  await using stream = await openSse(server.url + SUBSCRIBE, {
    headers: { cookie: `alarmd_token=${kim}`, "sec-fetch-site": "same-origin" },
  });
  assert.equal(stream.status, 200);
  const alarm = await createOk(server, await server.publisherToken(), { userId: "kim", type: "x" });
  assert.equal((await stream.next((e) => e.event === "alarm")).id, alarm.id);
});
