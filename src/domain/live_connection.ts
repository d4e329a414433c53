import type { Alarm } from "./alarm.ts";
import { FrameQueue } from "./frame_queue.ts";
import type { AlarmStore, Clock, FrameSink, StreamChange } from "./ports.ts";
import { alarmFrame, connectFrame, eventFrame, PING_FRAME } from "./sse_frames.ts";
import { isUlid, ULID_ZERO } from "./ulid.ts";

/** Why a stream ended: logged, counted in metrics, and tested. */
export type CloseReason =
  | "client_closed"
  | "timeout"
  | "token_expired"
  | "slow_client"
  | "write_timeout"
  | "storage_unavailable"
  | "erased"
  | "shutdown";

export interface LiveConnectionOptions {
  readonly id: string;
  readonly userId: string;
  readonly sink: FrameSink;
  readonly store: AlarmStore;
  readonly clock: Clock;
  /** `Last-Event-ID` as the client sent it, or null. */
  readonly lastEventId: string | null;
  readonly retryMs: number;
  readonly maxQueueBytes: number;
  /** Ends the stream at this time (stream timeout or token expiry, whichever comes first). */
  readonly endsAt: number;
  readonly endReason: "timeout" | "token_expired";
  readonly onClose: (connection: LiveConnection, reason: CloseReason) => void;
  readonly onAlarmSent?: (alarm: Alarm, replayed: boolean) => void;
}

const REPLAY_PAGE = 500;
/** A typical alarm's frame: replay pages are sized by it until a larger frame is seen. */
const FIRST_FRAME_ESTIMATE = 1024;
/** Live changes held while a replay runs; past this the client is too far behind to keep. */
const MAX_HELD_CHANGES = 10_000;

/**
 * One client's stream. Registered with the hub before it reads anything, so no change can slip
 * between replay and live: while it replays, live changes wait in `#held`; afterwards, alarms
 * at or below `#cursor` (already sent) are dropped. Each `created` change names the user's
 * previous id; when that is above the cursor, this connection missed something (another
 * instance's change arrived first) and it catches up from the store before going on.
 *
 * Outgoing frames wait in a FrameQueue, so a client that stops reading costs at most
 * `maxQueueBytes` before it is dropped, and the publisher never waits for it. Replay is paced by
 * the same queue: it reads the next page only when the queue has room for it, so history waiting
 * for a stalled client is never held outside the queue.
 */
export class LiveConnection {
  readonly id: string;
  readonly userId: string;
  readonly openedAt: number;
  readonly endsAt: number;
  readonly endReason: "timeout" | "token_expired";
  /** Time of the last frame handed to the queue; the hub's tick pings when it gets old. */
  lastFrameAt: number;

  #options: LiveConnectionOptions;
  #state: "replaying" | "live" | "closed" = "replaying";
  #cursor: string | null = null;
  #held: StreamChange[] = [];
  #frames: FrameQueue;
  #closeReason: CloseReason | null = null;
  /** The largest alarm frame this connection has replayed, 0 before any. */
  #largestFrame = 0;
  /** Another pass over the store is due when this replay ends (a gap, or alarms left to it). */
  #resyncPending = false;
  #heldAlarms = 0; // `created` changes in `#held`
  #done: () => void = () => {};
  /** Resolves when the stream has ended, for whatever reason. */
  readonly closed: Promise<void>;

