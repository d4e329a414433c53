/**
 * ULIDs (https://github.com/ulid/spec): 48-bit millisecond time + 80 random bits in Crockford
 * base32, so that string order is creation order. Monotonic: every id a generator returns is
 * greater than the previous one and than any `floor` the caller names, which is how a store
 * keeps a user's ids increasing in commit order even when clocks step back or another process
 * wrote a newer id first.
 */
const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const ULID_PATTERN = /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/;
const MAX_TIME = 2 ** 48 - 1;

/**
 * The lowest ULID: as a stream's Last-Event-ID it means "nothing seen yet", which a client that
 * connected before its user had any alarm resumes from, so that none created meanwhile is missed.
 */
export const ULID_ZERO = "0".repeat(26);

export function isUlid(value: string): boolean {
  return ULID_PATTERN.test(value);
}

/** The smallest ULID of a millisecond: every id created at or after `ms` sorts at or above it. */
export function ulidFloorOf(ms: number): string {
  return encodeTime(ms) + "0".repeat(16);
}

/** The number characters `from` to `to` of `id` encode; exact up to 2^53 (10 characters). */
function decode32(id: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) n = n * 32 + ALPHABET.indexOf(id[i]);
  return n;
}

/** `n` (a non-negative integer below 32^chars) as exactly `chars` base32 characters. */
function encode32(n: number, chars: number): string {
  let out = "";
  for (let i = 0; i < chars; i++) {
    out = ALPHABET[n % 32] + out;
    n = Math.floor(n / 32);
  }
  return out;
}

/** The millisecond an id's first 10 characters encode (never before its alarm's createdAt). */
export function ulidTimeOf(id: string): number {
  return decode32(id, 0, 10);
}

let timeCacheMs = -1;
let timeCache = "";

/** Called for every alarm of a batch, mostly within one millisecond: the last result is kept. */
function encodeTime(ms: number): string {
  const t = Math.min(Math.max(0, Math.floor(ms)), MAX_TIME);
  if (t !== timeCacheMs) {
    timeCacheMs = t;
    timeCache = encode32(t, 10);
  }
  return timeCache;
}

/**
 * Random bytes fetched a block at a time: a batch creates hundreds of ids at once, and each
 * `getRandomValues` call has a cost of its own, whatever the number of bytes.
 */
const randomPool = new Uint8Array(4096);
let randomAt = randomPool.length;

function randomBytes(n: number): Uint8Array {
  if (randomAt + n > randomPool.length) {
    crypto.getRandomValues(randomPool);
    randomAt = 0;
  }
  randomAt += n;
  return randomPool.subarray(randomAt - n, randomAt);
}

function randomPart(): string {
  const bytes = randomBytes(16);
  let out = "";
  for (let i = 0; i < 16; i++) out += ALPHABET[bytes[i] & 31];
  return out;
}

/** The next ULID in string order; throws only when the 128-bit space is exhausted. */
export function incrementUlid(id: string): string {
  const chars = id.split("");
  for (let i = chars.length - 1; i >= 0; i--) {
    const v = ALPHABET.indexOf(chars[i]);
    if (v < 31) {
      chars[i] = ALPHABET[v + 1];
      return chars.join("");
    }
    chars[i] = "0";
  }
  throw new RangeError("ULID space exhausted");
}

const TAIL_CHARS = 8;
const TAIL_SPAN = 2 ** 40;

/**
 * A ULID greater than `id` by a random step of 1 to 2^40: two processes stepping past the same
 * floor (another process's newest id) must not land on the same id. Runs for most ids of a
 * batch (all share a millisecond), so it adds in doubles on the last 8 characters (40 bits,
 * exact) and carries into the rest only on overflow.
 */
export function ulidAfter(id: string): string {
  const head = id.slice(0, id.length - TAIL_CHARS);
  let tail = decode32(id, head.length, id.length);
  const r = randomBytes(5);
  tail += 1 + (((r[0] * 256 + r[1]) * 256 + r[2]) * 256 + r[3]) * 256 + r[4];
  let prefix = head;
  if (tail >= TAIL_SPAN) {
    tail -= TAIL_SPAN;
    prefix = incrementUlid(head);
    // The first character holds the top 3 bits of 128 (`7` at most).
    if (prefix[0] > "7") {
      throw new RangeError("ULID space exhausted");
    }
  }
  return prefix + encode32(tail, TAIL_CHARS);
}

export interface UlidGenerator {
  /** A new id greater than every id this generator returned and than `floor`, if given. */
  next(nowMs: number, floor?: string | null): string;
}

export function createUlidGenerator(): UlidGenerator {
  let last = "";
  return {
    next(nowMs, floor) {
      const candidate = encodeTime(nowMs) + randomPart();
      let bound = last;
      if (floor && floor > bound) bound = floor;
      last = candidate > bound ? candidate : ulidAfter(bound);
      return last;
    },
  };
}
