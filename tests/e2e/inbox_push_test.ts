/**
 * End to end: the inbox's "Turn on notifications" (web/inbox_push.js) and its service worker
 * (web/sw.js), in a real Chromium against a real alarmd.
 *
 * Offline, Chromium cannot subscribe at a push service: a normal profile waits for it forever
 * (the inbox gives up after a while and says so), an incognito context refuses at once. So the
 * worker's side is driven through the DevTools protocol (`ServiceWorker.deliverPushMessage`),
 * and the registration with alarmd runs against a stand-in `PushManager` whose subscriptions
 * point at an origin the test server allows (`pushAllowedOrigins`).
 *
 * Needs Chromium (ALARMD_CHROMIUM, default /usr/bin/chromium; never downloaded). Without it the
 * tests are skipped with a message, except when CI=true: then they fail.
 */
import assert from "node:assert/strict";
import type { Browser, Page } from "playwright-core";
import { launchChromium, launchChromiumProfile, skipWithoutChromium } from "../helpers/chromium.ts";
import type { TestServer } from "../helpers/test_server.ts";
import { startTestServer } from "../helpers/test_server.ts";
import type { TestPushSubscription } from "../helpers/test_push_service.ts";
import { startTestPushService } from "../helpers/test_push_service.ts";
import { waitUntil } from "../helpers/wait.ts";

/**
 * How long a browser-side step may take: a notification shown by the worker, a closed tab's
 * stream seen closed by the server. Chromium on a loaded machine can take seconds for either,
 * and a slow browser is not what these tests check.
 */
const BROWSER_MS = 15_000;

const PUSH_KEY = "/api/v1/push/vapid-public-key";
const SUBSCRIPTIONS = "/api/v1/users/push-subscriptions";
/** Where the stand-in PushManager's subscriptions point: allowed by the server, never called. */
const PUSH_ORIGIN = "http://127.0.0.1:9";
const PUSH_ON = { vapidSubject: "mailto:ops@example.com", pushAllowedOrigins: PUSH_ORIGIN };

const ignore = skipWithoutChromium("tests/e2e/inbox_push_test.ts");
const launch = () => launchChromium();

/** Console errors and uncaught exceptions of a tab, minus those the test expects. */
function watchErrors(page: Page, expected: RegExp[] = []): string[] {
  const errors: string[] = [];
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    const text = `${message.text()} (${message.location().url})`;
    if (!expected.some((e) => e.test(text))) errors.push(`console.error: ${text}`);
  });
  page.on("pageerror", (error) => errors.push(`page error: ${error.message}`));
  return errors;
}

async function openInbox(page: Page, server: TestServer, user: string): Promise<void> {
  await page.goto(`${server.url}/?token=${await server.userToken(user)}`);
  await page.locator('#status[data-state="connected"]').waitFor({ timeout: 5_000 });
}

/** The inbox still works: a new alarm shows up in the list. */
async function inboxWorks(page: Page, server: TestServer, user: string): Promise<void> {
  const res = await server.fetch("/api/v1/alarms", {
    method: "POST",
    token: await server.publisherToken(),
    json: { userId: user, type: "comment", data: { text: "still here" } },
  });
  assert.equal(res.status, 201, await res.clone().text());
  const { id } = await res.json();
  await page.locator(`li[data-id="${id}"]`).waitFor({ timeout: 2_000 });
}

const button = (page: Page) => page.locator("#push");
const note = (page: Page) => page.locator("#push-note");

async function buttonSays(page: Page, text: string): Promise<void> {
  await page.locator(`#push:not([disabled]):text-is("${text}")`).waitFor({ timeout: 5_000 });
}

interface Subscription {
  readonly id: string;
  readonly endpoint: string;
  readonly createdAt: string;
}

async function serverSubscriptions(server: TestServer, user: string): Promise<Subscription[]> {
  const res = await server.fetch(SUBSCRIPTIONS, { token: await server.userToken(user) });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()).items;
}

