import type { Alarm } from "./alarm.ts";
import { LimitExceededError } from "./errors.ts";
import { LiveCounts } from "./live_counts.ts";
import type { CloseReason } from "./live_connection.ts";
import { LiveConnection } from "./live_connection.ts";
import type { AlarmChange, AlarmStore, Clock, FrameSink, LiveBus } from "./ports.ts";
import type { LiveCountSource } from "./presence.ts";

export interface LiveHubConfig {
  readonly maxConnections: number;
  readonly maxConnectionsPerUser: number;
  readonly maxQueueBytes: number;
  readonly heartbeatMs: number;
  readonly streamTimeoutMs: number;
  readonly retryMs: number;
  /** A write that has not completed after this long means the client is gone or stalled. */
  readonly writeTimeoutMs: number;
}

/** Hooks for logs and metrics; the hub works without them. */
export interface LiveHubObserver {
  opened?(connection: LiveConnection): void;
  closed?(connection: LiveConnection, reason: CloseReason): void;
  alarmSent?(alarm: Alarm, replayed: boolean): void;
  /** A new stream was refused by a cap: per user, the server's stream cap, or its memory cap. */
  refused?(scope: "user" | "server" | "memory"): void;
}

/** A place held for a stream between the cap check and the stream's start. */
export interface Reservation {
  readonly userId: string;
  /** Gives the place back if the stream never starts; no-op after `open`. */
  release(): void;
}

export interface OpenOptions {
  readonly sink: FrameSink;
  readonly lastEventId: string | null;
  /** Token expiry in ms since the epoch, or null; the stream ends then. */
  readonly tokenExpiresAt: number | null;
}

export interface LiveHub {
  /**
   * Checks the caps and holds a place; LimitExceededError (429 per user, 503 for the server's
   * stream cap or while memory is over its cap) if full.
   */
  reserve(userId: string): Reservation;
  /** Starts the stream in a reserved place; resolves once the stream has ended. */
  open(reservation: Reservation, options: OpenOptions): LiveConnection;
  readonly connectionCount: number;
  connectionCountOf(userId: string): number;
  /** Live streams per user (a stream whose write is pending two heartbeats does not count). */
  readonly liveCounts: LiveCountSource;
  /** Bytes waiting in every stream's queue: the memory held for clients that read slowly. */
  readonly queuedBytes: number;
  /** Ends every stream (reason "shutdown") and stops the tick. */
  close(): Promise<void>;
}

const userOf = (change: AlarmChange) =>
  change.kind === "created" ? change.alarm.userId : change.userId;

/**
 * Every open stream, by user: Map<userId, Set<LiveConnection>>, so each tab of a user is its
 * own connection and all of them hear every change. One shared tick drives heartbeats, stream
 * timeouts, token expiry and stalled-write detection, so any number of streams costs one timer.
 */
