/**
 * End to end, in a real Chromium: tokens that expire under an open stream. alarmd ends a stream
 * when its token expires; web/alarmd-client.js with `getToken` gets a new token and reconnects
 * at once with the last alarm id, so every alarm arrives once, in order. A 401 on connect also
 * gets a new token; while getToken() fails the client says so and tries again; the inbox asks
 * for a new token and, given one of the same user, goes on in every tab without reloading.
 *
 * Tokens here live 2–3 s (`exp` has whole seconds). The page's getToken() calls
 * `window.nextToken()`, which Playwright runs in this test, minting with TEST_SECRET.
 *
 * Needs Chromium (ALARMD_CHROMIUM, default /usr/bin/chromium; never downloaded). Without it the
 * tests are skipped with a message, except when CI=true: then they fail.
 */
import assert from "node:assert/strict";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { launchChromium, skipWithoutChromium } from "../helpers/chromium.ts";
import { mintToken } from "../../src/cli/token.ts";
import type { Alarm } from "../helpers/live_fixtures.ts";
import type { TestServer } from "../helpers/test_server.ts";
import { startTestServer, TEST_SECRET, userToken } from "../helpers/test_server.ts";
import { delay, waitUntil } from "../helpers/wait.ts";

const TOKEN_TTL_MS = 3_000;
const SUBSCRIBE = /\/api\/v1\/users\/alarm\/subscribe/;
const ignore = skipWithoutChromium("tests/e2e/token_refresh_test.ts");
const launch = () => launchChromium();

async function publish(server: TestServer, userId: string, text: string): Promise<Alarm> {
  const res = await server.fetch("/api/v1/alarms", {
    method: "POST",
    token: await server.publisherToken(),
    json: { userId, type: "comment", data: { text } },
  });
  assert.equal(res.status, 201);
  return await res.json();
}

/** The user's streams that the server ended because their token expired. */
const expiries = (server: TestServer, userId: string) =>
  server.logs.filter((l) =>
    l.msg === "stream closed" && l.reason === "token_expired" && l.userId === userId
  ).length;

interface PageLog {
  alarms: string[];
  states: string[];
  tokenErrors: { message: string; retryInMs: number }[];
}

/**
 * A page of the server's origin with `window.nextToken()` bound to `getToken`, and the stream
 * requests (and the status each got) recorded.
 */
async function openPage(
  context: BrowserContext,
  server: TestServer,
  getToken: () => Promise<string>,
) {
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.exposeFunction("nextToken", getToken);
  const streams: { url: URL; status?: number }[] = [];
  page.on("request", (r) => {
    if (SUBSCRIBE.test(r.url()) && r.url().includes("access_token")) {
      streams.push({ url: new URL(r.url()) });
    }
  });
  page.on("response", (r) => {
    const stream = streams.find((s) => s.url.href === r.url() && s.status === undefined);
    if (stream) stream.status = r.status();
  });
  // Any page of the server's origin will do; this one has no inbox on it.
  await page.goto(`${server.url}/favicon.svg`);
  return { page, errors, streams };
}

/** Starts alarmd-client.js in the page with `getToken: () => window.nextToken()`. */
async function startClient(page: Page, options = "{ getToken: () => globalThis.nextToken() }") {
  await page.evaluate(`(async () => {
    const { AlarmdClient } = await import("/alarmd-client.js");
    const log = { alarms: [], states: [], tokenErrors: [] };
    const client = new AlarmdClient(${options});
    globalThis.client = client;
    globalThis.log = log;
    client.addEventListener("alarm", (e) => log.alarms.push(e.detail.id));
    client.addEventListener("state", () => {
      if (log.states.at(-1) !== client.state) log.states.push(client.state);
    });
    client.addEventListener("tokenerror", (e) => log.tokenErrors.push({
      message: String(e.detail.error?.message ?? e.detail.error),
      retryInMs: e.detail.retryInMs,
    }));
    client.start();
  })()`);
}

const logOf = (page: Page) => page.evaluate<PageLog>("globalThis.log");
const stateOf = (page: Page) => page.evaluate<string>("globalThis.client.state");

async function connected(page: Page, what: string, timeoutMs = 5_000) {
  await waitUntil(async () => await stateOf(page) === "connected", what, timeoutMs);
}

/**
 * Alarms published across three expiries of kim's tokens all arrive once, in order. The default
 * retry (3 s) outlives the tokens: a client that waited for the browser's own reconnect would
 * come back with an expired token and get 401, so none may be refused.
 */