  constructor(options: LiveConnectionOptions) {
    this.#options = options;
    this.id = options.id;
    this.userId = options.userId;
    this.openedAt = this.lastFrameAt = options.clock.now();
    this.endsAt = options.endsAt;
    this.endReason = options.endReason;
    this.closed = new Promise((resolve) => (this.#done = resolve));
    const { sink, clock, maxQueueBytes: maxBytes } = options;
    const onWriteFailed = () => this.close("client_closed");
    this.#frames = new FrameQueue({ sink, clock, maxBytes, onWriteFailed });
    sink.onClose(() => this.close("client_closed"));
  }

  get closeReason(): CloseReason | null {
    return this.#closeReason;
  }

  get queuedBytes(): number {
    return this.#frames.bytes;
  }

  /** When the write in flight started, or null; the hub's tick drops writes that hang. */
  get writingSince(): number | null {
    return this.#frames.writingSince;
  }

  /** Sends the connect event (with `retry:`), then the replay; then delivers live changes. */
  async start(): Promise<void> {
    const { store, userId, lastEventId } = this.#options;
    try {
      const state = await store.userState(userId);
      let replayFrom: string | null = null;
      let reset = false;
      if (lastEventId !== null) {
        const fromFuture = lastEventId > (state.lastId ?? ULID_ZERO);
        const belowFloor = state.floorId !== null && lastEventId < state.floorId;
        reset = !isUlid(lastEventId) || fromFuture || belowFloor;
        if (!reset) replayFrom = lastEventId;
      }
      this.#enqueue(connectFrame(userId, this.id, state, reset, this.#options.retryMs));
      if (replayFrom === null || replayFrom === state.lastId) {
        this.#cursor = state.lastId;
        this.#goLive();
        return;
      }
      this.#cursor = replayFrom;
      // One alarm behind (a reconnect's usual case): read it by key, a read that many share.
      const onlyMissedId = replayFrom === state.prevId && state.lastId;
      const onlyMissed = onlyMissedId ? await store.get(userId, onlyMissedId) : null;
      if (onlyMissed) this.#sendAlarm(onlyMissed, true);
      else await this.#replay(true, state.lastId);
      // Everything up to the user state read above is committed, so the replay covered it.
      if (state.lastId && (!this.#cursor || state.lastId > this.#cursor)) {
        this.#cursor = state.lastId;
      }
      this.#goLive();
    } catch {
      this.close("storage_unavailable");
    }
  }

  /** Called by the hub for every change of this user, in the order the bus delivers them. */
  deliver(change: StreamChange): void {
    if (this.#state === "closed") return;
    if (this.#state === "replaying") {
      if (change.kind === "created" && !this.#holdAlarm()) return;
      this.#held.push(change);
      if (this.#held.length > MAX_HELD_CHANGES) this.close("slow_client");
      return;
    }
    if (change.kind !== "created") {
      this.#enqueue(
        eventFrame(change.kind, JSON.stringify({ ids: change.ids, unread: change.unread })),
      );
      return;
    }
    const { alarm, prevId } = change;
    if (this.#cursor !== null && alarm.id <= this.#cursor) return;
    if (prevId !== null && (this.#cursor === null || prevId > this.#cursor)) {
      // The store has this alarm too (it is committed), so the catch-up sends it in order.
      this.#state = "replaying";
      this.#replay(false).then(() => this.#goLive(), () => this.close("storage_unavailable"));
      return;
    }
    this.#sendAlarm(alarm, false);
  }

  /**
   * Catches up from the store: the bus may have dropped changes (a broker outage), and the
   * store has every alarm. Alarms already sent are skipped by the cursor as always.
   */
  resync(): void {
    if (this.#state === "closed") return;
    if (this.#state === "replaying") {
      this.#resyncPending = true;
      return;
    }
    this.#state = "replaying";
    this.#replay(false).then(() => this.#goLive(), () => this.close("storage_unavailable"));
  }

  /** Queues a heartbeat comment. */
  ping(): void {
    this.#enqueue(PING_FRAME);
  }

  close(reason: CloseReason): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#closeReason = reason;
    this.#frames.close();
    this.#held = [];
    this.#heldAlarms = 0;
    this.#options.sink.close();
    this.#options.onClose(this, reason);
    this.#done();
  }

  /**
   * History is paced by the client: a reader gets all of it, however long; a client that stops
   * reading stays stuck here, holding no more than its queue, until the write timeout ends it.
   * The queue is filled to half the cap (the rest is headroom for heartbeats), and each page is
   * sized to fit in what is free; a page with larger alarms than expected is cut where it stops
   * fitting, and the rest read again once there is room. `head`, when known, is the user's last
   * id when the stream opened: reaching it ends the replay without reading an empty page.
   */
  async #replay(initial: boolean, head: string | null = null): Promise<void> {
    const fill = this.#options.maxQueueBytes / 2;
    for (;;) {
      const estimate = this.#largestFrame || FIRST_FRAME_ESTIMATE;
      await this.#frames.room(Math.max(0, Math.min(fill / 2, fill - estimate)));
      if (this.#isClosed()) return;
      const fits = Math.floor((fill - this.#frames.bytes) / estimate);
      const limit = Math.max(1, Math.min(REPLAY_PAGE, fits));
      const page = await this.#options.store.listAfter(this.userId, this.#cursor, limit);
      let sent = 0;
      for (const alarm of page) {
        if (this.#isClosed()) return;
        const frame = alarmFrame(alarm);
        if (frame.length > this.#largestFrame) this.#largestFrame = frame.length;
        if (this.#frames.bytes > 0 && this.#frames.bytes + frame.length > fill) break;
        this.#sendAlarm(alarm, initial, frame);
        sent++;
      }
      if (this.#isClosed()) return;
      if (sent === page.length && page.length < limit) return;
      if (head !== null && this.#cursor !== null && this.#cursor >= head) return;
    }
  }

  /** A method, not a field read, so the compiler does not assume it unchanged across awaits. */
  #isClosed(): boolean {
    return this.#state === "closed";
  }

  #goLive(): void {
    if (this.#state === "closed") return;
    if (this.#resyncPending) {
      // A gap was reported, or alarms were left to the store, while this replay ran: read once
      // more from where it got to.
      this.#resyncPending = false;
      this.#replay(false).then(() => this.#goLive(), () => this.close("storage_unavailable"));
      return;
    }
    this.#state = "live";
    const held = this.#held;
    this.#held = [];
    this.#heldAlarms = 0;
    for (let i = 0; i < held.length; i++) {
      if (this.#state !== "live") {
        // A gap started another catch-up: keep the rest, in order, behind it.
        for (const change of held.slice(i)) this.deliver(change);
        return;
      }
      this.deliver(held[i]);
    }
  }

  /**
   * Whether a `created` change that arrives during a replay is held for after it. Held alarms
   * count against the queue's share of the cap, as replayed ones do; past it they are all let
   * go, and one more pass over the store (which has them: they are committed) sends them, in
   * order, so that a replay stuck on a client that stops reading holds no live alarms either.
   */
  #holdAlarm(): boolean {
    if (this.#resyncPending) return false;
    // Counted, not measured: each held alarm is taken as at least a typical alarm's frame.
    const fits = Math.floor(
      this.#options.maxQueueBytes / 2 / Math.max(FIRST_FRAME_ESTIMATE, this.#largestFrame),
    );
    if (this.#heldAlarms < fits) {
      this.#heldAlarms++;
      return true;
    }
    this.#held = this.#held.filter((change) => change.kind !== "created");
    this.#heldAlarms = 0;
    this.#resyncPending = true;
    return false;
  }

  #sendAlarm(alarm: Alarm, replayed: boolean, frame = alarmFrame(alarm)): void {
    this.#cursor = alarm.id;
    if (this.#enqueue(frame)) this.#options.onAlarmSent?.(alarm, replayed);
  }

  /** False when the frame was not queued: the connection is closed, or just closed as slow. */
  #enqueue(frame: string): boolean {
    if (this.#state === "closed") return false;
    this.lastFrameAt = this.#options.clock.now();
    if (!this.#frames.push(frame)) this.close("slow_client");
    return this.#closeReason === null;
  }
}