/**
 * Delivers push messages to the origin's service worker (scope "/") through the DevTools
 * protocol, as the browser does once it has decrypted one: `data` is the payload's text.
 */
async function pushDeliverer(page: Page, server: TestServer) {
  const cdp = await page.context().newCDPSession(page);
  const scope = `${server.url}/`;
  let registrationId: string | null = null;
  cdp.on("ServiceWorker.workerRegistrationUpdated", ({ registrations }) => {
    for (const r of registrations) {
      if (r.scopeURL === scope) registrationId = r.isDeleted ? null : r.registrationId;
    }
  });
  await cdp.send("ServiceWorker.enable");
  await waitUntil(() => registrationId !== null, `a service worker registration for ${scope}`);
  return {
    deliver: async (data: string) => {
      await cdp.send("ServiceWorker.deliverPushMessage", {
        origin: server.url,
        registrationId: registrationId!,
        data,
      });
    },
    detach: () => cdp.detach(),
  };
}

interface Shown {
  readonly title: string;
  readonly body: string;
  readonly tag: string;
  readonly data: { url: string | null; id: string | null };
}

function notifications(page: Page): Promise<Shown[]> {
  return page.evaluate<Shown[]>(`(async () => {
    const registration = await navigator.serviceWorker.getRegistration("/");
    return (await registration.getNotifications())
      .map(({ title, body, tag, data }) => ({ title, body, tag, data }));
  })()`);
}

async function closeNotifications(page: Page): Promise<void> {
  await page.evaluate(`(async () => {
    const registration = await navigator.serviceWorker.getRegistration("/");
    for (const n of await registration.getNotifications()) n.close();
  })()`);
}

Deno.test({
  name: "push: no button when the server has push off (404 push_disabled); the inbox works",
  ignore,
  async fn() {
    await using server = await startTestServer();
    await using browser = await launch();
    const context = await browser.newContext();
    await context.grantPermissions(["notifications"], { origin: server.url });
    const page = await context.newPage();
    const errors = watchErrors(page, [/status of 404 .*\/api\/v1\/push\/vapid-public-key\)$/]);
    const answer = page.waitForResponse((r) => r.url().endsWith(PUSH_KEY));
    await openInbox(page, server, "kim");
    assert.equal((await answer).status(), 404);
    // (The inbox does not read that body, so Chromium does not keep it for the test: ask again.)
    const res = await server.fetch(PUSH_KEY);
    assert.equal(res.status, 404);
    assert.equal((await res.json()).error.code, "push_disabled");
    await inboxWorks(page, server, "kim");
    assert.ok(await button(page).isHidden(), "no Turn on notifications button");
    assert.equal(await page.evaluate("navigator.serviceWorker.getRegistration('/')"), undefined);
    assert.deepEqual(errors, []);
    await context.close();
  },
});

Deno.test({
  name: "push: Turn on registers /sw.js at scope /; a failed subscribe is shown, the inbox works",
  ignore,
  async fn() {
    await using server = await startTestServer(PUSH_ON);
    const sw = await server.fetch("/sw.js");
    assert.equal(sw.status, 200);
    assert.match(String(sw.headers.get("content-type")), /^text\/javascript\b/);
    assert.equal(sw.headers.get("cache-control"), "no-cache");
    await sw.body?.cancel();

    await using browser = await launch();
    // Incognito: Chromium refuses push subscriptions there at once (and says why on the console).
    const context = await browser.newContext();
    await context.grantPermissions(["notifications"], { origin: server.url });
    const page = await context.newPage();
    const errors = watchErrors(page, [/does not support the Push API in incognito/]);
    await openInbox(page, server, "kim");
    await buttonSays(page, "Turn on notifications");
    assert.equal(await button(page).getAttribute("aria-pressed"), "false");

    await button(page).click();
    await buttonSays(page, "Turn on notifications");
    assert.match(String(await note(page).textContent()), /could not subscribe/);
    const registration = await page.evaluate<{ scope: string; script: string }>(`(async () => {
      const registration = await navigator.serviceWorker.getRegistration("/");
      return { scope: registration.scope, script: registration.active.scriptURL };
    })()`);
    assert.deepEqual(registration, { scope: `${server.url}/`, script: `${server.url}/sw.js` });
    assert.deepEqual(await serverSubscriptions(server, "kim"), []);
    await inboxWorks(page, server, "kim");
    assert.ok(await page.getByRole("alert").isHidden(), "the inbox's own notice stays quiet");
    assert.deepEqual(errors, []);
    await context.close();
  },
});