async function acrossThreeExpiries(browser: Browser, server: TestServer) {
  const minted: string[] = [];
  const { page, errors, streams } = await openPage(await browser.newContext(), server, async () => {
    minted.push(await userToken("kim", TOKEN_TTL_MS));
    return minted.at(-1)!;
  });
  // Every reconnect is held until an alarm exists that only a replay after Last-Event-ID can
  // deliver.
  const published: Alarm[] = [];
  let attempts = 0;
  await page.route(SUBSCRIBE, async (route) => {
    if (attempts++ > 0) published.push(await publish(server, "kim", `reconnect ${attempts}`));
    await route.continue();
  });
  await startClient(page);
  await connected(page, "kim's client connects");

  // Alarms keep coming until the server has ended three of kim's streams for their tokens.
  while (expiries(server, "kim") < 3) {
    published.push(await publish(server, "kim", `live ${published.length}`));
    await delay(150);
  }
  await waitUntil(() => streams.length >= 4, "kim's client reconnected a third time");
  await connected(page, "kim's fourth stream is open");
  await page.unroute(SUBSCRIBE);
  published.push(await publish(server, "kim", "after the third expiry"));

  const expected = published.map((a) => a.id).sort();
  await waitUntil(
    async () => (await logOf(page)).alarms.length >= expected.length,
    "every alarm reached kim",
    10_000,
  ).catch(async (error) => {
    const { alarms, states } = await logOf(page);
    const missing = expected.filter((id) => !alarms.includes(id));
    const resumes = streams.map((s) => `${s.status} ${s.url.searchParams.get("lastEventId")}`);
    throw new Error(`${error.message}: missing ${missing}; streams ${resumes}; states ${states}`);
  });
  await delay(300); // and nothing more comes
  await waitUntil(() => server.server.connectionCount("kim") === 1, "one stream for kim");
  await page.evaluate("globalThis.client.stop()"); // before its token expires again
  const log = await logOf(page);
  assert.deepEqual(log.alarms, expected, "every alarm once, in id order");
  assert.ok(attempts >= 4 && published.length > 10, `${published.length} alarms`);

  // Each stream had a token of its own, and each reconnect asked for what came after the last
  // alarm the client had; none was refused, so none waited for the browser's retry.
  assert.ok(streams.every((s) => s.status === 200), JSON.stringify(streams));
  const tokens = streams.map((s) => s.url.searchParams.get("access_token"));
  assert.equal(new Set(tokens).size, streams.length);
  assert.ok(tokens.every((t) => minted.includes(t!)));
  for (const stream of streams.slice(1)) {
    assert.ok(stream.url.searchParams.get("lastEventId"), `${stream.url.search} resumes`);
  }
  assert.ok(!log.states.some((s) => s === "unauthorized" || s === "token_unavailable"));
  assert.deepEqual(log.tokenErrors, []);
  assert.deepEqual(errors, []);
}

/** lee's getToken() fails twice after the first token: "token_unavailable", retried, no loss. */
async function whileNoTokenCanBeHad(browser: Browser, server: TestServer) {
  let calls = 0;
  const { page, errors, streams } = await openPage(await browser.newContext(), server, async () => {
    calls++;
    if (calls === 2 || calls === 3) throw new Error("the identity provider is down");
    return await userToken("lee", TOKEN_TTL_MS);
  });
  await startClient(page);
  await connected(page, "lee's client connects");
  const before = await publish(server, "lee", "before the expiry");
  await waitUntil(async () => (await logOf(page)).alarms.length === 1, "lee's first alarm");

  await waitUntil(async () => await stateOf(page) === "token_unavailable", "token_unavailable");
  const during = await publish(server, "lee", "while no token could be had");
  await connected(page, "lee's client connects once getToken() works again", 8_000);
  await waitUntil(async () => (await logOf(page)).alarms.length === 2, "lee's missed alarm");

  await page.evaluate("globalThis.client.stop()");
  const log = await logOf(page);
  assert.deepEqual(log.alarms, [before.id, during.id]);
  assert.deepEqual(log.tokenErrors, [
    { message: "the identity provider is down", retryInMs: 1_000 },
    { message: "the identity provider is down", retryInMs: 2_000 },
  ]);
  assert.ok(log.states.includes("token_unavailable"));
  assert.equal(calls, 4);
  assert.equal(streams.length, 2);
  assert.equal(streams[1].url.searchParams.get("lastEventId"), before.id);
  assert.deepEqual(errors, []);
}

/** max's first token has already expired: the server answers 401, the client asks again. */
async function afterA401(browser: Browser, server: TestServer) {
  let calls = 0;
  const { page, errors, streams } = await openPage(await browser.newContext(), server, () => {
    calls++;
    return userToken("max", calls === 1 ? -60_000 : 60_000);
  });
  await startClient(page);
  await connected(page, "max's client connects with the second token");
  assert.deepEqual(streams.map((s) => s.status), [401, 200]);
  assert.equal(calls, 2);
  const alarm = await publish(server, "max", "after the 401");
  await waitUntil(async () => (await logOf(page)).alarms.includes(alarm.id), "it reaches max");
  assert.ok(!(await logOf(page)).states.includes("unauthorized"));
  assert.deepEqual(errors, []);
}

