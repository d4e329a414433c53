/**
 * Presence: which users have a live stream, counted across every instance and worker. Each
 * isolate is a *member*: it counts its own live streams (the hub's LiveCountSource) and tells
 * the other members over a PresenceChannel; every member mirrors the others' counts, so that a
 * lookup is a synchronous map read (the publish path asks `online` for every alarm).
 */
import { ALARM_LIMITS } from "./alarm.ts";

/** Who has a live stream. */
export interface Presence {
  /**
   * Live streams of each user across every member, in the order asked (a user asked twice is
   * answered twice). UnavailableError while the counts cannot be known: the channel is down, or
   * members' counts are still arriving (start-up, a reconnect, a member that must re-send).
   */
  connections(userIds: readonly string[]): number[];
  /**
   * Whether the user has a live stream anywhere: `true` as soon as one is known (a live stream on
   * this isolate is always known), `false` when none is and the counts are known, `null` when it
   * cannot be known. Synchronous and O(1): it may be called for every alarm published.
   */
  online(userId: string): boolean | null;
  /** Whether `connections` answers right now (false when it would throw). */
  known(): boolean;
  /** Stops its timers and tells the other members that this one leaves; idempotent. */
  close(): Promise<void>;
}

/**
 * This isolate's live streams per user: open, and taking their writes (a stream whose write has
 * been pending too long does not count). Kept by the live hub.
 */
export interface LiveCountSource {
  /** Live streams of `userId` on this isolate; 0 for a user with none. */
  countOf(userId: string): number;
  /** Every user with at least one live stream, with the count. */
  entries(): Iterable<readonly [string, number]>;
  /** Called synchronously whenever a user's count changes, with the new and the old count. */
  onChange(listener: (userId: string, count: number, previous: number) => void): () => void;
}

/** `[userId, count]`: a user's live streams on the sending member (0: none any more). */
export type UserCount = readonly [string, number];

/**
 * What members tell each other. Every message carries its sender and the sender's sequence
 * number (0, 1, 2, … over every message it sends), so a receiver notices a lost message and
 * asks for a snapshot instead of trusting counts it may have missed changes to.
 * - `snapshot`: all of the sender's counts, in `parts` consecutive messages; `ask` asks every
 *   receiver to answer with its own snapshot (a member joining, or back after an outage).
 * - `delta`: new counts of the users whose count changed.
 * - `alive`: sent every `every` ms; `total` and `digest` sum up the sender's counts, so that a
 *   receiver whose mirror drifted notices and asks for a snapshot.
 * - `ask`: asks the member `to` for a snapshot.
 * - `bye`: the sender leaves (a clean shutdown); its streams stop counting at once.
 */
export type PresenceMessage =
  | {
    readonly kind: "snapshot";
    readonly from: string;
    readonly seq: number;
    readonly every: number;
    readonly part: number;
    readonly parts: number;
    readonly ask: boolean;
    readonly users: readonly UserCount[];
  }
  | {
    readonly kind: "delta";
    readonly from: string;
    readonly seq: number;
    readonly users: readonly UserCount[];
  }
  | {
    readonly kind: "alive";
    readonly from: string;
    readonly seq: number;
    readonly every: number;
    readonly total: number;
    readonly digest: number;
  }
  | { readonly kind: "ask"; readonly from: string; readonly seq: number; readonly to: string }
  | { readonly kind: "bye"; readonly from: string; readonly seq: number };

type WithoutEnvelope<M> = M extends unknown ? Omit<M, "from" | "seq"> : never;
/** A message without what the sending member adds to each (`from`, `seq`). */
export type PresenceMessageBody = WithoutEnvelope<PresenceMessage>;

/** How members reach each other: Redis pub/sub, a BroadcastChannel between workers. */
export interface PresenceChannel {
  /** Hands a message to every other member, in send order; never throws, never waits. */
  send(message: PresenceMessage): void;
  /**
   * `listener` hears every valid message of the other members (possibly this member's own too:
   * the receiver ignores those), in the order each sender sent them. Invalid messages are
   * reported by the adapter and never reach it.
   */
  onMessage(listener: (message: PresenceMessage) => void): () => void;
  /** `listener` hears every change of `up`. */
  onState(listener: (up: boolean) => void): () => void;
  /** Whether messages go out and come in right now. */
  readonly up: boolean;
  /** Sends what was handed to `send` before, then disconnects. */
  close(): Promise<void>;
}

