/**
 * End to end: the web inbox (web/) in a real Chromium against a real alarmd.
 *
 * One browser context holds three tabs of user "kim"; they must share ONE stream (Web Locks
 * leader election + BroadcastChannel relay in web/alarmd-client.js), survive the leader tab
 * closing and a server restart without losing or repeating an alarm, keep read state in sync,
 * stay accessible and fit a phone screen, and show the token form for a bad token.
 *
 * Needs Chromium (ALARMD_CHROMIUM, default /usr/bin/chromium; never downloaded). Without it the
 * tests are skipped with a message, except when CI=true: then they fail.
 */
import assert from "node:assert/strict";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { launchChromium, skipWithoutChromium } from "../helpers/chromium.ts";
import type { TestServer } from "../helpers/test_server.ts";
import { startTestServer } from "../helpers/test_server.ts";
import { waitUntil } from "../helpers/wait.ts";

/**
 * What a browser logs while the server is deliberately stopped: refused connections, and a 503
 * from a server that is shutting down (it refuses new streams so clients go elsewhere).
 */
const DOWN = /ERR_CONNECTION_REFUSED|status of 503/;

const ROOT = new URL("../../", import.meta.url);
/** Short reconnection delay (`retry:`), so that the restart part stays quick. */
const RETRY_MS = 300;
const DESKTOP = { width: 900, height: 640 };

const ignore = skipWithoutChromium("tests/e2e/inbox_test.ts");
const launch = () => launchChromium();

interface Alarm {
  readonly id: string;
  readonly type: string;
  readonly data: Record<string, unknown>;
  readonly readAt: string | null;
}

async function publish(
  server: TestServer,
  type: string,
  text: string,
  userId = "kim",
): Promise<Alarm> {
  const res = await server.fetch("/api/v1/alarms", {
    method: "POST",
    token: await server.publisherToken(),
    json: { userId, type, data: { text } },
  });
  assert.equal(res.status, 201, await res.clone().text());
  return await res.json();
}

/** Asserts that `check` holds for all of `ms` (nothing changes behind the test's back). */
async function stays(what: string, check: () => boolean | Promise<boolean>, ms = 300) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    assert.ok(await check(), `no longer true: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const item = (page: Page, id: string) => page.locator(`li[data-id="${id}"]`);
const stateOf = (page: Page) => page.locator("#status").getAttribute("data-state");

async function waitForState(page: Page, states: string[], timeoutMs = 5_000) {
  const selector = states.map((s) => `#status[data-state="${s}"]`).join(", ");
  await page.locator(selector).waitFor({ state: "attached", timeout: timeoutMs });
}

async function badge(page: Page): Promise<number> {
  const badge = page.locator("#badge");
  return await badge.isHidden() ? 0 : Number(await badge.textContent());
}

/** The client of a tab, through the debug handle web/inbox.js exposes. */
function client<T>(page: Page, expression: string): Promise<T> {
  return page.evaluate<T>(`globalThis.alarmdInbox.client.${expression}`);
}

/** Records every `alarm` event the tab's client emits, to prove none is emitted twice. */
async function recordAlarmEvents(page: Page) {
  await page.evaluate(`(() => {
    globalThis.alarmEvents = [];
    globalThis.alarmdInbox.client.addEventListener("alarm", (e) => globalThis.alarmEvents.push(e.detail.id));
  })()`);
}

async function alarmEvents(page: Page): Promise<string[]> {
  return await page.evaluate<string[]>("globalThis.alarmEvents");
}

/** Holds the tab's stream requests back until `until` settles. */
async function holdStreams(page: Page, until: Promise<void>): Promise<void> {
  await page.route(/\/api\/v1\/users\/alarm\/subscribe/, async (route) => {
    await until;
    await route.continue();
  });
}

const PUSH_KEY = "/api/v1/push/vapid-public-key";

/** Console errors and uncaught exceptions of every tab, minus those a test expects. */
class ErrorLog {
  readonly errors: string[] = [];
  /** While set, console errors matching it are expected (e.g. the server is down on purpose). */
  expected: RegExp | null = null;

  watch(page: Page, name: string): void {
    page.on("console", (message) => {
      if (message.type() !== "error") return;
      if (this.expected?.test(message.text())) return;
      // Push is off in these tests: the inbox asks for the VAPID key, gets 404 push_disabled and
      // shows no "Turn on notifications" button (tests/e2e/inbox_push_test.ts).
      if (message.location().url.endsWith(PUSH_KEY) && /status of 404/.test(message.text())) return;
      this.errors.push(`${name} console.error: ${message.text()}`);
    });
    page.on("pageerror", (error) => this.errors.push(`${name} page error: ${error.message}`));
  }
}