/** noa's getToken() only gives tokens the server refuses: "unauthorized", asked less and less. */
async function refusedAgainAndAgain(browser: Browser, server: TestServer) {
  let calls = 0;
  const { page, streams } = await openPage(await browser.newContext(), server, () => {
    calls++;
    return mintToken({ secret: `${TEST_SECRET}-not`, sub: "noa", publish: false, ttlMs: 60_000 });
  });
  await startClient(page);
  await waitUntil(async () => await stateOf(page) === "unauthorized", "noa is unauthorized");
  await delay(1_500);
  // At once after the first 401, then after 1 s, 2 s, 4 s…: three calls in these 1.5 s.
  assert.ok(calls <= 3, `getToken() was asked ${calls} times: it backs off`);
  assert.ok(streams.length <= calls);
  assert.equal(server.server.connectionCount("noa"), 0);
}

/** Without getToken, as before: an expired token is "unauthorized", and the client stops. */
async function withAStaticToken(browser: Browser, server: TestServer) {
  const { page, streams } = await openPage(await browser.newContext(), server, () => {
    throw new Error("not called");
  });
  const expired = await userToken("ola", -60_000);
  await startClient(page, `{ token: ${JSON.stringify(expired)} }`);
  await waitUntil(async () => await stateOf(page) === "unauthorized", "ola is unauthorized");
  await delay(500);
  assert.equal(streams.length, 1, "no retry with a token that cannot change");
}

Deno.test({
  name:
    "alarmd-client.js with getToken: across three token expiries, a 401, and getToken() failing, every alarm arrives once, in order",
  ignore,
  async fn() {
    await using server = await startTestServer();
    await using browser = await launch();
    // Side by side, one user each, to keep the test short.
    await Promise.all([
      acrossThreeExpiries(browser, server),
      whileNoTokenCanBeHad(browser, server),
      afterA401(browser, server),
      refusedAgainAndAgain(browser, server),
      withAStaticToken(browser, server),
    ]);
  },
});

Deno.test({
  name:
    "inbox: an expired session asks for a token; one pasted in any tab resumes every tab without a reload",
  ignore,
  async fn() {
    await using server = await startTestServer({ retryMs: 300 });
    await using browser = await launch();
    const context = await browser.newContext();
    const first = await publish(server, "kim", "before the session expired");
    const tabs: Page[] = [];
    const errors: string[] = [];
    let lists = 0;
    for (let i = 0; i < 2; i++) {
      const page = await context.newPage();
      page.on("pageerror", (e) => errors.push(e.message));
      page.on("request", (r) => r.url().includes("/api/v1/users/alarms?") && lists++);
      tabs.push(page);
    }
    // Both tabs open (and list their alarms) well within the token's 3–4 s.
    const shortLived = await userToken("kim", 4_000);
    await Promise.all(tabs.map((page) => page.goto(`${server.url}/?token=${shortLived}`)));
    for (const page of tabs) {
      await page.locator(`li[data-id="${first.id}"]`).waitFor({ timeout: 2_000 });
    }
    await waitUntil(() => server.server.connectionCount("kim") === 1, "one shared stream");

    for (const page of tabs) {
      await page.locator('#status[data-state="token_unavailable"]').waitFor({ timeout: 5_000 });
      assert.equal(await page.locator("#status-text").textContent(), "session expired");
      await page.locator("#token-form").waitFor({ state: "visible", timeout: 1_000 });
      assert.match(String(await page.getByRole("alert").textContent()), /session has expired/);
    }
    assert.equal(server.server.connectionCount("kim"), 0);
    const missed = await publish(server, "kim", "while the session was expired");
    const listsBefore = lists;

    // Which tab holds the stream does not matter: paste in the one that does not.
    const leaderIndex = await tabs[0].evaluate("globalThis.alarmdInbox.client.isLeader") ? 0 : 1;
    const other = tabs[1 - leaderIndex];
    await other.locator("#token-input").fill(await userToken("kim", 60_000));
    await other.getByRole("button", { name: "Open" }).click();
    for (const page of tabs) {
      await page.locator('#status[data-state="connected"]').waitFor({ timeout: 5_000 });
      await page.locator(`li[data-id="${missed.id}"]`).waitFor({ timeout: 2_000 });
      assert.ok(await page.locator("#token-form").isHidden());
      assert.ok(await page.getByRole("alert").isHidden());
      assert.equal(await page.locator("#list > li").count(), 2);
    }
    assert.equal(lists, listsBefore, "the missed alarm came by replay, not by reloading the list");
    assert.equal(server.server.connectionCount("kim"), 1);
    assert.deepEqual(errors, []);
  },
});
