// The inbox page: alarmd's own UI, built on the same alarmd-client.js apps can copy.
import { AlarmdClient } from "/alarmd-client.js";
import { setPushToken, setUpPush, signOutPush } from "/inbox_push.js";

const $ = (id) => document.getElementById(id);
const STATE_TEXT = {
  connecting: "connecting…",
  connected: "connected",
  reconnecting: "reconnecting…",
  offline: "offline",
  unauthorized: "token rejected",
  token_unavailable: "session expired",
  too_many_connections: "too many connections",
};

const REFUSED = "The server refused another stream; retrying.";
const EXPIRED = "Your session has expired. Paste a new token to go on where you left off.";

const params = new URLSearchParams(location.search);
let token = params.get("token") ?? sessionStorage.getItem("alarmd-token");
if (params.has("token")) {
  sessionStorage.setItem("alarmd-token", token);
  history.replaceState(null, "", location.pathname);
}

const alarms = new Map();
// The stream runs while a list request is in flight, and the list may have been read before
// changes the stream has already delivered: each reload records them and applies them again
// on top of its list, so a fresh alarm (or a read or delete) is never undone by a stale page.
const changesDuringReload = new Set();
let nextCursor = null;
let client = null;
/** The token expired and the form asks for a new one, while the client waits for it. */
let sessionExpired = false;
/** The client's state when the page last showed it. */
let shownState = null;

// Debug handle for the browser console and the end-to-end tests (tests/e2e/inbox_test.ts):
// `alarmdInbox.client` is the live AlarmdClient (state, unread, isLeader, lastEventId).
globalThis.alarmdInbox = {
  get client() {
    return client;
  },
};

if (token) open(token);
else showTokenForm();

$("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const value = $("token-input").value.trim();
  if (!value) return;
  sessionStorage.setItem("alarmd-token", value);
  $("token-form").hidden = true;
  if (sessionExpired && client && claimsOf(value).sub === claimsOf(token).sub) {
    // The same user again: the waiting stream goes on from the last alarm it saw (so does every
    // other tab of the inbox, which the client hands the token to), and nothing is reloaded.
    token = value;
    client.refreshToken().then(
      () => sessionExpired && resumeSession(),
      () => showExpired("That token has expired too. Paste a new one."),
    );
    return;
  }
  open(value);
});

/** The token expired: the list is hidden, the client waits, and the form asks for a new one. */
function showExpired(message = EXPIRED) {
  sessionExpired = true;
  sessionStorage.removeItem("alarmd-token");
  showTokenForm(message);
}

function resumeSession() {
  sessionExpired = false;
  $("token-form").hidden = true;
  $("inbox").hidden = false;
  notice("");
  setPushToken(token);
  render();
}

function showTokenForm(message) {
  $("token-form").hidden = false;
  $("inbox").hidden = true;
  if (message) notice(message);
  $("token-input").focus();
}

/**
 * What the client calls when the stream's token expired or was refused. The inbox cannot mint
 * tokens: it gives back the one it has while that is still valid, and otherwise fails, so the
 * client says "token_unavailable" and the page asks the user to paste a new token.
 */
function getToken() {
  if (!token) throw new Error("signed out");
  if (!isValid(token)) throw new Error("the session expired");
  return token;
}

/** Whether the token's `exp` is still ahead (by this browser's clock). */
function isValid(value) {
  const exp = claimsOf(value).exp;
  return typeof exp !== "number" || exp * 1000 > Date.now();
}

/** A JWT's claims, read without verifying (the server does); {} when unreadable. */
function claimsOf(value) {
  try {
    const base64 = value.split(".")[1].replaceAll("-", "+").replaceAll("_", "/");
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes)) ?? {};
  } catch {
    return {};
  }
}

function open(value) {
  token = value;
  sessionExpired = false;
  client?.stop();
  client = new AlarmdClient({ token, getToken });
  // A new token may be another user's: show nothing of the previous one.
  alarms.clear();
  nextCursor = null;
  $("inbox").hidden = false;
  client.addEventListener("state", render);
  // A newer token of this user, pasted in another tab: use it here too.
  client.addEventListener("token", () => {
    token = client.token;
    sessionStorage.setItem("alarmd-token", token);
    if (sessionExpired) resumeSession();
    else setPushToken(token);
  });
  client.addEventListener("connect", (e) => {
    // First connect, or the server says our view has a gap: load the list afresh.
    if (alarms.size === 0 || e.detail.replay === "reset") void reload();
  });
  for (const type of ["alarm", "read", "deleted"]) {
    client.addEventListener(type, (e) => {
      const change = { type, detail: e.detail };
      for (const changes of changesDuringReload) changes.push(change);
      apply(change);
      render();
    });
  }
  client.start();
  void reload();
  void setUpPush(token);
}

// Sign-out forgets this tab's token and stops this browser's notifications for the user, so a
// shared browser does not show the next person the previous user's alarms. (A token that is
// rejected or expires is forgotten too, but keeps them: getting alarms with no tab open is the
// point of notifications, and the next user's inbox drops a subscription that is not theirs.)
$("sign-out").addEventListener("click", async () => {
  $("sign-out").disabled = true;
  await signOutPush();
  sessionStorage.removeItem("alarmd-token");
  client?.stop();
  client = null;
  token = null;
  sessionExpired = false;
  alarms.clear();
  nextCursor = null;
  notice("");
  render();
  $("token-input").value = "";
  $("sign-out").disabled = false;
  showTokenForm();
});

