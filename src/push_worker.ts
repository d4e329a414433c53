/**
 * The isolate that sends Web Push: it encrypts, signs and posts every due push on a thread of
 * its own, so that pushing never takes event-loop time from publishers and streams. It opens the
 * same KV file; the main isolate answers which users a push is still due for (presence lives
 * there) and turns what the sender reports into metrics and logs.
 */
import type { Config } from "./config.ts";
import { systemClock } from "./domain/ports.ts";
import { createPushDispatcher, type PushOutcome } from "./domain/push_dispatcher.ts";
import { createEndpointPolicy } from "./domain/push_endpoints.ts";
import { openKv, openReadKv } from "./open_kv.ts";
import { createWebPushSender } from "./push/web_push_sender.ts";
import { createKvAlarmReads } from "./storage/kv_alarm_reads.ts";
import { createKvPushOutbox } from "./storage/kv_push_outbox.ts";
import { createKvPushSubscriptions } from "./storage/kv_push_subscriptions.ts";
import { DEFAULT_EXPIRY_MARGIN_MS } from "./storage/kv_records.ts";
import { loadVapidKeys } from "./storage/kv_vapid_keys.ts";

/** From the main isolate. */
export type ToPushWorker =
  | { readonly kind: "start"; readonly config: Config }
  | { readonly kind: "due"; readonly id: number; readonly flags: readonly boolean[] }
  | { readonly kind: "stop" };

/** To the main isolate. */
export type FromPushWorker =
  | { readonly kind: "started" }
  | { readonly kind: "failed"; readonly error: string }
  | { readonly kind: "due"; readonly id: number; readonly userIds: readonly string[] }
  | { readonly kind: "outcomes"; readonly counts: Readonly<Record<string, number>> }
  | { readonly kind: "stats"; readonly pending: number; readonly oldestDueAt: number | null }
  | { readonly kind: "problem"; readonly message: string; readonly fields: Record<string, unknown> }
  | { readonly kind: "stopped" };

const scope = self as unknown as {
  onmessage: ((event: MessageEvent<ToPushWorker>) => void) | null;
  postMessage(message: FromPushWorker): void;
  close(): void;
};

const FLUSH_MS = 500;
const asked = new Map<
  number,
  { resolve: (flags: readonly boolean[]) => void; reject: (error: Error) => void }
>();
let nextId = 0;
let counts: Record<string, number> = {};
let stop: (() => Promise<void>) | null = null;

function flush() {
  if (Object.keys(counts).length === 0) return;
  scope.postMessage({ kind: "outcomes", counts });
  counts = {};
}

async function start(config: Config) {
  const kv = await openKv(config.kvPath);
  const readKv = await openReadKv(config.kvPath, kv);
  // The main isolate stored the keys before starting this one: this only reads them.
  const keys = await loadVapidKeys(kv, null, () => Promise.reject(new Error("no VAPID key in KV")));
  const endpoints = createEndpointPolicy(config.pushAllowedOrigins.split(","));
  const dispatcher = createPushDispatcher({
    outbox: createKvPushOutbox(kv, systemClock, DEFAULT_EXPIRY_MARGIN_MS),
    subscriptions: createKvPushSubscriptions(kv, systemClock, readKv),
    store: createKvAlarmReads(readKv, systemClock, Math.round(config.retentionDays * 86_400_000)),
    sender: createWebPushSender({ allowed: endpoints.allows }),
    vapidPairOf: keys.pairOf,
    subject: config.vapidSubject!,
    pushDue: (userIds) =>
      new Promise((resolve, reject) => {
        const id = nextId++;
        asked.set(id, { resolve, reject });
        scope.postMessage({ kind: "due", id, userIds });
      }),
    clock: systemClock,
    maxPending: config.pushMaxPending,
    owner: crypto.randomUUID(),
    onOutcome: (outcome: PushOutcome, n) => (counts[outcome] = (counts[outcome] ?? 0) + n),
    onStats: (stats) => scope.postMessage({ kind: "stats", ...stats }),
    onProblem: (message, fields) => scope.postMessage({ kind: "problem", message, fields }),
  });
  const flusher = setInterval(flush, FLUSH_MS);
  dispatcher.start();
  stop = async () => {
    // A round still waiting for its answer fails: its pushes stay in the outbox for later.
    for (const { reject } of asked.values()) reject(new Error("the sender is stopping"));
    asked.clear();
    await dispatcher.stop();
    clearInterval(flusher);
    flush();
    if (readKv !== kv) readKv.close();
    kv.close();
  };
}

scope.onmessage = async (event) => {
  const message = event.data;
  if (message.kind === "start") {
    try {
      await start(message.config);
      scope.postMessage({ kind: "started" });
    } catch (error) {
      scope.postMessage({ kind: "failed", error: String(error) });
    }
  } else if (message.kind === "due") {
    asked.get(message.id)?.resolve(message.flags);
    asked.delete(message.id);
  } else {
    await stop?.();
    scope.postMessage({ kind: "stopped" });
    scope.close();
  }
};
