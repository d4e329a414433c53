import type { Alarm } from "./alarm.ts";
import type { AlarmChange, AlarmStore, Clock, FrameSink } from "./ports.ts";
import { eventFrame, PING_FRAME, retryFrame } from "./sse_frames.ts";
import { isUlid } from "./ulid.ts";

/** Why a stream ended: logged, counted in metrics, and tested. */
export type CloseReason =
  | "client_closed"
  | "timeout"
  | "token_expired"
  | "slow_client"
  | "write_timeout"
  | "storage_unavailable"
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
/** Live changes held while a replay runs; past this the client is too far behind to keep. */
const MAX_BUFFERED_CHANGES = 10_000;

/**
 * One client's stream. Registered with the hub before it reads anything, so no change can slip
 * between replay and live: while it replays, live changes wait in `#buffer`; afterwards, alarms
 * at or below `#cursor` (already sent) are dropped. Each `created` change names the user's
 * previous id; when that is above the cursor, this connection missed something (another
 * instance's change arrived first) and it catches up from the store before going on.
 *
 * Outgoing frames wait in a bounded queue written by one pump, so a client that stops reading
 * costs at most `maxQueueBytes` before it is dropped, and the publisher never waits for it.
 */
export class LiveConnection {
  readonly id: string;
  readonly userId: string;
  readonly openedAt: number;
  readonly endsAt: number;
  readonly endReason: "timeout" | "token_expired";
  /** Time of the last frame handed to the queue; the hub's tick pings when it gets old. */
  lastFrameAt: number;
  /** When the write in flight started, or null; the hub's tick drops writes that hang. */
  writingSince: number | null = null;

  #options: LiveConnectionOptions;
  #state: "replaying" | "live" | "closed" = "replaying";
  #cursor: string | null = null;
  #buffer: AlarmChange[] = [];
  #queue: string[] = [];
  #queuedBytes = 0;
  #closeReason: CloseReason | null = null;
  /** A replay waiting for the queue to drain, so that history never trips the slow-client cap. */
  #roomWaiter: (() => void) | null = null;
  #resyncPending = false;
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
    options.sink.onClose(() => this.close("client_closed"));
  }

  get closeReason(): CloseReason | null {
    return this.#closeReason;
  }

  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** Sends `retry:`, the connect event, then the replay; then delivers live changes. */
  async start(): Promise<void> {
    const { store, userId, lastEventId } = this.#options;
    try {
      const state = await store.userState(userId);
      let replayFrom: string | null = null;
      let reset = false;
      if (lastEventId !== null) {
        const fromFuture = state.lastId === null || lastEventId > state.lastId;
        const belowFloor = state.floorId !== null && lastEventId < state.floorId;
        reset = !isUlid(lastEventId) || fromFuture || belowFloor;
        if (!reset) replayFrom = lastEventId;
      }
      this.#enqueue(retryFrame(this.#options.retryMs));
      this.#enqueue(eventFrame(
        "connect",
        JSON.stringify({
          message: "connect complete",
          userId,
          connectionId: this.id,
          unread: state.unread,
          lastId: state.lastId,
          ...(reset ? { replay: "reset" } : {}),
        }),
      ));
      if (replayFrom === null) {
        this.#cursor = state.lastId;
        this.#goLive();
        return;
      }
      this.#cursor = replayFrom;
      await this.#replay(true);
      // Everything up to the head read above is committed, so the replay covered it.
      if (state.lastId && (!this.#cursor || state.lastId > this.#cursor)) {
        this.#cursor = state.lastId;
      }
      this.#goLive();
    } catch {
      this.close("storage_unavailable");
    }
  }

  /** Called by the hub for every change of this user, in the order the bus delivers them. */
  deliver(change: AlarmChange): void {
    if (this.#state === "closed") return;
    if (this.#state === "replaying") {
      this.#buffer.push(change);
      if (this.#buffer.length > MAX_BUFFERED_CHANGES) this.close("slow_client");
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
      this.#state = "replaying";
      this.#buffer.push(change);
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
    this.#queue = [];
    this.#buffer = [];
    this.#roomWaiter?.();
    this.#roomWaiter = null;
    this.#options.sink.close();
    this.#options.onClose(this, reason);
    this.#done();
  }

  async #replay(initial: boolean): Promise<void> {
    for (;;) {
      const page = await this.#options.store.listAfter(this.userId, this.#cursor, REPLAY_PAGE);
      for (const alarm of page) {
        if (this.#isClosed()) return;
        // History is paced by the client: a reader gets all of it, however long. Only a client
        // that stops reading stays stuck here, and the write timeout ends it.
        if (this.#queuedBytes > this.#options.maxQueueBytes / 2) await this.#room();
        if (this.#isClosed()) return;
        this.#sendAlarm(alarm, initial);
      }
      if (page.length < REPLAY_PAGE) return;
    }
  }

  /** A method, not a field read, so the compiler does not assume it unchanged across awaits. */
  #isClosed(): boolean {
    return this.#state === "closed";
  }

  #room(): Promise<void> {
    return new Promise((resolve) => (this.#roomWaiter = resolve));
  }

  #goLive(): void {
    if (this.#state === "closed") return;
    if (this.#resyncPending) {
      // A gap was reported while this replay ran: read once more from where it got to.
      this.#resyncPending = false;
      this.#replay(false).then(() => this.#goLive(), () => this.close("storage_unavailable"));
      return;
    }
    this.#state = "live";
    const buffered = this.#buffer;
    this.#buffer = [];
    for (let i = 0; i < buffered.length; i++) {
      if (this.#state !== "live") {
        // A gap started another catch-up: keep the rest, in order, behind it.
        this.#buffer.push(...buffered.slice(i));
        return;
      }
      this.deliver(buffered[i]);
    }
  }

  #sendAlarm(alarm: Alarm, replayed: boolean): void {
    this.#cursor = alarm.id;
    this.#enqueue(eventFrame("alarm", JSON.stringify(alarm), alarm.id));
    this.#options.onAlarmSent?.(alarm, replayed);
  }

  #enqueue(frame: string): void {
    if (this.#state === "closed") return;
    this.#queue.push(frame);
    this.#queuedBytes += frame.length;
    this.lastFrameAt = this.#options.clock.now();
    if (this.#queuedBytes > this.#options.maxQueueBytes) {
      this.close("slow_client");
      return;
    }
    if (this.writingSince === null) void this.#pump();
  }

  async #pump(): Promise<void> {
    const { sink, clock } = this.#options;
    while (this.#queue.length > 0 && this.#state !== "closed") {
      const chunk = this.#queue.length === 1 ? this.#queue[0] : this.#queue.join("");
      this.#queue = [];
      this.writingSince = clock.now();
      try {
        await sink.write(chunk);
      } catch {
        this.close("client_closed");
      }
      this.#queuedBytes -= chunk.length;
      if (this.#roomWaiter && this.#queuedBytes <= this.#options.maxQueueBytes / 2) {
        this.#roomWaiter();
        this.#roomWaiter = null;
      }
    }
    this.writingSince = null;
  }
}
