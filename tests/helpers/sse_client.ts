/**
 * A raw SSE client over fetch: parses frames exactly as the spec says (so tests see the bytes
 * the server sent, not what a forgiving library made of them) and keeps comments too.
 */
export interface SseEvent {
  /** `event:` field, "message" when absent; "comment" for `:` lines. */
  readonly event: string;
  readonly data: string;
  /** The `id:` field of this frame, or undefined when the frame had none. */
  readonly id?: string;
  readonly retry?: number;
}

export interface SseStream extends AsyncDisposable {
  readonly response: Response;
  readonly status: number;
  /** Every event received so far. */
  readonly events: SseEvent[];
  /** Raw text received so far. */
  readonly text: () => string;
  /** Waits for the next event matching `filter` (default: any non-comment) after `from`. */
  next(filter?: (e: SseEvent) => boolean, timeoutMs?: number): Promise<SseEvent>;
  /** Waits until `count` events match `filter`. */
  waitFor(filter: (e: SseEvent) => boolean, count: number, timeoutMs?: number): Promise<SseEvent[]>;
  /** Resolves when the server ended the stream. */
  readonly ended: Promise<void>;
  close(): Promise<void>;
}

export async function openSse(
  url: string,
  init: { token?: string; lastEventId?: string; headers?: Record<string, string> } = {},
): Promise<SseStream> {
  const controller = new AbortController();
  const headers: Record<string, string> = { accept: "text/event-stream", ...init.headers };
  if (init.token) headers.authorization = `Bearer ${init.token}`;
  if (init.lastEventId !== undefined) headers["last-event-id"] = init.lastEventId;
  const response = await fetch(url, { headers, signal: controller.signal });
  const events: SseEvent[] = [];
  let raw = "";
  let waiters: (() => void)[] = [];
  const notify = () => {
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };
  let cursor = 0;
  let finished = false;
  let ended: Promise<void> = Promise.resolve();
  if (response.ok && response.body) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let frame: { event?: string; data: string[]; id?: string; retry?: number } = { data: [] };
    ended = (async () => {
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          raw += value;
          buffer += value;
          let nl: number;
          while ((nl = buffer.search(/\r\n|\r|\n/)) !== -1) {
            const line = buffer.slice(0, nl);
            buffer = buffer.slice(nl + (buffer.startsWith("\r\n", nl) ? 2 : 1));
            if (line === "") {
              if (frame.data.length > 0 || frame.event || frame.id !== undefined) {
                events.push({
                  event: frame.event ?? "message",
                  data: frame.data.join("\n"),
                  id: frame.id,
                  retry: frame.retry,
                });
              } else if (frame.retry !== undefined) {
                events.push({ event: "retry", data: "", retry: frame.retry });
              }
              frame = { data: [] };
              continue;
            }
            if (line.startsWith(":")) {
              events.push({ event: "comment", data: line.slice(1).trimStart() });
              continue;
            }
            const colon = line.indexOf(":");
            const field = colon === -1 ? line : line.slice(0, colon);
            let value = colon === -1 ? "" : line.slice(colon + 1);
            if (value.startsWith(" ")) value = value.slice(1);
            if (field === "data") frame.data.push(value);
            else if (field === "event") frame.event = value;
            else if (field === "id") frame.id = value;
            else if (field === "retry") frame.retry = Number(value);
          }
          notify();
        }
      } catch {
        // aborted by close()
      } finally {
        // Before waking waiters, so that they see the end instead of waiting out a timeout.
        finished = true;
        notify();
      }
    })();
  } else {
    finished = true;
    await response.body?.cancel();
  }

  async function waitFor(filter: (e: SseEvent) => boolean, count: number, timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = events.filter(filter);
      if (found.length >= count) return found.slice(0, count);
      if (finished) throw new Error(`stream ended with ${found.length}/${count} events: ${raw}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out with ${found.length}/${count} events: ${raw}`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
  }

  const close = async () => {
    controller.abort();
    await ended;
  };
  return {
    response,
    status: response.status,
    events,
    text: () => raw,
    waitFor,
    async next(filter = (e) => e.event !== "comment" && e.event !== "retry", timeoutMs = 5000) {
      for (;;) {
        const index = events.findIndex((e, i) => i >= cursor && filter(e));
        if (index !== -1) {
          cursor = index + 1;
          return events[index];
        }
        await waitFor((e) => events.indexOf(e) >= cursor && filter(e), 1, timeoutMs);
      }
    },
    ended,
    close,
    [Symbol.asyncDispose]: close,
  };
}