Deno.test({
  name: "push: where no push service answers, Turn on gives up after a while and says so",
  ignore,
  async fn() {
    await using server = await startTestServer(PUSH_ON);
    // A normal profile (not incognito): offline, Chromium's subscribe never settles.
    const dir = await Deno.makeTempDir({ prefix: "alarmd-e2e-profile-" });
    const context = await launchChromiumProfile(dir);
    try {
      await context.grantPermissions(["notifications"], { origin: server.url });
      const page = context.pages()[0] ?? await context.newPage();
      const errors = watchErrors(page);
      await openInbox(page, server, "kim");
      await buttonSays(page, "Turn on notifications");
      await page.clock.install();
      await button(page).click();
      await page.locator('#push[disabled]:text-is("Turning on…")').waitFor({ timeout: 2_000 });
      // The page's clock runs 5 s ahead per step until the inbox gives up (its timer starts once
      // the worker is active, a moment after the click).
      let steps = 0;
      await waitUntil(async () => {
        if (!(await button(page).isDisabled())) return true;
        await page.clock.fastForward(5_000);
        steps++;
        return false;
      }, "the inbox gives up on the subscribe");
      assert.ok(steps >= 4, `it waited ${steps * 5} s of the page's time`);
      await buttonSays(page, "Turn on notifications");
      assert.match(String(await note(page).textContent()), /could not subscribe.*did not answer/);
      await inboxWorks(page, server, "kim");
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "push: a push message shows a notification; a click goes to its url, or the inbox",
  ignore,
  async fn() {
    await using server = await startTestServer(PUSH_ON);
    await using browser = await launch();
    const context = await browser.newContext();
    await context.grantPermissions(["notifications"], { origin: server.url });
    const page = await context.newPage();
    const errors = watchErrors(page);
    await openInbox(page, server, "kim");
    await page.evaluate(`navigator.serviceWorker.register("/sw.js", { scope: "/" })`);
    await page.evaluate(`navigator.serviceWorker.ready.then(() => {})`);
    const { deliver, detach } = await pushDeliverer(page, server);

    // The payload alarmd encrypts, as the browser decrypts it.
    const payload = {
      id: "01JALARM0000000000000000001",
      type: "deploy",
      title: "api@v2.4.1 deployed",
      body: "to production, by Ana",
      url: "/docs",
      tag: "deploy-api",
      createdAt: new Date().toISOString(),
    };
    await deliver(JSON.stringify(payload));
    await waitUntil(
      async () => (await notifications(page)).length === 1,
      "a notification",
      BROWSER_MS,
    );
    assert.deepEqual(await notifications(page), [{
      title: payload.title,
      body: payload.body,
      tag: payload.tag,
      data: { url: "/docs", id: payload.id },
    }]);
    await closeNotifications(page);

    // Not JSON (or nothing at all): a generic notification, and the worker does not throw.
    for (const data of ["not json {", ""]) {
      await deliver(data);
      await waitUntil(
        async () => (await notifications(page)).length === 1,
        "a notification",
        BROWSER_MS,
      );
      assert.deepEqual(await notifications(page), [{
        title: "alarmd",
        body: "You have a new alarm.",
        tag: "",
        data: { url: null, id: null },
      }]);
      await closeNotifications(page);
    }

    // The click's target, computed by the worker's own functions in the worker.
    const [worker] = context.serviceWorkers();
    assert.equal(worker?.url(), `${server.url}/sw.js`);
    const origin = server.url;
    const targets = await worker.evaluate<Record<string, string>>(`Object.fromEntries(
      ${
      JSON.stringify([
        "/docs?x=1#y",
        "https://example.com/runbook",
        "HTTPS://example.com/a",
        "//evil.example/x",
        "/\\evil.example/x",
        "/\t/evil.example/x",
        "http://example.com/x",
        "javascript:alert(1)",
        "docs",
        " https://example.com/x",
        "",
      ])
    }.map((url) => [url, notificationTarget(url)]).concat([["(none)", notificationTarget(undefined)]])
    )`);
    assert.deepEqual(targets, {
      "/docs?x=1#y": `${origin}/docs?x=1#y`,
      "https://example.com/runbook": "https://example.com/runbook",
      "HTTPS://example.com/a": "https://example.com/a",
      "//evil.example/x": `${origin}/`,
      "/\\evil.example/x": `${origin}/`,
      "/\t/evil.example/x": `${origin}/`,
      "http://example.com/x": `${origin}/`,
      "javascript:alert(1)": `${origin}/`,
      "docs": `${origin}/`,
      " https://example.com/x": `${origin}/`,
      "": `${origin}/`,
      "(none)": `${origin}/`,
    });
    // Which tab a click focuses: the open inbox tab for the inbox, none (a new tab) for a url.
    const choice = await worker.evaluate<{ tabs: string[]; inbox: number; docs: number }>(
      `(async () => {
        const tabs = (await clients.matchAll({ type: "window", includeUncontrolled: true }))
          .map((t) => t.url);
        return {
          tabs,
          inbox: tabFor(tabs, notificationTarget(null)),
          docs: tabFor(tabs, notificationTarget("/docs")),
        };
      })()`,
    );
    assert.deepEqual(choice.tabs.map((url) => new URL(url).pathname), ["/"]);
    assert.deepEqual({ inbox: choice.inbox, docs: choice.docs }, { inbox: 0, docs: -1 });
    assert.equal(
      await worker.evaluate(`tabFor(["${origin}/docs", "${origin}/?x=1"], "${origin}/")`),
      1,
      "any inbox tab, whatever its query",
    );
    assert.equal(
      await worker.evaluate(`tabFor(["${origin}/", "${origin}/docs"], "${origin}/docs")`),
      1,
      "a tab that already shows the url",
    );

    await detach();
    assert.deepEqual(errors, []);
    await context.close();
  },
});

/**
 * A stand-in for Chromium's PushManager (which cannot reach a push service offline): it keeps
 * one subscription in localStorage, like the browser keeps it across page loads, and refuses a
 * subscribe with another key while one exists, as Chromium does. A new subscription points at
 * `endpointOrigin` with keys of its own, or is `prepared` (one of a test push service's).
 */
function fakePushManager(endpointOrigin: string, prepared?: TestPushSubscription): string {
  return `(() => {
    if (typeof PushManager === "undefined" || location.protocol !== "http:") return;
    const KEY = "test-fake-push-subscription";
    const read = () => JSON.parse(localStorage.getItem(KEY) ?? "null");
    const b64 = (bytes) => btoa(String.fromCharCode(...bytes))
      .replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
    const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
    class FakeSubscription {
      constructor(stored) {
        this.endpoint = stored.endpoint;
        this.expirationTime = null;
        this.options = {
          userVisibleOnly: true,
          applicationServerKey: Uint8Array.from(stored.key).buffer,
        };
        this.stored = stored;
      }
      toJSON() {
        const { endpoint, p256dh, auth } = this.stored;
        return { endpoint, expirationTime: null, keys: { p256dh, auth } };
      }
      async unsubscribe() {
        if (read()?.endpoint !== this.endpoint) return false;
        localStorage.removeItem(KEY);
        return true;
      }
    }
    PushManager.prototype.getSubscription = async function () {
      const stored = read();
      return stored ? new FakeSubscription(stored) : null;
    };
    PushManager.prototype.subscribe = async function ({ applicationServerKey }) {
      const key = [...new Uint8Array(applicationServerKey)];
      const stored = read();
      if (stored && same(stored.key, key)) return new FakeSubscription(stored);
      if (stored) {
        throw new DOMException("A subscription with a different key exists.", "InvalidStateError");
      }
      const prepared = ${JSON.stringify(prepared ?? null)};
      let fresh;
      if (prepared) {
        fresh = { endpoint: prepared.endpoint, key, ...prepared.keys };
      } else {
        const pair = await crypto.subtle.generateKey(
          { name: "ECDH", namedCurve: "P-256" }, true, ["deriveBits"]);
        const p256dh = b64(new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey)));
        const auth = b64(crypto.getRandomValues(new Uint8Array(16)));
        const endpoint = ${JSON.stringify(endpointOrigin)} + "/push/" + crypto.randomUUID();
        fresh = { endpoint, key, p256dh, auth };
      }
      localStorage.setItem(KEY, JSON.stringify(fresh));
      return new FakeSubscription(fresh);
    };
  })()`;
}

const storedFake = (page: Page) =>
  page.evaluate<{ endpoint: string; key: number[] } | null>(
    `JSON.parse(localStorage.getItem("test-fake-push-subscription") ?? "null")`,
  );

async function pushContext(
  browser: Browser,
  server: TestServer,
  endpointOrigin = PUSH_ORIGIN,
  prepared?: TestPushSubscription,
) {
  const context = await browser.newContext();
  await context.grantPermissions(["notifications"], { origin: server.url });
  await context.addInitScript(fakePushManager(endpointOrigin, prepared));
  return context;
}

Deno.test({
  name: "push: the subscription is registered, kept, renewed after a key change, turned off",
  ignore,
  async fn() {
    await using server = await startTestServer(PUSH_ON);
    await using browser = await launch();
    const context = await pushContext(browser, server);
    const page = await context.newPage();
    const errors = watchErrors(page);
    await openInbox(page, server, "kim");
    await buttonSays(page, "Turn on notifications");

    // Turn on: permission, worker, subscription, POST.
    const posted = page.waitForResponse((r) =>
      r.url().endsWith(SUBSCRIPTIONS) && r.request().method() === "POST"
    );
    await button(page).click();
    await buttonSays(page, "Notifications on");
    assert.equal(await button(page).getAttribute("aria-pressed"), "true");
    assert.equal((await posted).status(), 201);
    const first = await storedFake(page);
    assert.ok(first, "the browser holds a subscription");
    const [record] = await serverSubscriptions(server, "kim");
    assert.equal(record?.endpoint, first.endpoint);
    const key = await (await server.fetch(PUSH_KEY)).json();
    assert.equal(standardBase64(first.key), standardBase64(key.publicKey));
    assert.equal(await note(page).textContent(), "");

    // A page load keeps it (and registers it again: the same record).
    const again = page.waitForResponse((r) =>
      r.url().endsWith(SUBSCRIPTIONS) && r.request().method() === "POST"
    );
    await openInbox(page, server, "kim");
    await buttonSays(page, "Notifications on");
    assert.equal((await again).status(), 200);
    assert.deepEqual(await serverSubscriptions(server, "kim"), [record]);

    // A subscription made with another key (the server's key was rotated): made again.
    await page.evaluate(`(() => {
      const stored = JSON.parse(localStorage.getItem("test-fake-push-subscription"));
      stored.key = [4, ...stored.key.slice(1).reverse()];
      localStorage.setItem("test-fake-push-subscription", JSON.stringify(stored));
    })()`);
    await openInbox(page, server, "kim");
    await buttonSays(page, "Notifications on");
    await waitUntil(async () => {
      const items = await serverSubscriptions(server, "kim");
      return items.length === 1 && items[0].endpoint !== first.endpoint;
    }, "the old record is replaced by the new subscription");
    const renewed = await storedFake(page);
    assert.notEqual(renewed?.endpoint, first.endpoint);
    assert.deepEqual(renewed?.key, first.key, "made with the server's current key");
    assert.equal((await serverSubscriptions(server, "kim"))[0].endpoint, renewed?.endpoint);

    // Turn off: the record is deleted and the browser unsubscribed.
    await button(page).click();
    await buttonSays(page, "Turn on notifications");
    assert.equal(await button(page).getAttribute("aria-pressed"), "false");
    assert.deepEqual(await serverSubscriptions(server, "kim"), []);
    assert.equal(await storedFake(page), null);
    await inboxWorks(page, server, "kim");
    assert.deepEqual(errors, []);
    await context.close();
  },
});

Deno.test({
  name: "push: sign-out, or another user's inbox in the same browser, drops the subscription",
  ignore,
  async fn() {
    await using server = await startTestServer(PUSH_ON);
    await using browser = await launch();
    const context = await pushContext(browser, server);
    const page = await context.newPage();
    const errors = watchErrors(page);

    // Sign-out: the record is deleted, the browser unsubscribed, the token forgotten.
    await openInbox(page, server, "kim");
    await button(page).click();
    await buttonSays(page, "Notifications on");
    assert.equal((await serverSubscriptions(server, "kim")).length, 1);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.locator("#token-form").waitFor({ state: "visible", timeout: 5_000 });
    assert.ok(await page.locator("#inbox").isHidden());
    assert.equal(await page.evaluate("sessionStorage.getItem('alarmd-token')"), null);
    assert.deepEqual(await serverSubscriptions(server, "kim"), []);
    assert.equal(await storedFake(page), null);
    await waitUntil(
      () => server.server.connectionCount("kim") === 0,
      "kim's stream closes",
      BROWSER_MS,
    );

    // kim turns notifications on and leaves without signing out; lee opens an inbox in the same
    // browser: lee must not get kim's alarms, so the browser's subscription is dropped.
    await page.locator("#token-input").fill(await server.userToken("kim"));
    await page.getByRole("button", { name: "Open" }).click();
    await page.locator('#status[data-state="connected"]').waitFor({ timeout: 5_000 });
    await button(page).click();
    await buttonSays(page, "Notifications on");
    const kims = await storedFake(page);
    await page.close();
    const lee = await context.newPage();
    const leeErrors = watchErrors(lee);
    await openInbox(lee, server, "lee");
    await buttonSays(lee, "Turn on notifications");
    assert.equal(await storedFake(lee), null, "kim's subscription is dropped");
    assert.deepEqual(await serverSubscriptions(server, "lee"), []);
    // The push service answers 404/410 for it from now on, and alarmd then deletes kim's record.
    assert.equal((await serverSubscriptions(server, "kim"))[0]?.endpoint, kims?.endpoint);

    // lee turns them on: a subscription of lee's own.
    await button(lee).click();
    await buttonSays(lee, "Notifications on");
    const [record] = await serverSubscriptions(server, "lee");
    assert.equal(record?.endpoint, (await storedFake(lee))?.endpoint);
    assert.deepEqual(errors, []);
    assert.deepEqual(leeErrors, []);
    await context.close();
  },
});

Deno.test({
  name: "push: a refused permission or push service is shown, and the inbox keeps working",
  ignore,
  async fn() {
    await using server = await startTestServer(PUSH_ON);
    await using browser = await launch();

    // The user (here: headless Chromium, unasked) does not allow notifications.
    const denied = await browser.newContext();
    await denied.addInitScript(fakePushManager(PUSH_ORIGIN));
    const page = await denied.newPage();
    const errors = watchErrors(page);
    await openInbox(page, server, "kim");
    await button(page).click();
    await buttonSays(page, "Turn on notifications");
    assert.match(String(await note(page).textContent()), /not allowed|blocked/);
    assert.equal(await storedFake(page), null);
    await inboxWorks(page, server, "kim");
    assert.deepEqual(errors, []);
    await denied.close();

    // A push service the server does not send to: 400 endpoint_not_allowed.
    const elsewhere = await pushContext(browser, server, "https://push.example.net");
    const other = await elsewhere.newPage();
    const otherErrors = watchErrors(other, [/status of 400 .*push-subscriptions\)$/]);
    await openInbox(other, server, "kim");
    const refused = other.waitForResponse((r) => r.url().endsWith(SUBSCRIPTIONS));
    await button(other).click();
    await buttonSays(other, "Turn on notifications");
    const res = await refused;
    assert.equal(res.status(), 400);
    assert.equal((await res.json()).error.code, "endpoint_not_allowed");
    assert.match(String(await note(other).textContent()), /does not accept/);
    assert.equal(await storedFake(other), null, "the useless subscription is dropped");
    assert.deepEqual(await serverSubscriptions(server, "kim"), []);
    await inboxWorks(other, server, "kim");
    assert.ok(await other.getByRole("alert").isHidden(), "the inbox's own notice stays quiet");
    assert.deepEqual(otherErrors, []);
    await elsewhere.close();
  },
});

Deno.test({
  name: "push: an alarm for a user with no tab open reaches the worker as a notification",
  ignore,
  async fn() {
    await using pushService = await startTestPushService();
    await using server = await startTestServer({
      vapidSubject: "mailto:ops@example.com",
      pushAllowedOrigins: pushService.origin,
    });
    const prepared = await pushService.subscribe();
    await using browser = await launch();
    const context = await pushContext(browser, server, pushService.origin, prepared);
    const inbox = await context.newPage();
    const errors = watchErrors(inbox);
    await openInbox(inbox, server, "kim");
    await button(inbox).click();
    await buttonSays(inbox, "Notifications on");
    await inbox.close();
    await waitUntil(
      () => server.server.connectionCount("kim") === 0,
      "kim has no tab open",
      BROWSER_MS,
    );

    // alarmd encrypts the alarm's notification for the subscription and sends it.
    const notification = { title: "Ana commented", body: "Nice post!", url: "/docs", tag: "p7" };
    const res = await server.fetch("/api/v1/alarms", {
      method: "POST",
      token: await server.publisherToken(),
      json: { userId: "kim", type: "comment", notification },
    });
    assert.equal(res.status, 201, await res.clone().text());
    const alarm = await res.json();
    const [message] = await pushService.waitFor(1);
    assert.equal(message.subscriptionId, prepared.id);
    assert.deepEqual(pushService.problems, []);
    assert.deepEqual(JSON.parse(message.payload), {
      id: alarm.id,
      type: "comment",
      ...notification,
      createdAt: alarm.createdAt,
    });

    // The browser decrypts it and wakes the worker with it (here: through DevTools).
    const page = await context.newPage();
    errors.push(...watchErrors(page));
    await page.goto(`${server.url}/favicon.svg`); // a page of the origin, but no inbox
    const { deliver, detach } = await pushDeliverer(page, server);
    await deliver(message.payload);
    await waitUntil(
      async () => (await notifications(page)).length === 1,
      "a notification",
      BROWSER_MS,
    );
    assert.deepEqual(await notifications(page), [{
      title: notification.title,
      body: notification.body,
      tag: notification.tag,
      data: { url: "/docs", id: alarm.id },
    }]);
    await detach();
    assert.deepEqual(errors, []);
    await context.close();
  },
});

/** Bytes, or base64url text, as unpadded standard base64: to compare the two. */
function standardBase64(value: number[] | string): string {
  const text = typeof value === "string" ? value : btoa(String.fromCharCode(...value));
  return text.replaceAll("-", "+").replaceAll("_", "/").replace(/=+$/, "");
}
