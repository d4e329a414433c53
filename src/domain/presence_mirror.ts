import type { PresenceMessage } from "./presence.ts";
import { moveDigest, PRESENCE_ALIVE_MAX_MS, silenceLimitMs } from "./presence.ts";

/** One other member as this one knows it. */
interface Member {
  /** When its last message arrived. */
  heardAt: number;
  /** Its announced `alive` interval; the longest until it announces one. */
  every: number;
  /** The last sequence number taken from it. */
  seq: number;
  /** Its counts are known: a whole snapshot arrived, and no message since was missed. */
  synced: boolean;
  counts: Map<string, number>;
  total: number;
  digest: number;
  /** A snapshot arriving in parts: what came so far and the part expected next. */
  pending: { readonly counts: Map<string, number>; next: number } | null;
  /** When this member last asked it for a snapshot, or null. */
  askedAt: number | null;
}

/** What the member should do about a message it received. */
export interface MirrorAction {
  /** Ask the sender for a snapshot: its counts are not known. */
  readonly ask: boolean;
  /** Send this member's own snapshot: someone asked for it. */
  readonly answer: boolean;
}

const NOTHING: MirrorAction = Object.freeze({ ask: false, answer: false });

/**
 * The other members' counts, as their messages tell them: per member, and summed per user, so a
 * lookup is one map read. Pure: time comes in as arguments, and sending is the caller's (it acts
 * on the MirrorAction `receive` returns).
 *
 * A member's counts are trusted only while its messages arrive in sequence since a whole
 * snapshot: a gap (a lost message), or an `alive` whose total and digest differ from the mirror,
 * drops them and asks for a new snapshot; until it comes the member is *unsynced*, and presence
 * is unknown. A member silent for three of its `alive` intervals is dropped.
 */
export class PresenceMirror {
  readonly #self: string;
  readonly #members = new Map<string, Member>();
  /** Streams per user, summed over the synced members. */
  readonly #totals = new Map<string, number>();
  #unsynced = 0;
  /** No member falls silent before this time; `expire` does nothing until then. */
  #nextExpiry = Infinity;

  /** `self`: this member's id; its own messages (echoed by Redis) are ignored. */
  constructor(self: string) {
    this.#self = self;
  }

  /** Streams of `userId` on the other (synced) members. */
  count(userId: string): number {
    return this.#totals.get(userId) ?? 0;
  }

  /** Members heard of whose counts are not known. */
  get unsynced(): number {
    return this.#unsynced;
  }

  /** Other members heard of (synced or not). */
  get members(): number {
    return this.#members.size;
  }

  /** Takes one message into the mirror. */
  receive(message: PresenceMessage, now: number): MirrorAction {
    if (message.from === this.#self) return NOTHING;
    let member = this.#members.get(message.from);
    if (member === undefined) {
      if (message.kind === "bye") return NOTHING;
      member = {
        heardAt: now,
        every: PRESENCE_ALIVE_MAX_MS,
        seq: -1,
        synced: false,
        counts: new Map(),
        total: 0,
        digest: 0,
        pending: null,
        askedAt: null,
      };
      this.#members.set(message.from, member);
      this.#unsynced++;
    } else if (message.seq <= member.seq) {
      return NOTHING; // a duplicate or a replay: nothing new, and no sign of life
    }
    const inSequence = member.seq >= 0 && message.seq === member.seq + 1;
    member.seq = message.seq;
    member.heardAt = now;
    if (message.kind === "snapshot" || message.kind === "alive") member.every = message.every;
    this.#nextExpiry = Math.min(this.#nextExpiry, now + silenceLimitMs(member.every));
    if (!inSequence) {
      // Something from this member was missed: its counts (or a snapshot under way) are suspect.
      if (member.synced) this.#unsync(member);
      member.pending = null;
    }
    switch (message.kind) {
      case "bye":
        this.#remove(message.from, member);
        return NOTHING;
      case "snapshot": {
        if (message.part === 0) member.pending = { counts: new Map(), next: 0 };
        const answer = message.ask && message.part === message.parts - 1;
        const pending = member.pending;
        if (pending === null || pending.next !== message.part) {
          member.pending = null;
          return this.#act(member, now, answer);
        }
        for (const [userId, count] of message.users) {
          if (count > 0) pending.counts.set(userId, count);
        }
        pending.next++;
        if (pending.next === message.parts) {
          member.pending = null;
          this.#replace(member, pending.counts);
        }
        return this.#act(member, now, answer);
      }
      case "delta":
        if (member.synced) {
          for (const [userId, count] of message.users) this.#set(member, userId, count);
        }
        return this.#act(member, now, false);
      case "alive":
        if (member.synced && (member.total !== message.total || member.digest !== message.digest)) {
          this.#unsync(member);
        }
        return this.#act(member, now, false);
      case "ask":
        return this.#act(member, now, message.to === this.#self);
    }
  }

  /**
   * Drops the members silent for longer than their silence limit; returns how many. Cheap to
   * call on every lookup: it does nothing before the earliest member could fall silent.
   */
  expire(now: number): number {
    if (now < this.#nextExpiry) return 0;
    let dropped = 0;
    let next = Infinity;
    for (const [id, member] of this.#members) {
      const limit = member.heardAt + silenceLimitMs(member.every);
      if (now >= limit) {
        this.#remove(id, member);
        dropped++;
      } else if (limit < next) next = limit;
    }
    this.#nextExpiry = next;
    return dropped;
  }

  /** Forgets every member (the channel went down, or this member joins again). */
  reset(): void {
    this.#members.clear();
    this.#totals.clear();
    this.#unsynced = 0;
    this.#nextExpiry = Infinity;
  }

  /** Asks for a snapshot while the member is unsynced, at most once per its `alive` interval. */
  #act(member: Member, now: number, answer: boolean): MirrorAction {
    let ask = false;
    if (!member.synced && member.pending === null) {
      ask = member.askedAt === null || now - member.askedAt >= member.every;
      if (ask) member.askedAt = now;
    }
    return ask || answer ? { ask, answer } : NOTHING;
  }

  #set(member: Member, userId: string, count: number): void {
    const previous = member.counts.get(userId) ?? 0;
    if (count === previous) return;
    if (count > 0) member.counts.set(userId, count);
    else member.counts.delete(userId);
    member.total += count - previous;
    member.digest = moveDigest(member.digest, userId, count - previous);
    const total = (this.#totals.get(userId) ?? 0) + count - previous;
    if (total > 0) this.#totals.set(userId, total);
    else this.#totals.delete(userId);
  }

  /** Takes a whole snapshot as the member's counts. */
  #replace(member: Member, counts: Map<string, number>): void {
    if (member.synced) {
      for (const userId of member.counts.keys()) {
        if (!counts.has(userId)) this.#set(member, userId, 0);
      }
    } else {
      member.synced = true;
      member.askedAt = null;
      this.#unsynced--;
    }
    for (const [userId, count] of counts) this.#set(member, userId, count);
  }

  /** Its counts stop counting until a snapshot comes. */
  #unsync(member: Member): void {
    for (const userId of [...member.counts.keys()]) this.#set(member, userId, 0);
    member.synced = false;
    member.askedAt = null;
    this.#unsynced++;
  }

  #remove(id: string, member: Member): void {
    if (member.synced) {
      for (const userId of [...member.counts.keys()]) this.#set(member, userId, 0);
    } else {
      this.#unsynced--;
    }
    this.#members.delete(id);
  }
}
