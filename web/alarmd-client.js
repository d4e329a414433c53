// alarmd-client.js: a dependency-free browser client for alarmd. Copy it into your app.
//
//   import { AlarmdClient } from "/alarmd-client.js";
//   const client = new AlarmdClient({ getToken: () => fetchTokenFromYourBackend() });
//   // or, with a token that never needs renewing: new AlarmdClient({ token })
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
// Tokens expire, and the server ends a stream when its token does. With `getToken` (sync or
// async), the client asks for a new token when that happens, or when the server answers 401,
// and reconnects at once with the last alarm id it saw, so nothing is lost. The server sends no
// event before it ends a stream, so the client tells an expiry by the token's own `exp`: a stream
// that ends within EXPIRY_SLACK_MS of it ended for it (a client clock further behind takes one
// more round: the reconnect with the old token is refused with 401, which also gets a new one).
// While getToken() fails, throws or returns nothing, the state is "token_unavailable" and a
// "tokenerror" event says why; it is asked again with backoff, or at once by refreshToken().
// A tab that gets a new token hands it to the client's other tabs (same user, later `exp`).
//
// States: "connecting", "connected", "reconnecting", "offline", "unauthorized" (token rejected,
// and no other one: get a new one), "token_unavailable" (getToken() cannot give one now),
// "too_many_connections" (the server refused another stream).

const SUBSCRIBE = "/api/v1/users/alarm/subscribe";
/** A stream that ends this close to its token's `exp` (or after it) ended because of it. */
const EXPIRY_SLACK_MS = 5_000;
/** getToken() is asked again after 1 s, 2 s, 4 s, … up to 30 s while it cannot give a token. */
const TOKEN_RETRY_MS = 1_000;
const TOKEN_RETRY_MAX_MS = 30_000;

/** The lowest alarm id: as `lastEventId` it means "nothing seen yet". */
const ULID_ZERO = "0".repeat(26);

export class AlarmdClient extends EventTarget {
  /**
   * @param {{
   *   token?: string,
   *   getToken?: () => string | Promise<string>,
   *   baseUrl?: string,
   *   share?: boolean,
   * }} options
   *   token: the token to start with (without getToken, the only one: a 401 ends the stream).
   *   getToken: gives a token of the same user when there is none yet, when the stream's expired
   *     and when the server refused one.
   *   share: false gives this tab its own stream (no leader election).
   */
  constructor({ token, getToken, baseUrl = "", share = true } = {}) {
    super();
    if (!token && typeof getToken !== "function") {
      throw new TypeError("AlarmdClient needs a token or a getToken function");
    }
    this.token = token || null;
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
    this._getToken = typeof getToken === "function" ? getToken : null;
    this._sub = this.token === null ? null : subjectOf(this.token);
    /** The getToken() call under way, shared by whoever needs a token meanwhile. */
    this._tokenPending = null;
    /** While the stream waits for a token: the one the server refused, and what to do next. */
    this._waiting = null;
    this._tokenFailures = 0;
    /** 401s in a row since the last stream was let in. */
    this._refusals = 0;
  }

  /** Opens (or joins) the stream. */
  start() {
    if (!this._stopped) return;
    this._stopped = false;
    if (this.token === null) void this._awaitToken(null, () => this._join());
    else this._join();
  }

  /**
   * Asks getToken() for a token now (say, once the user signed in again). A stream waiting for
   * one reconnects with it at once, and the client's other tabs take it up. Resolves to it.
   */
  async refreshToken() {
    if (!this._getToken) throw new Error("refreshToken() needs the getToken option");
    const token = await this._fetchToken();
    this._resume(token);
    return token;
  }

