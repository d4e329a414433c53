// inbox_push.js: the inbox's "Turn on notifications" button. It registers the service worker
// (web/sw.js), subscribes with alarmd's VAPID key and registers the subscription, so that alarms
// reach the user while no tab is open. The subscription belongs to the browser, not to a tab:
// the user who made it is kept in localStorage, and an inbox opened by anyone else (a shared
// browser) drops it rather than show them the previous user's alarms.

const $ = (id) => document.getElementById(id);
const VAPID_KEY = "/api/v1/push/vapid-public-key";
const SUBSCRIPTIONS = "/api/v1/users/push-subscriptions";
const OWNER = "alarmd-push-owner";
/** A browser whose push service cannot be reached may never answer a subscribe. */
const SUBSCRIBE_TIMEOUT_MS = 20_000;
const TEXT = {
  off: "Turn on notifications",
  on: "Notifications on",
  busy: "Turning on…",
  stopping: "Turning off…",
};

const supported = "serviceWorker" in navigator && "PushManager" in globalThis &&
  "Notification" in globalThis;
let token = null;
/** The server's VAPID public key (65 bytes), once it said push is on. */
let publicKey = null;
let state = "off";
/** One change at a time: a sign-out waits for the check a page load started, and so on. */
let queue = Promise.resolve();

$("push").addEventListener("click", () => {
  note("");
  if (state === "off") void run("busy", turnOn);
  else if (state === "on") void run("stopping", turnOff);
});

if (supported) {
  // web/sw.js asks open tabs to register a subscription the browser renewed.
  navigator.serviceWorker.addEventListener("message", (e) => {
    if (e.data?.type === "alarmd:push-subscription-changed" && token) void run("busy", sync);
  });
  navigator.serviceWorker.startMessages();
}

/**
 * Shows the button for this token's user when the browser can do push and the server has it
 * on, and brings the browser's subscription in line: kept (and registered again) if this user
 * made it with the server's current key, made again after a key change, dropped if someone
 * else made it. Call again when the token changes.
 */
export async function setUpPush(value) {
  token = value;
  $("push").hidden = true;
  note("");
  if (!supported) return;
  try {
    const res = await fetch(VAPID_KEY);
    if (!res.ok) return; // 404 push_disabled: no button
    publicKey = fromBase64Url((await res.json()).publicKey);
  } catch {
    return; // server unreachable: no button this time
  }
  if (token !== value) return;
  $("push").hidden = false;
  await run("busy", sync);
}

/**
 * A new token of the same user, after the old one expired: the requests that follow use it. The
 * subscription is the user's, not the token's, so nothing else changes.
 */
export function setPushToken(value) {
  if (token !== null) token = value;
}

/**
 * Sign-out: the browser stops receiving this user's alarms (the server's record is deleted and
 * the subscription dropped). Never throws; the record goes anyway once the push service says
 * the subscription is gone.
 */
export async function signOutPush() {
  $("push").hidden = true;
  if (supported) await run("stopping", turnOff);
  token = null;
}

function run(busy, action) {
  queue = queue.then(async () => {
    setState(busy);
    try {
      setState(await action());
    } catch (error) {
      note(error?.message ?? String(error));
      setState((await subscription().catch(() => null)) && isMine() ? "on" : "off");
    }
  });
  return queue;
}

async function sync() {
  const current = await subscription();
  if (!current) return "off";
  if (!isMine() || Notification.permission !== "granted") {
    await drop(current, isMine());
    return "off";
  }
  if (!sameKey(current.options.applicationServerKey, publicKey)) {
    // The server's key changed: a subscription made with the old one is renewed.
    await drop(current, true);
    return await subscribe(await navigator.serviceWorker.ready);
  }
  // Registered again, in case the server lost it; only a refusal turns the button off.
  try {
    await register(current);
  } catch (error) {
    if (error.code !== "endpoint_not_allowed") return "on";
    await drop(current, false);
    throw error;
  }
  return "on";
}