Deno.test({
  name: "inbox: three tabs share one stream, survive leader close and a restart, stay in sync",
  ignore,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "alarmd-e2e-" });
    let server = await startTestServer({ retryMs: RETRY_MS }, { dir });
    let browser: Browser | null = null;
    try {
      browser = await launch();
      const context = await browser.newContext({ viewport: DESKTOP });
      const log = new ErrorLog();
      const token = await server.userToken("kim");

      // 1. Three tabs, one stream; an alarm reaches all three within a second.
      const pages: Page[] = [];
      for (let i = 0; i < 3; i++) {
        const page = await context.newPage();
        log.watch(page, `tab ${i + 1}`);
        await page.goto(`${server.url}/?token=${token}`);
        pages.push(page);
      }
      for (const page of pages) await waitForState(page, ["connected"]);
      for (const page of pages) await recordAlarmEvents(page);
      await waitUntil(() => server.server.connectionCount("kim") === 1, "kim has one stream");
      await stays("kim keeps exactly one stream", () => server.server.connectionCount("kim") === 1);
      assert.equal(server.server.connectionCount(), 1);
      assert.equal(
        (await Promise.all(pages.map((p) => client(p, "isLeader")))).filter(Boolean).length,
        1,
      );
      for (const page of pages) {
        assert.equal(page.url(), `${server.url}/`, "the token is removed from the address bar");
      }

      const started = performance.now();
      const first = await publish(server, "comment", "Ana commented on “Q3 roadmap”");
      await Promise.all(
        pages.map((p) => item(p, first.id).waitFor({ state: "visible", timeout: 1_000 })),
      );
      const elapsed = performance.now() - started;
      assert.ok(elapsed < 1_000, `all tabs showed the alarm after ${elapsed.toFixed(0)} ms`);
      for (const page of pages) {
        assert.equal(await badge(page), 1);
        assert.deepEqual(await alarmEvents(page), [first.id]);
      }

      // 2. Close the leader tab and publish at once: the next leader reconnects with the last id
      // any tab saw, so the remaining tabs get the new alarm exactly once and kim has one stream.
      const leaders = await Promise.all(pages.map((p) => client<boolean>(p, "isLeader")));
      const leader = pages[leaders.indexOf(true)];
      await leader.close();
      const rest = pages.filter((p) => p !== leader);
      const second = await publish(server, "mention", "Ben mentioned you in #ops");
      for (const page of rest) {
        await item(page, second.id).waitFor({ state: "visible", timeout: 5_000 });
      }
      await waitUntil(
        () => server.server.connectionCount("kim") === 1,
        "kim has one stream again",
      );
      await stays("kim keeps exactly one stream", () => server.server.connectionCount("kim") === 1);
      assert.equal(server.server.connectionCount(), 1);
      assert.equal(
        (await Promise.all(rest.map((p) => client(p, "isLeader")))).filter(Boolean).length,
        1,
      );
      for (const page of rest) {
        assert.equal(await item(page, second.id).count(), 1);
        assert.equal(await page.locator("#list > li").count(), 2);
        assert.deepEqual(await alarmEvents(page), [first.id, second.id]);
        assert.equal(await badge(page), 2);
        await waitForState(page, ["connected"]);
      }

      // 3. Mark read in one tab: the other tab's badge drops by one and the item turns read.
      const [reader, watcher] = rest;
      const before = await badge(watcher);
      await item(reader, second.id).getByRole("button", { name: /^Mark .* read$/ }).click();
      await waitUntil(
        async () => await badge(watcher) === before - 1,
        "the other tab's badge drops by one",
      );
      await waitUntil(
        async () => !(await item(watcher, second.id).getAttribute("class"))?.includes("unread"),
        "the item is no longer unread in the other tab",
      );
      assert.match(String(await item(watcher, first.id).getAttribute("class")), /\bunread\b/);
      assert.equal(await badge(reader), before - 1);
      assert.doesNotMatch(String(await item(reader, second.id).getAttribute("class")), /unread/);

      // 4. Stop the server: the tabs say so. Start a new one on the same port and KV, publish
      // two alarms at once: each tab shows both exactly once (replay or live) and reconnects.
      const port = server.server.port;
      log.expected = DOWN;
      await server.close();
      for (const page of rest) await waitForState(page, ["reconnecting", "offline"]);
      // Stay down for a few reconnection attempts: they are refused, and the tabs keep trying.
      await stays("the tabs do not claim to be connected while the server is down", async () => {
        const states = await Promise.all(rest.map(stateOf));
        return states.every((s) => s === "reconnecting" || s === "offline");
      }, 4 * RETRY_MS);
      // The reconnect waits until both exist, so they come as a replay after Last-Event-ID.
      const published = Promise.withResolvers<void>();
      for (const page of rest) await holdStreams(page, published.promise);
      server = await startTestServer({ port, retryMs: RETRY_MS }, { dir });
      const third = await publish(server, "deploy", "api@v2.4.1 deployed to production");
      const fourth = await publish(server, "follow", "Chris started following you");
      published.resolve();
      for (const page of rest) {
        await waitForState(page, ["connected"], 10_000);
        for (const alarm of [third, fourth]) {
          await item(page, alarm.id).waitFor({ state: "visible", timeout: 5_000 });
        }
      }
      log.expected = null;
      for (const page of rest) await page.unrouteAll();
      await waitUntil(
        () => server.server.connectionCount("kim") === 1,
        "kim has one stream on the new server",
      );
      for (const page of rest) {
        for (const alarm of [first, second, third, fourth]) {
          assert.equal(await item(page, alarm.id).count(), 1, `${alarm.id} shown once`);
        }
        assert.equal(await page.locator("#list > li").count(), 4);
        assert.deepEqual(await alarmEvents(page), [first.id, second.id, third.id, fourth.id]);
        assert.equal(await badge(page), 3);
      }

      // 6. Accessibility: the bell names the unread count, every button has a name, and the page
      // fits a phone without horizontal scrolling.
      const page = rest[0];
      await page.getByRole("button", { name: /Notifications, 3 unread/ }).waitFor();
      assert.match(String(await page.locator("#bell").getAttribute("aria-label")), /\b3 unread/);
      const buttons = page.getByRole("button");
      assert.ok(await buttons.count() >= 8, "bell, mark all, and two per item");
      assert.equal(await page.getByRole("button", { name: /\S/ }).count(), await buttons.count());
      for (const alarm of [first, third, fourth]) {
        await item(page, alarm.id).getByRole("button", { name: /^Mark .+ read$/ }).waitFor();
      }
      for (const alarm of [first, second, third, fourth]) {
        await item(page, alarm.id).getByRole("button", { name: /^Delete .+/ }).waitFor();
      }

      // 8. Screenshots: a few alarms, one of them read.
      await Deno.mkdir(new URL("test-artifacts/", ROOT), { recursive: true });
      await Deno.mkdir(new URL("docs/", ROOT), { recursive: true });
      await page.mouse.move(0, 0); // no hover highlight in the picture
      const png = await page.screenshot({ fullPage: true });
      await Deno.writeFile(new URL("test-artifacts/inbox.png", ROOT), png);
      // README's picture changes only on request, so ordinary runs leave the tree clean.
      if (Deno.env.get("ALARMD_UPDATE_DOCS") === "1") {
        await Deno.writeFile(new URL("docs/inbox.png", ROOT), png);
      }

      // A phone, and the longest type and an unbroken text an alarm can have.
      const long = await publish(server, "x".repeat(64), `https://example.com/${"a".repeat(150)}`);
      await item(page, long.id).waitFor({ timeout: 2_000 });
      await page.setViewportSize({ width: 390, height: 844 });
      const scrollWidth = await page.evaluate<number>("document.documentElement.scrollWidth");
      assert.ok(
        scrollWidth <= 390,
        `no horizontal scroll at 390 px wide (scrollWidth ${scrollWidth})`,
      );
      await Deno.writeFile(
        new URL("test-artifacts/inbox-mobile.png", ROOT),
        await page.screenshot({ fullPage: true }),
      );

      // 5. No tab logged an error or threw, apart from the refused reconnects while down.
      assert.deepEqual(log.errors, []);
      await context.close();
    } finally {
      await browser?.close();
      await server.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "inbox: a bad or expired token shows the token form, and no stream stays open",
  ignore,
  async fn() {
    await using server = await startTestServer({ retryMs: RETRY_MS });
    await using browser = await launch();
    const context = await browser.newContext({ viewport: DESKTOP });
    const pageErrors: string[] = [];
    const rejected = async (page: Page) => {
      await page.locator("#token-form").waitFor({ state: "visible", timeout: 5_000 });
      const notice = page.getByRole("alert");
      await notice.waitFor({ state: "visible", timeout: 1_000 });
      assert.match(String(await notice.textContent()), /rejected|expired/);
      assert.ok(await page.locator("#inbox").isHidden(), "the inbox is hidden");
      assert.equal(await page.evaluate("sessionStorage.getItem('alarmd-token')"), null);
    };
    const subscribes: string[] = [];
    const open = async (token: string) => {
      const page = await context.newPage();
      page.on("pageerror", (e) => pageErrors.push(e.message));
      page.on("request", (r) => {
        if (r.url().includes("/alarm/subscribe")) subscribes.push(r.url());
      });
      await page.goto(`${server.url}/?token=${encodeURIComponent(token)}`);
      return page;
    };

    // Garbage, and a token that expired a minute ago.
    for (const token of ["garbage", await server.userToken("kim", -60_000)]) {
      subscribes.length = 0;
      const page = await open(token);
      await rejected(page);
      const tries = subscribes.length;
      await stays("no stream is open", () => server.server.connectionCount() === 0, 3 * RETRY_MS);
      assert.equal(subscribes.length, tries, "the client stopped trying");
      await page.close();
    }

    // A token that expires while its stream is open: the server ends the stream, the
    // reconnect is refused, and the page asks for a new token instead of retrying forever.
    const shortLived = await server.userToken("kim", 2_500);
    const page = await open(shortLived);
    await page.locator('#status[data-state="connected"]').waitFor({ timeout: 5_000 });
    assert.equal(server.server.connectionCount("kim"), 1);
    await rejected(page);
    await stays("no stream is open", () => server.server.connectionCount() === 0, 3 * RETRY_MS);

    // A fresh token in the form opens the inbox again.
    const alarm = await publish(server, "comment", "welcome back");
    await page.locator("#token-input").fill(await server.userToken("kim"));
    await page.getByRole("button", { name: "Open" }).click();
    await page.locator('#status[data-state="connected"]').waitFor({ timeout: 5_000 });
    await item(page, alarm.id).waitFor({ timeout: 5_000 });
    assert.ok(await page.locator("#token-form").isHidden());
    assert.ok(await page.getByRole("alert").isHidden(), "the old notice is gone");
    assert.equal(server.server.connectionCount("kim"), 1);

    assert.deepEqual(pageErrors, []);
    await context.close();
  },
});