/** Members announce `alive` at least this often; the product default. */
export const PRESENCE_ALIVE_MAX_MS = 10_000;
/** The shortest announced interval accepted (ALARMD_HEARTBEAT_MS's minimum). */
export const PRESENCE_ALIVE_MIN_MS = 20;
/** Users per message: a snapshot of more goes out in parts, so no message grows unbounded. */
export const PRESENCE_USERS_PER_MESSAGE = 1_000;
/** More streams than this for one user on one member is not a count alarmd produces. */
const MAX_COUNT = 10_000_000;
const MAX_MEMBER_ID = 64;

/**
 * How long a member may stay silent before its streams stop counting: three `alive` intervals,
 * less a margin for the message's transit, so that a crashed member (the default interval is
 * 10 s) stops counting within 30 s of its last message.
 */
export function silenceLimitMs(every: number): number {
  return 3 * every - Math.min(1_000, every / 4);
}

/** FNV-1a over the user id's UTF-16 code units: the per-user term of a member's digest. */
export function userHash(userId: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < userId.length; i++) {
    hash = Math.imul(hash ^ userId.charCodeAt(i), 0x01000193);
  }
  return hash >>> 0;
}

/** A digest moved by `userId`'s count changing by `delta`: order-independent, mod 2^32. */
export function moveDigest(digest: number, userId: string, delta: number): number {
  return (digest + Math.imul(userHash(userId), delta)) >>> 0;
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const isMemberId = (v: unknown) =>
  typeof v === "string" && v.length >= 1 && v.length <= MAX_MEMBER_ID;
const isCount = (v: unknown, max: number) =>
  typeof v === "number" && Number.isSafeInteger(v) && v >= 0 && v <= max;
const isUserId = (v: unknown) =>
  typeof v === "string" && v.length >= 1 && v.length <= ALARM_LIMITS.userIdMax &&
  v.isWellFormed();

function usersProblem(users: unknown): string | null {
  if (!Array.isArray(users) || users.length > PRESENCE_USERS_PER_MESSAGE) {
    return `users is not an array of at most ${PRESENCE_USERS_PER_MESSAGE}`;
  }
  for (const entry of users) {
    if (!Array.isArray(entry) || entry.length !== 2) return "a users entry is not [userId, count]";
    if (!isUserId(entry[0])) return "a users entry has no valid user id";
    if (!isCount(entry[1], MAX_COUNT)) return "a users entry has no valid count";
  }
  return null;
}

const isEvery = (v: unknown) =>
  isCount(v, PRESENCE_ALIVE_MAX_MS) && (v as number) >= PRESENCE_ALIVE_MIN_MS;

/**
 * What is wrong with a message from the channel, or null when it is a well-formed
 * PresenceMessage. Adapters check every message with it before it reaches a member.
 */
export function presenceMessageProblem(message: unknown): string | null {
  if (!isRecord(message)) return "not an object";
  if (!isMemberId(message.from)) return "from is not a member id";
  if (!isCount(message.seq, Number.MAX_SAFE_INTEGER)) return "seq is not a sequence number";
  switch (message.kind) {
    case "snapshot":
      if (!isEvery(message.every)) return "every is not an interval in ms";
      if (!isCount(message.parts, MAX_COUNT) || message.parts === 0) return "parts is not >= 1";
      if (!isCount(message.part, (message.parts as number) - 1)) return "part is not below parts";
      if (typeof message.ask !== "boolean") return "ask is not a boolean";
      return usersProblem(message.users);
    case "delta":
      return usersProblem(message.users);
    case "alive":
      if (!isEvery(message.every)) return "every is not an interval in ms";
      if (!isCount(message.total, Number.MAX_SAFE_INTEGER)) return "total is not a count";
      if (!isCount(message.digest, 0xffffffff)) return "digest is not a 32-bit number";
      return null;
    case "ask":
      return isMemberId(message.to) ? null : "to is not a member id";
    case "bye":
      return null;
    default:
      return "kind is not snapshot, delta, alive, ask or bye";
  }
}