export function createLiveHub(deps: {
  store: AlarmStore;
  bus: LiveBus;
  clock: Clock;
  config: LiveHubConfig;
  observer?: LiveHubObserver;
  /**
   * Whether the process's resident memory is above its cap: new streams are refused then, so
   * that streams never get the process killed for memory. Read per attempt, so keep it cheap.
   */
  memoryOver?: () => boolean;
}): LiveHub {
  const { store, bus, clock, config, observer, memoryOver } = deps;
  const byUser = new Map<string, Set<LiveConnection>>();
  const reservedByUser = new Map<string, number>();
  let reservedCount = 0;
  let openCount = 0;
  let closing = false;
  const live = new LiveCounts(2 * config.heartbeatMs);

  const unsubscribe = bus.subscribe((change) => {
    const connections = byUser.get(userOf(change));
    if (!connections) return;
    for (const connection of connections) {
      if (change.kind === "erased") connection.close("erased");
      else connection.deliver(change);
    }
  });

  const unsubscribeGaps = bus.onGap(() => {
    for (const connections of byUser.values()) {
      for (const connection of connections) connection.resync();
    }
  });

  const tickMs = Math.max(5, Math.min(250, Math.floor(config.heartbeatMs / 20)));
  const timer = clock.setInterval(tick, tickMs);

  function tick() {
    const now = clock.now();
    const pingBefore = now - (config.heartbeatMs - tickMs);
    // Streams opened together (a restart, a reconnect storm) fall due together, and pinging them
    // all in one tick would stall every alarm queued behind the pings. Twice the even share per
    // tick spreads such a wave over a few seconds; a late comment costs nothing.
    let pings = Math.max(64, Math.ceil((openCount * tickMs * 2) / config.heartbeatMs));
    for (const connections of byUser.values()) {
      for (const connection of connections) {
        live.check(connection, now);
        if (now >= connection.endsAt) connection.close(connection.endReason);
        else if (
          connection.writingSince !== null && now - connection.writingSince >= config.writeTimeoutMs
        ) connection.close("write_timeout");
        else if (connection.lastFrameAt <= pingBefore && pings > 0) {
          pings--;
          connection.ping();
        }
      }
    }
  }

  function countOf(userId: string) {
    return (byUser.get(userId)?.size ?? 0) + (reservedByUser.get(userId) ?? 0);
  }

  function unreserve(userId: string) {
    reservedCount--;
    const left = (reservedByUser.get(userId) ?? 1) - 1;
    if (left > 0) reservedByUser.set(userId, left);
    else reservedByUser.delete(userId);
  }

  return {
    reserve(userId) {
      if (closing) {
        throw new LimitExceededError(
          "alarmd is shutting down",
          "too_many_connections",
          "server",
          1,
        );
      }
      if (countOf(userId) >= config.maxConnectionsPerUser) {
        observer?.refused?.("user");
        throw new LimitExceededError(
          `at most ${config.maxConnectionsPerUser} open streams per user`,
          "too_many_connections",
          "user",
          Math.ceil(config.retryMs / 1000) + 1,
        );
      }
      if (openCount + reservedCount >= config.maxConnections) {
        observer?.refused?.("server");
        throw new LimitExceededError(
          "the server holds as many streams as it is configured for",
          "too_many_connections",
          "server",
          Math.ceil(config.retryMs / 1000) + 1,
        );
      }
      if (memoryOver?.()) {
        observer?.refused?.("memory");
        throw new LimitExceededError(
          "the server is at its memory limit",
          "too_many_connections",
          "server",
          Math.ceil(config.retryMs / 1000) + 1,
        );
      }
      reservedCount++;
      reservedByUser.set(userId, (reservedByUser.get(userId) ?? 0) + 1);
      let held = true;
      return {
        userId,
        release() {
          if (!held) return;
          held = false;
          unreserve(userId);
        },
        // Internal: lets `open` consume the place exactly once.
        [TAKE]() {
          if (!held) throw new Error("reservation already used or released");
          held = false;
          unreserve(userId);
        },
      } as Reservation;
    },

    open(reservation, options) {
      (reservation as Reservation & { [TAKE](): void })[TAKE]();
      const { userId } = reservation;
      const now = clock.now();
      const timeoutAt = now + config.streamTimeoutMs;
      const tokenEnds = options.tokenExpiresAt !== null && options.tokenExpiresAt < timeoutAt;
      const connection = new LiveConnection({
        id: crypto.randomUUID(),
        userId,
        sink: options.sink,
        store,
        clock,
        lastEventId: options.lastEventId,
        retryMs: config.retryMs,
        maxQueueBytes: config.maxQueueBytes,
        endsAt: tokenEnds ? options.tokenExpiresAt! : timeoutAt,
        endReason: tokenEnds ? "token_expired" : "timeout",
        onClose(conn, reason) {
          const set = byUser.get(userId);
          if (set?.delete(conn)) {
            openCount--;
            if (set.size === 0) byUser.delete(userId);
            live.closed(conn);
          }
          observer?.closed?.(conn, reason);
        },
        onAlarmSent: observer?.alarmSent,
      });
      let set = byUser.get(userId);
      if (!set) byUser.set(userId, set = new Set());
      set.add(connection);
      openCount++;
      live.opened(connection);
      observer?.opened?.(connection);
      if (closing) connection.close("shutdown");
      else void connection.start();
      return connection;
    },

    get connectionCount() {
      return openCount;
    },

    connectionCountOf(userId) {
      return byUser.get(userId)?.size ?? 0;
    },

    liveCounts: live,

    get queuedBytes() {
      let bytes = 0;
      for (const connections of byUser.values()) {
        for (const connection of connections) bytes += connection.queuedBytes;
      }
      return bytes;
    },

    async close() {
      closing = true;
      clock.clearInterval(timer);
      unsubscribe();
      unsubscribeGaps();
      const all = [...byUser.values()].flatMap((set) => [...set]);
      for (const connection of all) connection.close("shutdown");
      await Promise.all(all.map((c) => c.closed));
    },
  };
}

const TAKE = Symbol("take");
