/**
 * Who the client is when alarmd sits behind proxies. Only peers listed in
 * ALARMD_TRUSTED_PROXIES are believed about `X-Forwarded-For`, `-Proto` and `-Host`: anyone else
 * could name any address and slip past per-address limits or pose as the server's own origin.
 */
export interface ProxyTrust {
  trusts(address: string): boolean;
}

interface Range {
  readonly bytes: Uint8Array;
  readonly prefix: number;
}

/** Parses `10.0.0.1, 10.1.0.0/16, ::1, fd00::/8`; throws on an entry that is not an IP or CIDR. */
export function parseTrustedProxies(list: string): ProxyTrust {
  const ranges: Range[] = [];
  for (const entry of list.split(",").map((s) => s.trim()).filter(Boolean)) {
    const [ip, bits, extra] = entry.split("/");
    const bytes = ipBytes(ip);
    const max = bytes ? bytes.length * 8 : 0;
    const prefix = bits === undefined ? max : Number(bits);
    if (!bytes || extra !== undefined || !/^\d*$/.test(bits ?? "") || !(prefix <= max)) {
      throw new Error(`"${entry}" is not an IP address or CIDR range`);
    }
    ranges.push({ bytes, prefix });
  }
  return {
    trusts(address) {
      if (ranges.length === 0) return false;
      const bytes = ipBytes(address);
      return bytes !== null && ranges.some((r) => inRange(bytes, r));
    },
  };
}

function inRange(bytes: Uint8Array, range: Range): boolean {
  if (bytes.length !== range.bytes.length) return false;
  let bits = range.prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((bytes[i] & mask) !== (range.bytes[i] & mask)) return false;
  }
  return true;
}

/** An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`) is the IPv4 address it carries. */
export function normalizeAddress(address: string): string {
  const unbracketed = address.startsWith("[") ? address.slice(1, -1) : address;
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(unbracketed) ? unbracketed.slice(7) : unbracketed;
}

/** The address's bytes (4 or 16), or null when it is not an IP literal. */
export function ipBytes(text: string): Uint8Array | null {
  const address = normalizeAddress(text.trim());
  if (/^\d+\.\d+\.\d+\.\d+$/.test(address)) {
    const parts = address.split(".").map(Number);
    return parts.every((p) => p <= 255) ? Uint8Array.from(parts) : null;
  }
  if (!address.includes(":") || !/^[0-9a-f:.]+$/i.test(address)) return null;
  const halves = address.split("::");
  if (halves.length > 2) return null;
  const head = toWords(halves[0]);
  const tail = halves.length === 2 ? toWords(halves[1]) : [];
  if (!head || !tail) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const all = [...head, ...Array(missing).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  all.forEach((w, i) => {
    bytes[2 * i] = w >> 8;
    bytes[2 * i + 1] = w & 0xff;
  });
  return bytes;
}

/** 16-bit words of one side of `::`, an IPv4 tail counting as two; null when malformed. */
function toWords(part: string): number[] | null {
  const words: number[] = [];
  for (const group of part === "" ? [] : part.split(":")) {
    if (group.includes(".")) {
      const v4 = ipBytes(group);
      if (!v4 || v4.length !== 4) return null;
      words.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
    } else if (/^[0-9a-f]{1,4}$/i.test(group)) words.push(parseInt(group, 16));
    else return null;
  }
  return words;
}

/** The client as the pipeline uses it: its address, and the scheme and host it asked for. */
export interface ClientView {
  readonly address: string;
  readonly proto: string | undefined;
  readonly host: string | undefined;
}

/**
 * From a trusted peer, the client is the right-most `X-Forwarded-For` entry that is not itself
 * a trusted proxy (entries to its left were written by the client and prove nothing).
 */
export function clientView(
  trust: ProxyTrust,
  peer: string,
  header: (name: string) => string | undefined,
): ClientView {
  const address = normalizeAddress(peer);
  if (!trust.trusts(address)) return { address, proto: undefined, host: header("host") };
  let client = address;
  const forwarded = header("x-forwarded-for");
  if (forwarded) {
    const hops = forwarded.split(",").map((s) => normalizeAddress(s.trim())).filter(Boolean);
    for (let i = hops.length - 1; i >= 0; i--) {
      client = hops[i];
      if (!trust.trusts(client)) break;
    }
  }
  const first = (name: string) => header(name)?.split(",")[0].trim() || undefined;
  return {
    address: client,
    proto: first("x-forwarded-proto")?.toLowerCase(),
    host: first("x-forwarded-host") ?? header("host"),
  };
}