  _join() {
    if (this._stopped) return;
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
    this._waiting = null;
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
    const send = (token) =>
      fetch(this.baseUrl + path, { method, headers: { authorization: `Bearer ${token}` } });
    const token = this.token ?? await this._fetchToken();
    let res = await send(token);
    if (res.status === 401 && this._getToken) {
      // Expired (or revoked) since: try once more with a new token, if there is one.
      const fresh = this.token !== token ? this.token : await this._fetchToken().catch(() => token);
      if (fresh !== token) {
        await res.body?.cancel();
        res = await send(fresh);
      }
    }
    if (res.status === 401 && !this._getToken) this._setState("unauthorized");
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
    const token = this.token;
    const q = new URLSearchParams({ access_token: token });
    if (this.lastEventId) q.set("lastEventId", this.lastEventId);
    const source = new EventSource(`${this.baseUrl}${SUBSCRIBE}?${q}`);
    this._source = source;
    // Where the browser's own reconnect resumes: the last `id:` this source saw (sent as
    // Last-Event-ID), else the `lastEventId` in its URL.
    let resumesFrom = this.lastEventId;
    /** The server let this source in at least once. */
    let admitted = false;
    this._setState(this.state === "connected" ? "reconnecting" : this.state);
    for (const type of ["connect", "alarm", "read", "deleted"]) {
      source.addEventListener(type, (e) => {
        if (type === "connect") {
          admitted = true;
          this._refusals = 0;
          this._tokenFailures = 0;
        }
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
        const expired = !!this._getToken && admitted && expiresWithin(token, EXPIRY_SLACK_MS);
        if (expired || this.token !== token) {
          // The server ended the stream because its token expired: the browser's own reconnect
          // would be refused. Reconnect at once with a new token (and the last alarm id). Or
          // there is a new token already (from another tab, or a REST call): use it.
          source.close();
          this._source = null;
          this._setState("reconnecting");
          if (this.token !== token) this._open();
          else void this._awaitToken(null, () => this._open());
          return;
        }
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
      void this._diagnose(token);
    };
  }

  async _diagnose(token) {
    const controller = new AbortController();
    let status = 0;
    let retryAfter = 0;
    try {
      const res = await fetch(`${this.baseUrl}${SUBSCRIBE}`, {
        headers: { authorization: `Bearer ${token}` },
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
      if (this.token !== token) {
        // Another tab (or a REST call) got a new token meanwhile.
        this._open();
        return;
      }
      if (!this._getToken) {
        this._setState("unauthorized");
        return;
      }
      // Refused (expired, or revoked): a new token at once; if the server keeps refusing new
      // tokens too, wait longer each time rather than hammer it.
      const reopen = () => this._awaitToken(token, () => this._open());
      const refusals = this._refusals++;
      if (refusals === 0) {
        void reopen();
        return;
      }
      this._setState("unauthorized");
      this._waiting = { rejected: token, next: () => this._open() };
      this._retryTimer = setTimeout(reopen, backoff(refusals - 1));
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

  // ---- tokens ------------------------------------------------------------------------------

  /**
   * Gets a token other than `rejected` from getToken(), then calls `next`. Until it can, the
   * state says why ("token_unavailable", or "unauthorized" while getToken() keeps giving the
   * refused token), a "tokenerror" event carries the error, and it asks again with backoff; a
   * token from refreshToken() or from another tab ends the wait at once.
   */
  async _awaitToken(rejected, next) {
    if (this._stopped) return;
    clearTimeout(this._retryTimer);
    const wait = { rejected, next };
    this._waiting = wait;
    let error;
    let state = "token_unavailable";
    try {
      const token = await this._fetchToken();
      if (token !== rejected) {
        this._resume(token);
        return;
      }
      error = new Error("getToken() gave the token the server refused");
      state = "unauthorized";
    } catch (e) {
      error = e;
    }
    if (this._waiting !== wait || this._stopped) return;
    const retryInMs = backoff(this._tokenFailures++);
    this._setState(state);
    this._emit("tokenerror", { error, retryInMs });
    this._retryTimer = setTimeout(() => this._awaitToken(rejected, next), retryInMs);
  }

  /** A token arrived while the stream waited for one: go on with it. */
  _resume(token) {
    const wait = this._waiting;
    if (!wait || this._stopped || token === wait.rejected) return;
    this._waiting = null;
    clearTimeout(this._retryTimer);
    if (this.state === "token_unavailable" || this.state === "unauthorized") {
      this._setState("reconnecting");
    }
    wait.next();
  }

  /** One getToken() call at a time; what it gives becomes this client's token. */
  _fetchToken() {
    if (!this._getToken) return Promise.resolve(this.token);
    if (!this._tokenPending) {
      // getToken() may throw at once: the call is over only when this promise settles.
      const pending = this._callGetToken();
      const done = () => {
        if (this._tokenPending === pending) this._tokenPending = null;
      };
      this._tokenPending = pending;
      pending.then(done, done);
    }
    return this._tokenPending;
  }

  async _callGetToken() {
    const token = await this._getToken();
    if (typeof token !== "string" || token === "") throw new Error("getToken() gave no token");
    this._useToken(token, true);
    return token;
  }

  /** Makes `token` this client's: REST calls and the next stream use it. */
  _useToken(token, share) {
    const sub = subjectOf(token);
    if (this._sub !== null && sub !== this._sub) {
      throw new Error("getToken() gave a token of another user: start a new AlarmdClient");
    }
    this._sub = sub;
    if (token === this.token) return;
    this.token = token;
    if (share) this._broadcast({ kind: "token", token });
    this._emit("token");
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
      // A user with no alarm yet resumes from the lowest id, so that one created while this tab
      // reconnects is replayed rather than missed.
      if (data.replay === "reset") this.lastEventId = data.lastId ?? ULID_ZERO;
      else this._advance(data.lastId ?? ULID_ZERO);
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
    if (message.kind === "token") {
      // Another tab got a newer token of this user: use it, and reconnect if waiting for one.
      const newer = expiryOf(message.token) > expiryOf(this.token ?? "");
      if (!newer || subjectOf(message.token) !== this._sub) return;
      this._useToken(message.token, false);
      this._resume(message.token);
      return;
    }
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
  return String(claimsOf(token).sub ?? "");
}

/** The token's `exp` in ms since the epoch; 0 when it has none that can be read. */
function expiryOf(token) {
  const exp = claimsOf(token).exp;
  return typeof exp === "number" ? exp * 1000 : 0;
}

/** Whether the token has expired, or will within `ms` (by this browser's clock). */
function expiresWithin(token, ms) {
  const expiry = expiryOf(token);
  return expiry > 0 && Date.now() >= expiry - ms;
}

/** A JWT's claims, read without verifying (the server verifies); {} when unreadable. */
function claimsOf(token) {
  try {
    const base64 = token.split(".")[1].replaceAll("-", "+").replaceAll("_", "/");
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === "object" ? claims : {};
  } catch {
    return {};
  }
}

/** 1 s, 2 s, 4 s, … up to 30 s. */
function backoff(attempt) {
  return Math.min(TOKEN_RETRY_MAX_MS, TOKEN_RETRY_MS * 2 ** attempt);
}
