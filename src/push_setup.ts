import { type Config, ConfigError } from "./config.ts";
import type { Clock } from "./domain/ports.ts";
import { createEndpointPolicy, pushKeysProblem } from "./domain/push_endpoints.ts";
import { createPushService, type PushService } from "./domain/push_service.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import { generateVapidKeys, vapidKeysProblem } from "./push/vapid.ts";
import { createKvPushSubscriptions } from "./storage/kv_push_subscriptions.ts";
import { loadVapidKeys } from "./storage/kv_vapid_keys.ts";
import type { FromPushWorker, ToPushWorker } from "./push_worker.ts";

export interface Push {
  readonly service: PushService;
  /** Whether an alarm with a notification for `userId` is to be pushed now. */
  readonly pushDue: (userId: string) => boolean;
  /** Starts the sender isolate (push_worker.ts); resolves once it runs. */
  startSender(): Promise<void>;
  /** Stops it after its current round; what it has not sent stays in the outbox. */
  stopSender(): Promise<void>;
}

/** How long a stopping sender may finish its round. */
const STOP_TIMEOUT_MS = 5_000;

/**
 * Web Push's pieces, or null when push is off (`ALARMD_PUSH=off`, or no VAPID subject: a push
 * service refuses messages that do not say whom to contact). `online` is presence: whether the
 * user has a live stream anywhere (null: unknown, and then the push goes out).
 */
export async function setUpPush(config: Config, deps: {
  kv: Deno.Kv;
  readKv: Deno.Kv;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  online: (userId: string) => boolean | null;
}): Promise<Push | null> {
  const { kv, clock, logger, metrics } = deps;
  if (config.push === "off") return null;
  if (!config.vapidSubject) {
    logger.info("push is off: set ALARMD_VAPID_SUBJECT (mailto: or https:) to turn it on");
    return null;
  }
  if ((config.vapidPublicKey === undefined) !== (config.vapidPrivateKey === undefined)) {
    throw new ConfigError(
      "ALARMD_VAPID_PUBLIC_KEY and ALARMD_VAPID_PRIVATE_KEY go together: set both or neither",
    );
  }
  const configured = config.vapidPublicKey && config.vapidPrivateKey
    ? { publicKey: config.vapidPublicKey, privateKey: config.vapidPrivateKey }
    : null;
  if (configured) {
    const problem = await vapidKeysProblem(configured);
    if (problem) throw new ConfigError(`ALARMD_VAPID_PUBLIC_KEY/PRIVATE_KEY: ${problem}`);
  }
  let endpoints: ReturnType<typeof createEndpointPolicy>;
  try {
    endpoints = createEndpointPolicy(config.pushAllowedOrigins.split(","));
  } catch (error) {
    throw new ConfigError(`ALARMD_PUSH_ALLOWED_ORIGINS: ${(error as Error).message}`);
  }
  const keys = await loadVapidKeys(kv, configured, generateVapidKeys);
  const pushDue = config.push === "always"
    ? () => true
    : (userId: string) => deps.online(userId) !== true;
  let worker: Worker | null = null;

  function onMessage(message: FromPushWorker) {
    if (message.kind === "due") {
      const flags = message.userIds.map(pushDue);
      worker?.postMessage({ kind: "due", id: message.id, flags } satisfies ToPushWorker);
    } else if (message.kind === "outcomes") {
      for (const [result, n] of Object.entries(message.counts)) metrics.pushes.inc({ result }, n);
    } else if (message.kind === "stats") {
      Object.assign(metrics.outbox, { pending: message.pending, oldestDueAt: message.oldestDueAt });
    } else if (message.kind === "problem") {
      logger.warn(message.message, message.fields);
    }
  }

  /** The sender's next message of `kind` (or its failure). */
  const next = (kind: FromPushWorker["kind"]) =>
    new Promise<FromPushWorker>((resolve) => {
      const listener = (event: MessageEvent<FromPushWorker>) => {
        if (event.data.kind !== kind && event.data.kind !== "failed") return;
        worker?.removeEventListener("message", listener);
        resolve(event.data);
      };
      worker!.addEventListener("message", listener);
    });

  logger.info("push is on", {
    policy: config.push,
    publicKey: keys.current.publicKey,
    allowedOrigins: config.pushAllowedOrigins || "the known push services",
  });
  return {
    service: createPushService({
      subscriptions: createKvPushSubscriptions(kv, clock, deps.readKv),
      vapidPublicKey: keys.current.publicKey,
      endpointProblem: endpoints.refusal,
      keysProblem: pushKeysProblem,
    }),
    pushDue,
    async startSender() {
      worker = new Worker(new URL("./push_worker.ts", import.meta.url), { type: "module" });
      worker.addEventListener(
        "message",
        (event: MessageEvent<FromPushWorker>) => onMessage(event.data),
      );
      const started = next("started");
      worker.postMessage({ kind: "start", config } satisfies ToPushWorker);
      const outcome = await started;
      if (outcome.kind === "failed") throw new Error(`the push sender failed: ${outcome.error}`);
    },
    async stopSender() {
      if (!worker) return;
      const stopped = next("stopped");
      worker.postMessage({ kind: "stop" } satisfies ToPushWorker);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([stopped, new Promise((r) => (timer = setTimeout(r, STOP_TIMEOUT_MS)))]);
      clearTimeout(timer);
      worker.terminate();
      worker = null;
    },
  };
}
