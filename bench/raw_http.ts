/**
 * A keep-alive HTTP/1.1 client over raw TCP sockets, for the publisher. `fetch` cost the
 * publisher process about a third of a core at 5,000 requests/s on the 2-core bench machine,
 * CPU taken from the server under test (same for every server compared); this pool costs a
 * fraction of that. Requests are queued in order and each connection carries one at a time.
 */
const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface Job {
  bytes: Uint8Array;
  resolve(status: number): void;
  reject(error: unknown): void;
}

export interface RawHttpPool {
  request(
    method: string,
    path: string,
    headers: Record<string, string>,
    body: string,
  ): Promise<number>;
  close(): void;
}

const HEADER_END = [13, 10, 13, 10];

function indexOfHeaderEnd(buf: Uint8Array, from: number, to: number): number {
  for (let i = Math.max(0, from - 3); i + 3 < to; i++) {
    if (
      buf[i] === HEADER_END[0] && buf[i + 1] === HEADER_END[1] && buf[i + 2] === HEADER_END[2] &&
      buf[i + 3] === HEADER_END[3]
    ) return i;
  }
  return -1;
}

/** `size` connections to `url`'s host, opened lazily as requests queue up. */
export function createRawHttpPool(url: string, size: number): RawHttpPool {
  const { hostname, port } = new URL(url);
  const queue: Job[] = [];
  const idle: Connection[] = [];
  let open = 0;
  let closed = false;

  class Connection {
    conn: Deno.TcpConn | null = null;
    buf = new Uint8Array(64 * 1024);

    async run(job: Job) {
      for (let current: Job | undefined = job; current; current = queue.shift()) {
        try {
          current.resolve(await this.exchange(current));
        } catch (error) {
          this.conn?.close();
          this.conn = null;
          current.reject(error);
        }
      }
      if (closed) this.conn?.close();
      else idle.push(this);
    }

    async exchange(job: Job): Promise<number> {
      this.conn ??= await Deno.connect({ hostname, port: Number(port) });
      const conn = this.conn;
      await writeAll(conn, job.bytes);
      let len = 0;
      let headerEnd = -1;
      while (headerEnd < 0) {
        const n = await conn.read(this.buf.subarray(len));
        if (n === null) throw new Error("connection closed before the response");
        headerEnd = indexOfHeaderEnd(this.buf, len, len + n);
        len += n;
        if (headerEnd < 0 && len === this.buf.byteLength) {
          throw new Error("response head too large");
        }
      }
      const head = decoder.decode(this.buf.subarray(0, headerEnd));
      const status = Number(head.slice(9, 12));
      const lengthMatch = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      const chunked = /\r\ntransfer-encoding:\s*chunked/i.test(head);
      const bodyStart = headerEnd + 4;
      if (lengthMatch) {
        let remaining = Number(lengthMatch[1]) - (len - bodyStart);
        while (remaining > 0) {
          const n = await conn.read(this.buf.subarray(0, Math.min(remaining, this.buf.byteLength)));
          if (n === null) throw new Error("connection closed mid-body");
          remaining -= n;
        }
      } else if (chunked) {
        // The bench's servers send small bodies: read until the terminating zero chunk.
        let tail = decoder.decode(this.buf.subarray(bodyStart, len));
        while (!/(^|\r\n)0\r\n\r\n$/.test(tail)) {
          const n = await conn.read(this.buf);
          if (n === null) throw new Error("connection closed mid-body");
          tail = (tail + decoder.decode(this.buf.subarray(0, n))).slice(-64);
        }
      }
      if (/\r\nconnection:\s*close/i.test(head)) {
        conn.close();
        this.conn = null;
      }
      return status;
    }
  }

  async function writeAll(conn: Deno.TcpConn, bytes: Uint8Array) {
    for (let off = 0; off < bytes.byteLength;) off += await conn.write(bytes.subarray(off));
  }

  return {
    request(method, path, headers, body) {
      if (closed) return Promise.reject(new Error("pool closed"));
      const bodyBytes = encoder.encode(body);
      let head = `${method} ${path} HTTP/1.1\r\nhost: ${hostname}:${port}\r\n`;
      for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
      const headBytes = encoder.encode(`${head}content-length: ${bodyBytes.byteLength}\r\n\r\n`);
      // One buffer, one write: the request leaves in a single segment.
      const bytes = new Uint8Array(headBytes.byteLength + bodyBytes.byteLength);
      bytes.set(headBytes);
      bytes.set(bodyBytes, headBytes.byteLength);
      return new Promise<number>((resolve, reject) => {
        const job = { bytes, resolve, reject };
        const free = idle.pop();
        if (free) free.run(job);
        else if (open < size) {
          open++;
          new Connection().run(job);
        } else queue.push(job);
      });
    },
    close() {
      closed = true;
      for (const c of idle.splice(0)) c.conn?.close();
      for (const job of queue.splice(0)) job.reject(new Error("pool closed"));
    },
  };
}
