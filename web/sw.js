// sw.js: the inbox's service worker (scope "/"). It shows the notifications alarmd pushes while
// no tab of the inbox is open (Web Push; web/inbox_push.js registers it and subscribes), and a
// click on one opens the alarm's `url`, or the inbox. Served with Cache-Control: no-cache, so a
// new version is picked up at the browser's next update check.

const INBOX = "/";
const VAPID_KEY = "/api/v1/push/vapid-public-key";
const GENERIC = { title: "alarmd", body: "You have a new alarm." };

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  const { title, options } = notificationFor(event.data);
  event.waitUntil(self.registration.showNotification(title, options));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(openTarget(notificationTarget(event.notification.data?.url)));
});

// The browser renewed (or dropped) the subscription: subscribe again with the server's current
// key (the old one when the server cannot be reached). This worker holds no token, so it cannot
// register the new subscription itself: open inbox tabs are told to, and every inbox registers
// the browser's subscription when it opens.
self.addEventListener("pushsubscriptionchange", (event) => {
  event.waitUntil(resubscribe(event.oldSubscription, event.newSubscription));
});

/**
 * The title and options of the notification for a push message. The decrypted payload is JSON
 * `{"id","type","title","body","url","tag","createdAt"}`; anything else (no payload, not JSON,
 * no title) still shows a generic notification, and this never throws.
 */
function notificationFor(data) {
  let payload = null;
  try {
    payload = JSON.parse(data?.text() ?? "");
  } catch {
    // Not JSON: the generic notification.
  }
  if (payload === null || typeof payload !== "object") payload = {};
  const text = (value, max) => (typeof value === "string" && value ? value.slice(0, max) : null);
  const title = text(payload.title, 120) ?? GENERIC.title;
  const options = {
    body: text(payload.body, 500) ?? (title === GENERIC.title ? GENERIC.body : ""),
    data: { url: text(payload.url, 2048), id: text(payload.id, 100) },
  };
  const tag = text(payload.tag, 64);
  if (tag) options.tag = tag;
  return { title, options };
}

/**
 * Where a click on a notification goes, as an absolute URL: its `url` when that is a path on
 * this origin or an https: URL (what alarmd accepts), else the inbox.
 */
function notificationTarget(url, origin = self.location.origin) {
  const inbox = new URL(INBOX, origin).href;
  if (typeof url !== "string") return inbox;
  let target;
  try {
    target = new URL(url, origin);
  } catch {
    return inbox;
  }
  // A path must stay a path: "//host", "/\host" or "/\t/host" would leave this origin.
  if (/^\/(?![/\\])/.test(url)) return target.origin === origin ? target.href : inbox;
  return target.protocol === "https:" && /^https:/i.test(url) ? target.href : inbox;
}

/**
 * Which open tab a click should focus (an index into `tabUrls`), or -1 to open a new one: a tab
 * that already shows the target, else, when the target is the inbox, any inbox tab.
 */
function tabFor(tabUrls, target, origin = self.location.origin) {
  const exact = tabUrls.indexOf(target);
  if (exact !== -1) return exact;
  const inbox = new URL(INBOX, origin);
  if (target !== inbox.href) return -1;
  return tabUrls.findIndex((url) => {
    const tab = new URL(url);
    return tab.origin === inbox.origin && tab.pathname === inbox.pathname;
  });
}

async function openTarget(target) {
  const tabs = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  const tab = tabs[tabFor(tabs.map((t) => t.url), target)];
  if (tab) {
    try {
      await tab.focus();
      return;
    } catch {
      // Not allowed to focus it: open a new tab instead.
    }
  }
  await self.clients.openWindow(target);
}

async function resubscribe(oldSubscription, newSubscription) {
  let key = oldSubscription?.options?.applicationServerKey ?? null;
  try {
    const res = await fetch(VAPID_KEY, { cache: "no-store" });
    if (res.status === 404) return; // push is off on the server now
    if (res.ok) key = fromBase64Url((await res.json()).publicKey);
  } catch {
    // Unreachable: the key the old subscription was made with.
  }
  if (!newSubscription && key) {
    await self.registration.pushManager.subscribe({
      userVisibleOnly: true,
      applicationServerKey: key,
    });
  }
  const tabs = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  for (const tab of tabs) tab.postMessage({ type: "alarmd:push-subscription-changed" });
}

function fromBase64Url(text) {
  const binary = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}
