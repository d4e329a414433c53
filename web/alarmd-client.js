// alarmd-client.js: a dependency-free browser client for alarmd. Copy it into your app.
//
//   import { AlarmdClient } from "/alarmd-client.js";
//   const client = new AlarmdClient({ token });
//   client.addEventListener("alarm", (e) => console.log(e.detail));      // a new alarm
//   client.addEventListener("read", (e) => console.log(e.detail.ids));   // read in any tab
//   client.addEventListener("deleted", (e) => console.log(e.detail.ids));
//   client.addEventListener("state", () => console.log(client.state, client.unread));
//   client.start();
//   const { items } = await client.list();  // if you show a list loaded over REST,
//   client.resumeFrom(items[0]?.id);         // the stream replays whatever came after it
//
// Browsers allow ~6 HTTP/1.1 connections per origin and every stream costs the server memory,
// so all tabs of one browser share ONE EventSource: the tab that holds a Web Lock is the leader,
// opens the stream and relays every event to the other tabs over a BroadcastChannel. When the
// leader tab closes, its lock is released, the next tab takes over and reconnects with the last
// alarm id any tab saw (`lastEventId`; before any alarm arrived, the newest one the server had
// when the stream began), so nothing is lost and nothing repeats.
//
// States: "connecting", "connected", "reconnecting", "offline", "unauthorized" (token rejected
// or expired: get a new one), "too_many_connections" (the server refused another stream).

const SUBSCRIBE = "/api/v1/users/alarm/subscribe";

export class AlarmdClient extends EventTarget {
  /**
   * @param {{ token: string, baseUrl?: string, share?: boolean }} options
   *   share: false gives this tab its own stream (no leader election).
   */
  constructor({ token, baseUrl = "", share = true }) {
    super();
    this.token = token;
    this.baseUrl = baseUrl;
    this.share = share && typeof BroadcastChannel !== "undefined" && !!navigator.locks;
    this.state = "connecting";
    this.unread = null;
    this.lastEventId = null;
    this.isLeader = false;
    this.tabId = crypto.randomUUID();
    this._source = null;
    this._stopped = true;
    this._seen = new Set();
    this._retryTimer = null;
    this._lockAbort = null;
    this._channel = null;
  }

  /** Opens (or joins) the stream. */
  start() {
    if (!this._stopped) return;
    this._stopped = false;
    if (!this.share) {
      this._lead();
      return;
    }
    const key = `alarmd:${this.baseUrl}:${subjectOf(this.token)}`;
    this._channel = new BroadcastChannel(key);
    this._channel.onmessage = (e) => this._onRelay(e.data);
    this._channel.postMessage({ kind: "hello", from: this.tabId });
    this._lockAbort = new AbortController();
    navigator.locks.request(key, { signal: this._lockAbort.signal }, () => {
      if (this._stopped) return;
      // Hold the lock for as long as this tab lives (or until stop()).
      return new Promise((release) => {
        this._releaseLock = release;
        this._lead();
      });
    }).catch(() => {/* aborted by stop() */});
  }

  /** Closes the stream (and hands leadership to another tab). */
  stop() {
    this._stopped = true;
    clearTimeout(this._retryTimer);
    this._source?.close();
    this._source = null;
    this.isLeader = false;
    this._lockAbort?.abort();
    this._releaseLock?.();
    this._releaseLock = null;
    this._channel?.close();
    this._channel = null;
  }

  /**
   * The newest alarm id the app already shows (say, the first item of `list()`): a stream that
   * starts later replays everything after it, so nothing created in between is missed.
   */
  resumeFrom(id) {
    this._advance(id);
  }

  // ---- REST -------------------------------------------------------------------------------

  /** One page, newest first: `{ items, nextCursor }`. */
  list({ limit = 20, cursor, unread } = {}) {
    const q = new URLSearchParams({ limit: String(limit) });
    if (cursor) q.set("cursor", cursor);
    if (unread) q.set("unread", "true");
    return this._request("GET", `/api/v1/users/alarms?${q}`);
  }

  async unreadCount() {
    return (await this._request("GET", "/api/v1/users/alarms/unread-count")).unread;
  }

  markRead(id) {
    return this._request("POST", `/api/v1/users/alarms/${encodeURIComponent(id)}/read`);
  }

  markAllRead() {
    return this._request("POST", "/api/v1/users/alarms/read-all");
  }

  delete(id) {
    return this._request("DELETE", `/api/v1/users/alarms/${encodeURIComponent(id)}`);
  }

  async _request(method, path) {
    const res = await fetch(this.baseUrl + path, {
      method,
      headers: { authorization: `Bearer ${this.token}` },
    });
    if (res.status === 401) this._setState("unauthorized");
    if (!res.ok) {
      const body = await res.json().catch(() => ({}));
      const error = new Error(body?.error?.message ?? `HTTP ${res.status}`);
      error.status = res.status;
      error.code = body?.error?.code;
      throw error;
    }
    return res.status === 204 ? null : res.json();
  }

  // ---- the stream (leader only) -----------------------------------------------------------