Deno.test({
  name: "inbox: changes that arrive while the list is loading are kept",
  ignore,
  async fn() {
    await using server = await startTestServer({ retryMs: RETRY_MS });
    await using browser = await launch();
    const context = await browser.newContext({ viewport: DESKTOP });
    const page = await context.newPage();
    const errors = new ErrorLog();
    errors.watch(page, "tab");
    const token = await server.userToken("lee");
    const old = await publish(server, "comment", "an older alarm", "lee");

    // Every list response is read from the server at once but handed to the page only later,
    // after the stream has delivered newer changes: the page must not let it erase them.
    const release = Promise.withResolvers<void>();
    let served = 0;
    let held = 0;
    await page.route(/\/api\/v1\/users\/alarms\?/, async (route) => {
      const response = await route.fetch();
      served++;
      held++;
      await release.promise;
      await route.fulfill({ response });
      held--;
    });
    await page.goto(`${server.url}/?token=${token}`);
    await page.locator('#status[data-state="connected"]').waitFor({ timeout: 5_000 });
    await waitUntil(() => served > 0, "the list was read");

    const read = await server.fetch(`/api/v1/users/alarms/${old.id}/read`, {
      method: "POST",
      token,
    });
    assert.ok(read.ok, `mark read: ${read.status}`);
    await read.body?.cancel();
    const fresh = await publish(server, "mention", "a newer alarm", "lee");
    await waitUntil(
      async () => await client(page, "lastEventId") === fresh.id,
      "the stream delivered the new alarm",
    );
    release.resolve();
    await waitUntil(() => held === 0, "the held lists reached the page");
    await page.unrouteAll({ behavior: "wait" });

    await item(page, fresh.id).waitFor({ timeout: 1_000 });
    await stays("the live alarm stays", async () => await item(page, fresh.id).count() === 1);
    assert.doesNotMatch(String(await item(page, old.id).getAttribute("class")), /unread/);
    assert.match(String(await item(page, fresh.id).getAttribute("class")), /\bunread\b/);
    assert.equal(await badge(page), 1);
    assert.deepEqual(errors.errors, []);
    await context.close();
  },
});