async function turnOn() {
  const permission = await Notification.requestPermission();
  if (permission !== "granted") {
    note(
      permission === "denied"
        ? "Notifications are blocked for this site in the browser's settings."
        : "Notifications were not allowed.",
    );
    return "off";
  }
  await navigator.serviceWorker.register("/sw.js", { scope: "/" });
  const registration = await navigator.serviceWorker.ready;
  const current = await registration.pushManager.getSubscription();
  if (current && !sameKey(current.options.applicationServerKey, publicKey)) {
    await drop(current, isMine());
  }
  return await subscribe(registration);
}

async function turnOff() {
  const current = await subscription();
  if (current) await drop(current, isMine());
  localStorage.removeItem(OWNER);
  return "off";
}

async function subscribe(registration) {
  let created;
  let timer;
  try {
    created = await Promise.race([
      registration.pushManager.subscribe({
        userVisibleOnly: true,
        applicationServerKey: publicKey,
      }),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error("its push service did not answer")),
          SUBSCRIBE_TIMEOUT_MS,
        );
      }),
    ]);
  } catch (error) {
    throw new Error(`This browser could not subscribe to notifications: ${error.message}.`);
  } finally {
    clearTimeout(timer);
  }
  try {
    await register(created);
  } catch (error) {
    await created.unsubscribe().catch(() => {});
    throw error;
  }
  return "on";
}

async function register(subscription) {
  try {
    await api("POST", SUBSCRIPTIONS, subscription.toJSON());
  } catch (error) {
    if (error.code === "endpoint_not_allowed") {
      error.message = "The server does not accept this browser's push service.";
    }
    throw error;
  }
  localStorage.setItem(OWNER, subjectOf(token));
}

/** Unsubscribes, and first deletes the server's record when it is this user's (best effort). */
async function drop(subscription, deleteRecord) {
  if (deleteRecord) {
    try {
      const { items } = await api("GET", SUBSCRIPTIONS);
      const record = items.find((r) => r.endpoint === subscription.endpoint);
      if (record) await api("DELETE", `${SUBSCRIPTIONS}/${encodeURIComponent(record.id)}`);
    } catch {
      // The push service answers 404/410 for a dropped subscription: the server deletes it then.
    }
  }
  await subscription.unsubscribe().catch(() => {});
  localStorage.removeItem(OWNER);
}

async function subscription() {
  const registration = await navigator.serviceWorker.getRegistration("/");
  return (await registration?.pushManager.getSubscription()) ?? null;
}

function isMine() {
  const owner = localStorage.getItem(OWNER);
  return !!token && !!owner && owner === subjectOf(token);
}

async function api(method, path, body) {
  const headers = { authorization: `Bearer ${token}` };
  if (body) headers["content-type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body && JSON.stringify(body) });
  if (!res.ok) {
    const answer = await res.json().catch(() => ({}));
    const error = new Error(answer?.error?.message ?? `HTTP ${res.status}`);
    error.status = res.status;
    error.code = answer?.error?.code;
    throw error;
  }
  return res.status === 204 ? null : res.json();
}

function setState(next) {
  state = next;
  const button = $("push");
  button.textContent = TEXT[next];
  button.disabled = next === "busy" || next === "stopping";
  button.setAttribute("aria-pressed", String(next === "on" || next === "stopping"));
  button.title = next === "on" ? "Turn notifications off" : "";
}

function note(text) {
  $("push-note").textContent = text;
}

function sameKey(a, b) {
  if (!a || !b) return false;
  const x = new Uint8Array(a);
  return x.length === b.length && x.every((byte, i) => byte === b[i]);
}

function fromBase64Url(text) {
  const binary = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

/** The token's `sub` (as alarmd-client.js reads it): whose subscription this browser holds. */
function subjectOf(value) {
  try {
    const payload = value.split(".")[1].replaceAll("-", "+").replaceAll("_", "/");
    return JSON.parse(atob(payload)).sub ?? "";
  } catch {
    return "";
  }
}