  _lead() {
    this.isLeader = true;
    this._broadcast({ kind: "leader", from: this.tabId });
    this._open();
  }

  _open() {
    if (this._stopped) return;
    const q = new URLSearchParams({ access_token: this.token });
    if (this.lastEventId) q.set("lastEventId", this.lastEventId);
    const source = new EventSource(`${this.baseUrl}${SUBSCRIBE}?${q}`);
    this._source = source;
    // Where the browser's own reconnect resumes: the last `id:` this source saw (sent as
    // Last-Event-ID), else the `lastEventId` in its URL.
    let resumesFrom = this.lastEventId;
    this._setState(this.state === "connected" ? "reconnecting" : this.state);
    for (const type of ["connect", "alarm", "read", "deleted"]) {
      source.addEventListener(type, (e) => {
        if (e.lastEventId) resumesFrom = e.lastEventId;
        const data = JSON.parse(e.data);
        const message = { kind: "event", type, data, id: e.lastEventId || null };
        this._handle(message);
        this._broadcast(message);
      });
    }
    source.onerror = () => {
      if (this._source !== source) return;
      if (source.readyState === EventSource.CONNECTING) {
        this._setState(navigator.onLine === false ? "offline" : "reconnecting");
        if (this.lastEventId !== resumesFrom) {
          // The browser's reconnect would not ask for what came after our newest alarm (no
          // alarm arrived on this source yet): reopen with it, so the server replays the gap.
          source.close();
          this._source = null;
          this._open();
        }
        // Otherwise the browser reconnects by itself, sending Last-Event-ID.
        return;
      }
      // CLOSED: the server answered something other than a stream. Find out what.
      source.close();
      this._source = null;
      void this._diagnose();
    };
  }

  async _diagnose() {
    const controller = new AbortController();
    let status = 0;
    let retryAfter = 0;
    try {
      const res = await fetch(`${this.baseUrl}${SUBSCRIBE}`, {
        headers: { authorization: `Bearer ${this.token}` },
        signal: controller.signal,
      });
      status = res.status;
      retryAfter = Number(res.headers.get("retry-after")) || 0;
    } catch {
      status = 0;
    } finally {
      controller.abort();
    }
    if (this._stopped) return;
    if (status === 401) {
      this._setState("unauthorized");
      return;
    }
    let delay = 3000;
    if (status === 429 || status === 503) {
      this._setState("too_many_connections");
      delay = Math.max(1, retryAfter) * 1000;
    } else {
      this._setState(navigator.onLine === false || status === 0 ? "offline" : "reconnecting");
    }
    this._retryTimer = setTimeout(() => this._open(), delay);
  }

  // ---- events, from our own stream or relayed by the leader -------------------------------

  _handle({ type, data, id }) {
    if (type === "connect") {
      this.unread = data.unread;
      // Alarms up to lastId are already counted in `unread`; only newer ones add to it.
      this._countedUpTo = data.lastId ?? "";
      // Everything after lastId comes on this stream: a later stream (a reconnect, or another
      // tab taking over) resumes there even if no alarm arrives in between. After a "reset" the
      // server could not resume from our id (the app reloads its list): start over from lastId.
      if (data.replay === "reset") this.lastEventId = data.lastId ?? null;
      else this._advance(data.lastId);
      this._setState("connected");
      this._emit("connect", data);
      return;
    }
    if (type === "alarm") {
      if (this._seen.has(data.id)) return;
      this._seen.add(data.id);
      if (this._seen.size > 5000) this._seen = new Set([...this._seen].slice(-1000));
      this._advance(id);
      if (data.readAt === null && this.unread !== null && data.id > (this._countedUpTo ?? "")) {
        this.unread++;
      }
      this._emit("alarm", data);
      this._emit("state");
      return;
    }
    this.unread = data.unread;
    this._emit(type, data);
    this._emit("state");
  }

  _onRelay(message) {
    if (this.isLeader) {
      // A new tab asks for the current state: tell it.
      if (message.kind === "hello") {
        this._broadcast({
          kind: "snapshot",
          state: this.state,
          unread: this.unread,
          lastEventId: this.lastEventId,
        });
      }
      return;
    }
    if (message.kind === "event") this._handle(message);
    else if (message.kind === "state") this._setState(message.state);
    else if (message.kind === "snapshot") {
      this._advance(message.lastEventId);
      if (this.unread === null) this.unread = message.unread;
      this._setState(message.state);
    }
  }

  /** Moves the resume point forward (alarm ids sort in creation order). */
  _advance(id) {
    if (id && (this.lastEventId === null || id > this.lastEventId)) this.lastEventId = id;
  }

  _broadcast(message) {
    this._channel?.postMessage(message);
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    if (this.isLeader) this._broadcast({ kind: "state", state });
    this._emit("state");
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/** The token's `sub`, so that two users in one browser never share a stream. */
function subjectOf(token) {
  try {
    const payload = token.split(".")[1].replaceAll("-", "+").replaceAll("_", "/");
    return JSON.parse(atob(payload)).sub ?? "";
  } catch {
    return "";
  }
}