/** Applies one live change (an `alarm`, `read` or `deleted` event) to the list. */
function apply({ type, detail }) {
  if (type === "alarm") alarms.set(detail.id, detail);
  else if (type === "read") {
    for (const id of detail.ids) {
      const a = alarms.get(id);
      if (a && !a.readAt) alarms.set(id, { ...a, readAt: new Date().toISOString() });
    }
  } else if (type === "deleted") {
    for (const id of detail.ids) alarms.delete(id);
  }
}

async function reload() {
  const changes = [];
  changesDuringReload.add(changes);
  try {
    const page = await client.list({ limit: 20 });
    alarms.clear();
    for (const a of page.items) alarms.set(a.id, a);
    for (const change of changes) apply(change);
    changesDuringReload.delete(changes);
    nextCursor = page.nextCursor;
    // A stream that starts after this list (say, once a refused one is let in) replays the rest.
    client.resumeFrom(page.items[0]?.id);
    if (client.unread === null) client.unread = await client.unreadCount();
    notice("");
    render();
  } catch (error) {
    handle(error);
  } finally {
    changesDuringReload.delete(changes);
  }
}

$("more").addEventListener("click", async () => {
  if (!nextCursor) return;
  try {
    const page = await client.list({ limit: 20, cursor: nextCursor });
    for (const a of page.items) alarms.set(a.id, a);
    nextCursor = page.nextCursor;
    render();
  } catch (error) {
    handle(error);
  }
});

$("read-all").addEventListener("click", () => client.markAllRead().catch(handle));
$("bell").addEventListener("click", () => $("inbox-title").scrollIntoView({ behavior: "smooth" }));

$("list").addEventListener("click", (e) => {
  const button = e.target.closest("button");
  const item = e.target.closest("li[data-id]");
  if (!button || !item) return;
  const id = item.dataset.id;
  if (button.classList.contains("mark")) client.markRead(id).catch(handle);
  if (button.classList.contains("delete")) {
    // The stream's `deleted` event removes it in every tab; remove here at once too.
    client.delete(id).then(() => {
      alarms.delete(id);
      render();
    }, handle);
  }
});

function handle(error) {
  // Only a 401 says the token is bad. A 503 (auth_unavailable: the server cannot reach its
  // identity provider) says nothing against it: keep it, the stream retries on its own.
  if (error?.status === 401 && client && !isValid(token)) {
    showExpired(); // the client waits for a new token of this user
    return;
  }
  if (error?.status === 401) {
    sessionStorage.removeItem("alarmd-token");
    client?.stop();
    showTokenForm("That token was rejected or has expired. Paste a new one.");
    return;
  }
  if (error?.code === "auth_unavailable") {
    notice("The server cannot check sign-ins right now; retrying.");
    return;
  }
  if (error?.status !== 404) notice(error?.message ?? String(error));
}

function notice(text) {
  $("notice").textContent = text;
  $("notice").hidden = !text;
}

function render() {
  const state = client?.state ?? "offline";
  $("status").dataset.state = state;
  $("status-text").textContent = STATE_TEXT[state] ?? state;
  if (state === "unauthorized") handle({ status: 401 });
  // Once as the client finds it cannot get a token: not again while a pasted one is taken up.
  if (state === "token_unavailable" && shownState !== state) showExpired();
  shownState = state;
  if (state === "too_many_connections") notice(REFUSED);
  else if ($("notice").textContent === REFUSED) notice(""); // let in at last

  const unread = client?.unread ?? 0;
  $("badge").textContent = unread > 99 ? "99+" : String(unread);
  $("badge").hidden = unread === 0;
  $("bell").setAttribute("aria-label", `Notifications, ${unread} unread`);
  document.title = unread > 0 ? `(${unread}) alarmd inbox` : "alarmd inbox";

  const sorted = [...alarms.values()].sort((a, b) => (a.id < b.id ? 1 : -1));
  const list = $("list");
  const template = $("item");
  const items = sorted.map((a) => {
    const li = template.content.firstElementChild.cloneNode(true);
    li.dataset.id = a.id;
    li.classList.toggle("unread", !a.readAt);
    li.querySelector(".type").textContent = a.type;
    li.querySelector(".text").textContent = describe(a);
    const time = li.querySelector(".time");
    time.dateTime = a.createdAt;
    time.textContent = relative(a.createdAt);
    time.title = new Date(a.createdAt).toLocaleString();
    li.querySelector(".mark").setAttribute("aria-label", `Mark "${describe(a)}" read`);
    li.querySelector(".delete").setAttribute("aria-label", `Delete "${describe(a)}"`);
    return li;
  });
  list.replaceChildren(...items);
  $("empty").hidden = items.length > 0;
  $("more").hidden = !nextCursor;
}

function describe(alarm) {
  const d = alarm.data ?? {};
  for (const key of ["text", "message", "title", "body"]) {
    if (typeof d[key] === "string" && d[key]) return d[key];
  }
  const json = JSON.stringify(d);
  return json === "{}" ? alarm.type : json;
}

function relative(iso) {
  const seconds = Math.round((Date.now() - Date.parse(iso)) / 1000);
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  if (Math.abs(seconds) < 45) return rtf.format(-seconds, "second");
  const minutes = Math.round(seconds / 60);
  if (Math.abs(minutes) < 45) return rtf.format(-minutes, "minute");
  const hours = Math.round(minutes / 60);
  if (Math.abs(hours) < 22) return rtf.format(-hours, "hour");
  return rtf.format(-Math.round(hours / 24), "day");
}

setInterval(render, 30_000);