Deno.test({
  name: "inbox: a refused stream says so, waits for Retry-After and recovers",
  ignore,
  async fn() {
    await using server = await startTestServer({ retryMs: RETRY_MS, maxConnectionsPerUser: 1 });
    await using browser = await launch();
    const token = await server.userToken("max");
    // Two contexts are two browsers: they cannot share a stream.
    const first = await browser.newContext({ viewport: DESKTOP });
    const second = await browser.newContext({ viewport: DESKTOP });
    const holder = await first.newPage();
    await holder.goto(`${server.url}/?token=${token}`);
    await holder.locator('#status[data-state="connected"]').waitFor({ timeout: 5_000 });

    const page = await second.newPage();
    const errors = new ErrorLog();
    errors.expected = /status of 429/;
    errors.watch(page, "refused tab");
    let subscribes = 0;
    page.on("request", (r) => {
      if (r.url().includes("/alarm/subscribe")) subscribes++;
    });
    const listed = await publish(server, "comment", "listed over REST", "max");
    await page.goto(`${server.url}/?token=${token}`);
    await page.locator('#status[data-state="too_many_connections"]').waitFor({ timeout: 5_000 });
    await item(page, listed.id).waitFor({ timeout: 1_000 });
    const notice = page.getByRole("alert");
    await notice.waitFor({ state: "visible", timeout: 1_000 });
    assert.match(String(await notice.textContent()), /refused/);
    assert.equal(server.server.connectionCount("max"), 1);
    const alarm = await publish(server, "comment", "replayed once connected", "max");

    // The holder leaves: the refused tab connects after Retry-After, and says so.
    await first.close();
    await page.locator('#status[data-state="connected"]').waitFor({ timeout: 10_000 });
    await item(page, alarm.id).waitFor({ timeout: 1_000 });
    assert.ok(await notice.isHidden(), "the refusal notice is gone once connected");
    assert.ok(subscribes <= 4, `${subscribes} stream requests: it waited between tries`);
    assert.equal(server.server.connectionCount("max"), 1);
    assert.deepEqual(errors.errors, []);
    await second.close();
  },
});

