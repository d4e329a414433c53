import { UnavailableError } from "./errors.ts";
import type { Clock } from "./ports.ts";
import type {
  LiveCountSource,
  Presence,
  PresenceChannel,
  PresenceMessage,
  PresenceMessageBody,
  UserCount,
} from "./presence.ts";
import {
  moveDigest,
  PRESENCE_ALIVE_MAX_MS,
  PRESENCE_ALIVE_MIN_MS,
  PRESENCE_USERS_PER_MESSAGE,
} from "./presence.ts";
import { PresenceMirror } from "./presence_mirror.ts";

export interface SharedPresenceOptions {
  readonly channel: PresenceChannel;
  /** This isolate's live streams per user (the hub's). */
  readonly local: LiveCountSource;
  readonly clock: Clock;
  /**
   * How often this member says it is alive, clamped to 20 ms..10 s (default 10 s): the others
   * drop it after three such intervals of silence (30 s at the default).
   */
  readonly aliveEveryMs?: number;
  /**
   * After joining, how long the other members get to send their snapshots before counts are
   * trusted (default: two `alive` intervals, at most 2 s). Members answer at once, so this only
   * needs to cover a round trip.
   */
  readonly warmupMs?: number;
  /** Count changes are gathered this long into one message (default 20 ms). */
  readonly flushMs?: number;
  /** This member's id; default a random UUID. */
  readonly memberId?: string;
}

/** Presence shared between members over a channel: each member's counts, mirrored by all. */
export interface SharedPresence extends Presence {
  readonly memberId: string;
  /** Other members this one hears (synced or not), for tests and logs. */
  members(): number;
}

/**
 * Presence across members (instances, worker isolates). This member's live counts go out as
 * deltas, coalesced for `flushMs`; a full snapshot when it joins (asking the others for theirs)
 * and whenever someone asks; `alive` with a digest of its counts every `aliveEveryMs`. The
 * others' counts arrive in a PresenceMirror, so `online` and `connections` read maps and never
 * wait. Unknown (UnavailableError, `null`) while the channel is down, during warm-up, and while
 * a member heard of has not sent a whole snapshot since its last missed message.
 */
export function createSharedPresence(options: SharedPresenceOptions): SharedPresence {
  const { channel, local, clock } = options;
  const every = Math.max(
    PRESENCE_ALIVE_MIN_MS,
    Math.min(PRESENCE_ALIVE_MAX_MS, options.aliveEveryMs ?? PRESENCE_ALIVE_MAX_MS),
  );
  const warmupMs = options.warmupMs ?? Math.min(2_000, 2 * every);
  const flushMs = options.flushMs ?? 20;
  const self = options.memberId ?? crypto.randomUUID();
  const mirror = new PresenceMirror(self);
  let seq = 0;
  /** This member's counts summed up, as `alive` announces them. */
  let total = 0;
  let digest = 0;
  /** New counts not yet sent. */
  const changed = new Map<string, number>();
  let snapshotDue = false;
  let askOthers = false;
  let flushTimer: unknown = null;
  /** Counts are trusted from this time on (Infinity while the channel is down). */
  let warmUntil = Infinity;
  let closed = false;

  for (const [userId, count] of local.entries()) {
    total += count;
    digest = moveDigest(digest, userId, count);
  }
  const stopLocal = local.onChange((userId, count, previous) => {
    total += count - previous;
    digest = moveDigest(digest, userId, count - previous);
    // A snapshot due (or the join after an outage) carries every count as it is then.
    if (!channel.up || snapshotDue) return;
    changed.set(userId, count);
    scheduleFlush();
  });

  function send(body: PresenceMessageBody): void {
    channel.send({ ...body, from: self, seq: seq++ } as PresenceMessage);
  }

  function scheduleFlush(): void {
    if (flushTimer === null && !closed) flushTimer = clock.setTimeout(flush, flushMs);
  }

  /** Sends what is due: a snapshot (which makes pending deltas moot), else the deltas. */
  function flush(): void {
    if (flushTimer !== null) clock.clearTimeout(flushTimer);
    flushTimer = null;
    if (!channel.up) {
      changed.clear();
      return;
    }
    if (snapshotDue) {
      const ask = askOthers;
      snapshotDue = askOthers = false;
      changed.clear();
      const users = [...local.entries()];
      const parts = Math.max(1, Math.ceil(users.length / PRESENCE_USERS_PER_MESSAGE));
      for (let part = 0; part < parts; part++) {
        send({ kind: "snapshot", every, part, parts, ask, users: slice(users, part) });
      }
      return;
    }
    if (changed.size === 0) return;
    const users = [...changed];
    changed.clear();
    for (let part = 0; part * PRESENCE_USERS_PER_MESSAGE < users.length; part++) {
      send({ kind: "delta", users: slice(users, part) });
    }
  }

  /** On start and after every outage: forget what may be stale, say who is here, ask back. */
  function join(): void {
    mirror.reset();
    warmUntil = clock.now() + warmupMs;
    snapshotDue = askOthers = true;
    flush();
  }

  const stopMessages = channel.onMessage((message) => {
    if (closed) return;
    const action = mirror.receive(message, clock.now());
    if (action.ask && channel.up) send({ kind: "ask", to: message.from });
    if (action.answer) {
      snapshotDue = true;
      scheduleFlush();
    }
  });
  const stopState = channel.onState((up) => {
    if (closed) return;
    if (up) join();
    else {
      mirror.reset();
      warmUntil = Infinity;
      changed.clear();
    }
  });
  const aliveTimer = clock.setInterval(() => {
    mirror.expire(clock.now());
    if (!channel.up) return;
    // Deltas first: `alive` sums up what has been sent.
    flush();
    send({ kind: "alive", every, total, digest });
  }, every);
  if (channel.up) join();

  function known(): boolean {
    const now = clock.now();
    mirror.expire(now);
    return channel.up && now >= warmUntil && mirror.unsynced === 0;
  }

  return {
    memberId: self,
    members: () => mirror.members,
    known,
    connections(userIds) {
      if (!known()) {
        const warming = channel.up && warmUntil !== Infinity && clock.now() < warmUntil;
        throw new UnavailableError(
          !channel.up
            ? "presence cannot be known: the channel to the other instances is down"
            : "presence cannot be known yet: the other instances' counts are still arriving",
          warming ? Math.max(1, Math.ceil((warmUntil - clock.now()) / 1000)) : 5,
        );
      }
      return userIds.map((userId) => local.countOf(userId) + mirror.count(userId));
    },
    online(userId) {
      if (local.countOf(userId) > 0) return true;
      if (!known()) return null;
      return mirror.count(userId) > 0;
    },
    async close() {
      if (closed) return;
      closed = true;
      clock.clearInterval(aliveTimer);
      if (flushTimer !== null) clock.clearTimeout(flushTimer);
      stopLocal();
      stopMessages();
      stopState();
      // The others stop counting this member's streams now rather than after its silence.
      if (channel.up) send({ kind: "bye" });
      await channel.close();
    },
  };
}

function slice(users: readonly UserCount[], part: number): UserCount[] {
  return users.slice(part * PRESENCE_USERS_PER_MESSAGE, (part + 1) * PRESENCE_USERS_PER_MESSAGE);
}
