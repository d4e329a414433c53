/**
 * HTTP/1.1 written by hand over a TCP socket, for what `fetch` will not send: chunked bodies
 * cut short, absolute-form targets, malformed request lines, oversized heads.
 */
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface RawResponse {
  readonly status: number;
  /** Header names lower-cased. */
  readonly headers: Record<string, string>;
  readonly body: string;
  /** Whether the server closed the connection after the answer. */
  readonly closed: boolean;
}

/**
 * Sends `request` (a string, or byte chunks written one after another) and reads one answer:
 * by Content-Length or chunked framing, or up to the close.
 */
export async function rawRequest(
  url: string,
  request: string | (string | Uint8Array)[],
  options: { timeoutMs?: number } = {},
): Promise<RawResponse> {
  const { hostname, port } = new URL(url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  const timer = setTimeout(() => conn.close(), options.timeoutMs ?? 10_000);
  try {
    for (const part of typeof request === "string" ? [request] : request) {
      await writeAll(conn, typeof part === "string" ? encoder.encode(part) : part);
    }
    return await readResponse(conn);
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // closed by the timer
    }
  }
}

export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

/** Reads one response from `conn`, leaving the connection open. */
export async function readResponse(conn: Deno.Conn): Promise<RawResponse> {
  let data = new Uint8Array(0);
  let closed = false;
  const more = async () => {
    const buf = new Uint8Array(65536);
    const n = await conn.read(buf).catch(() => null);
    if (n === null) {
      closed = true;
      return false;
    }
    const next = new Uint8Array(data.length + n);
    next.set(data);
    next.set(buf.subarray(0, n), data.length);
    data = next;
    return true;
  };
  let headEnd = -1;
  while ((headEnd = decoder.decode(data).indexOf("\r\n\r\n")) === -1) {
    if (!(await more())) {
      throw new Error(`connection closed before a response head: ${decoder.decode(data)}`);
    }
  }
  const head = decoder.decode(data).slice(0, headEnd);
  const [statusLine, ...lines] = head.split("\r\n");
  const status = Number(statusLine.split(" ")[1]);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const bodyStart = encoder.encode(decoder.decode(data).slice(0, headEnd + 4)).length;
  let body: string;
  if (status === 204 || status === 304) body = "";
  else if (headers["content-length"] !== undefined) {
    const length = Number(headers["content-length"]);
    while (data.length - bodyStart < length && (await more()));
    body = decoder.decode(data.subarray(bodyStart, bodyStart + length));
  } else if (headers["transfer-encoding"] === "chunked") {
    while (!decoder.decode(data.subarray(bodyStart)).includes("0\r\n\r\n") && (await more()));
    body = decoder.decode(data.subarray(bodyStart)).replace(/(^|\r\n)[0-9a-f]+\r\n/gi, "$1")
      .replace(/\r\n/g, "");
  } else {
    while (await more());
    body = decoder.decode(data.subarray(bodyStart));
  }
  if (!closed && headers["connection"] === "close") {
    const probe = new Uint8Array(1);
    closed = (await conn.read(probe).catch(() => null)) === null;
  }
  return { status, headers, body, closed };
}

/** A body in chunked transfer coding, in chunks of `size` bytes. */
export function chunked(body: string, size = 7): string {
  let out = "";
  for (let i = 0; i < body.length; i += size) {
    const part = body.slice(i, i + size);
    out += `${encoder.encode(part).length.toString(16)}\r\n${part}\r\n`;
  }
  return out + "0\r\n\r\n";
}