Deno.test({
  name: "inbox: before any live alarm, a new leader still resumes where the stream began",
  ignore,
  async fn() {
    await using server = await startTestServer({ retryMs: RETRY_MS });
    await using browser = await launch();
    const context = await browser.newContext({ viewport: DESKTOP });
    const errors = new ErrorLog();
    const token = await server.userToken("noa");
    const old = await publish(server, "comment", "from yesterday", "noa");
    const pages: Page[] = [];
    for (const name of ["tab 1", "tab 2"]) {
      const page = await context.newPage();
      errors.watch(page, name);
      await page.goto(`${server.url}/?token=${token}`);
      await page.locator('#status[data-state="connected"]').waitFor({ timeout: 5_000 });
      await item(page, old.id).waitFor({ timeout: 1_000 });
      pages.push(page);
    }
    await waitUntil(() => server.server.connectionCount("noa") === 1, "one stream");
    const leaders = await Promise.all(pages.map((p) => client<boolean>(p, "isLeader")));
    const [leader, other] = leaders[0] ? pages : [pages[1], pages[0]];
    // The next leader's stream is held back until the alarm exists: only a resume finds it.
    const published = Promise.withResolvers<void>();
    await holdStreams(other, published.promise);
    await leader.close();
    const fresh = await publish(server, "mention", "while no tab held the stream", "noa");
    published.resolve();
    await item(other, fresh.id).waitFor({ timeout: 5_000 });
    assert.equal(await badge(other), 2);
    assert.equal(await client(other, "isLeader"), true);
    assert.deepEqual(errors.errors, []);
    await context.close();
  },
});

