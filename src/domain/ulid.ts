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

export function isUlid(value: string): boolean {
  return ULID_PATTERN.test(value);
}

/** The smallest ULID of a millisecond: every id created at or after `ms` sorts at or above it. */
export function ulidFloorOf(ms: number): string {
  return encodeTime(ms) + "0".repeat(16);
}

/** The millisecond an id's first 10 characters encode (never before its alarm's createdAt). */
export function ulidTimeOf(id: string): number {
  let t = 0;
  for (let i = 0; i < 10; i++) t = t * 32 + ALPHABET.indexOf(id[i]);
  return t;
}

function encodeTime(ms: number): string {
  let t = Math.min(Math.max(0, Math.floor(ms)), MAX_TIME);
  let out = "";
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[t % 32] + out;
    t = Math.floor(t / 32);
  }
  return out;
}

function randomPart(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let out = "";
  for (const b of bytes) out += ALPHABET[b & 31];
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

/**
 * A ULID greater than `id` by a random step of up to 2^40: two processes stepping past the same
 * floor (another process's newest id) must not land on the same id.
 */
export function ulidAfter(id: string): string {
  let value = 0n;
  for (const ch of id) value = value * 32n + BigInt(ALPHABET.indexOf(ch));
  const step = crypto.getRandomValues(new Uint32Array(2));
  value += 1n + (BigInt(step[0]) << 8n) + BigInt(step[1] & 0xff);
  if (value >= 1n << 128n) throw new RangeError("ULID space exhausted");
  let out = "";
  for (let i = 0; i < 26; i++) {
    out = ALPHABET[Number(value % 32n)] + out;
    value /= 32n;
  }
  return out;
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