Deno.test({
  name: "inbox: before any live alarm, a reconnect after a restart misses nothing",
  ignore,
  async fn() {
    const browser = await launch();
    const dir = await Deno.makeTempDir({ prefix: "alarmd-e2e-" });
    let server = await startTestServer({ retryMs: RETRY_MS }, { dir });
    try {
      const context = await browser.newContext({ viewport: DESKTOP });
      const errors = new ErrorLog();
      const token = await server.userToken("ola");
      const old = await publish(server, "comment", "from yesterday", "ola");
      const page = await context.newPage();
      errors.watch(page, "tab");
      await page.goto(`${server.url}/?token=${token}`);
      await page.locator('#status[data-state="connected"]').waitFor({ timeout: 5_000 });
      await item(page, old.id).waitFor({ timeout: 1_000 });

      const port = server.server.port;
      errors.expected = DOWN;
      await server.close();
      await page.locator('#status:not([data-state="connected"])').waitFor({ timeout: 5_000 });
      // The reconnect is held back until the alarm exists: only a resume finds it.
      const published = Promise.withResolvers<void>();
      await holdStreams(page, published.promise);
      server = await startTestServer({ port, retryMs: RETRY_MS }, { dir });
      const fresh = await publish(server, "mention", "while the tab was reconnecting", "ola");
      published.resolve();
      await page.locator('#status[data-state="connected"]').waitFor({ timeout: 10_000 });
      errors.expected = null;
      await item(page, fresh.id).waitFor({ timeout: 2_000 });
      assert.equal(await badge(page), 2);
      assert.deepEqual(errors.errors, []);
      await context.close();
    } finally {
      await browser.close();
      await server.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** An app's page: alarmd-client.js on its own, as the README tells apps to copy it. */
async function startClientPage(context: BrowserContext, server: TestServer, token: string) {
  const page = await context.newPage();
  // Any page of the server's origin will do; this one has no inbox on it.
  await page.goto(`${server.url}/favicon.svg`);
  await page.evaluate(`(async () => {
    const { AlarmdClient } = await import("/alarmd-client.js");
    const client = new AlarmdClient({ token: ${JSON.stringify(token)} });
    globalThis.alarmdInbox = { client };
    client.start();
  })()`);
  await recordAlarmEvents(page);
  await waitUntil(async () => await client(page, "state") === "connected", "the client connects");
  return page;
}

Deno.test({
  name: "alarmd-client.js: before any alarm arrived, a new stream resumes where the old began",
  ignore,
  async fn() {
    const browser = await launch();
    const dir = await Deno.makeTempDir({ prefix: "alarmd-e2e-" });
    let server = await startTestServer({ retryMs: RETRY_MS }, { dir });
    try {
      const errors = new ErrorLog();
      for (const user of ["bo", "cy"]) await publish(server, "comment", "from yesterday", user);

      // Two tabs of "bo" share a stream; the leader closes before any alarm arrived.
      const tabs = await browser.newContext();
      const first = await startClientPage(tabs, server, await server.userToken("bo"));
      const second = await startClientPage(tabs, server, await server.userToken("bo"));
      errors.watch(first, "bo 1");
      errors.watch(second, "bo 2");
      await waitUntil(() => server.server.connectionCount("bo") === 1, "one stream for bo");
      const [leader, other] = await client(first, "isLeader") ? [first, second] : [second, first];
      const published = Promise.withResolvers<void>();
      await holdStreams(other, published.promise);
      await leader.close();
      const handedOver = await publish(server, "mention", "during the handover", "bo");
      published.resolve();
      await waitUntil(
        async () => (await alarmEvents(other)).length > 0,
        "the next leader replays it",
      );
      assert.deepEqual(await alarmEvents(other), [handedOver.id]);

      // A tab of "cy" whose stream saw no alarm yet; the server restarts.
      const solo = await startClientPage(
        await browser.newContext(),
        server,
        await server.userToken("cy"),
      );
      errors.watch(solo, "cy");
      const port = server.server.port;
      errors.expected = DOWN;
      await server.close();
      await waitUntil(
        async () => await client(solo, "state") !== "connected",
        "cy is disconnected",
      );
      const restarted = Promise.withResolvers<void>();
      await holdStreams(solo, restarted.promise);
      server = await startTestServer({ port, retryMs: RETRY_MS }, { dir });
      const missed = await publish(server, "mention", "during the restart", "cy");
      restarted.resolve();
      await waitUntil(
        async () => await client(solo, "state") === "connected",
        "cy reconnects",
        10_000,
      );
      errors.expected = null;
      await waitUntil(
        async () => (await alarmEvents(solo)).length > 0,
        "the reconnect replays it",
      );
      assert.deepEqual(await alarmEvents(solo), [missed.id]);
      assert.equal(await client(solo, "unread"), 2);
      assert.deepEqual(errors.errors, []);
    } finally {
      await browser.close();
      await server.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
