import denoJson from "../deno.json" with { type: "json" };
import { createBroadcastBus } from "./broker/broadcast_bus.ts";
import { createMemoryBus } from "./broker/memory_bus.ts";
import { createRedisBus, RejectedMessageError } from "./broker/redis_bus.ts";
import type { Config } from "./config.ts";
import { ALARM_LIMITS } from "./domain/alarm.ts";
import { createAlarmService } from "./domain/alarm_service.ts";
import { UnavailableError } from "./domain/errors.ts";
import { createLiveHub } from "./domain/live_hub.ts";
import type { Clock } from "./domain/ports.ts";
import { systemClock } from "./domain/ports.ts";
import { createRateLimiter } from "./domain/rate_limiter.ts";
import { startExpirySweeper } from "./expiry_sweeper.ts";
import { createApp } from "./http/app.ts";
import { createJwtAuthenticator } from "./http/auth.ts";
import { parseTrustedProxies } from "./http/client_address.ts";
import { listenDeno } from "./http/deno_transport.ts";
import { listenNode } from "./http/node_transport.ts";
import { createOriginPolicy } from "./http/origin_policy.ts";
import { createHubObserver } from "./hub_observer.ts";
import type { Logger } from "./log.ts";
import { createLogger, errorFields } from "./log.ts";
import { memoryCap, readContainerMemoryLimit, watchMemory } from "./memory_limit.ts";
import { createMetrics } from "./metrics.ts";
import { FD_RESERVE, readOpenFileLimit, socketCap, streamCap } from "./open_file_limit.ts";
import { openKv, openReadKv } from "./open_kv.ts";
import { openPresence } from "./open_presence.ts";
import { setUpPush } from "./push_setup.ts";
import { createKvAlarmStore } from "./storage/kv_alarm_store.ts";
import { loadBusKey } from "./storage/kv_bus_key.ts";
import { ensureKvLayout } from "./storage/kv_layout.ts";
import { loadWebAssets } from "./web_assets.ts";

export const VERSION: string = denoJson.version;

export interface RunningServer {
  readonly url: string;
  readonly port: number;
  /** Ends every stream, stops accepting, finishes in-flight writes, closes KV. */
  shutdown(): Promise<void>;
  /** Resolves when the server has stopped. */
  readonly finished: Promise<void>;
  /** Open streams, for tests and metrics. */
  connectionCount(userId?: string): number;
}

export interface StartOptions {
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Which of `config.workers` isolates this is; 0 (the primary) also sweeps expired alarms. */
  readonly worker?: number;
}

/**
 * The composition root: opens KV, builds the store, the bus, the live hub, the service and the
 * HTTP app, connects them, and serves the app on the configured transport.
 */
export async function startServer(
  config: Config,
  options: StartOptions = {},
): Promise<RunningServer> {
  const worker = options.worker ?? 0;
  const severalWorkers = config.workers > 1;
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger(config.logLevel);
  let stopping: Promise<void> | null = null;
  const kv = await openKv(config.kvPath);
  const retentionMs = Math.round(config.retentionDays * 86_400_000);
  const layout = await ensureKvLayout(kv, { now: () => clock.now(), retentionMs });
  if (layout.moved + layout.dropped > 0) {
    logger.info("KV file moved to the current key layout", {
      keysMoved: layout.moved,
      keysDropped: layout.dropped,
    });
  }
  const readKv = await openReadKv(config.kvPath, kv);
  const metrics = createMetrics({
    // Rendered only once serving, when `hub` below exists.
    connections: () => hub.connectionCount,
    memory: () => Deno.memoryUsage(),
    queuedBytes: () => hub.queuedBytes,
  });
  const store = createKvAlarmStore(kv, {
    readKv,
    clock,
    retentionMs,
    maxAlarmsPerUser: config.maxAlarmsPerUser,
    pushTtlMs: config.pushTtlSeconds * 1000,
    onError: (error) => {
      metrics.kvErrors.inc();
      logger.error("storage error", errorFields(error));
    },
    onCommit: (ms, changes) => {
      metrics.kvCommitLatency.observe(ms / 1000);
      metrics.kvCommitSize.observe(changes);
    },
  });
  store.onChange((change) => {
    if (change.kind === "created") metrics.alarmsCreated.inc();
  });
  const onBusError = (error: unknown) =>
    error instanceof RejectedMessageError
      ? logger.error("rejected a message from Redis; streams catch up from KV", {
        channel: error.channel,
        reason: error.reason,
        rejected: error.preview,
      })
      : logger.error("bus error", errorFields(error));
  // Fan-out reaches other instances through Redis, the other isolates of this process through a
  // BroadcastChannel; a lone isolate needs only its own listeners.
  const bus = config.redisUrl
    ? createRedisBus({
      url: config.redisUrl,
      key: await loadBusKey(kv),
      onError: onBusError,
      onState: (state) =>
        state === "connected"
          ? logger.info("redis reconnected; streams catch up from KV")
          : logger.warn("redis connection lost; fan-out to other instances paused"),
    })
    : severalWorkers
    ? createBroadcastBus({ onError: onBusError })
    : createMemoryBus({ onError: onBusError });
  // Whether a push is due needs presence, which needs the hub: both exist before any publish.
  const service = createAlarmService({ store, bus, pushDue: (u) => push?.pushDue(u) ?? false });
  const openFiles = readOpenFileLimit();
  const maxConnections = streamCap(config.maxConnections, openFiles, config.workers);
  if (maxConnections < config.maxConnections && worker === 0) {
    logger.warn("the open-file limit caps streams below ALARMD_MAX_CONNECTIONS; raise ulimit -n", {
      openFileLimit: openFiles,
      reservedForOtherFiles: FD_RESERVE,
      streamsPerWorker: maxConnections,
      maxConnections: config.maxConnections,
    });
  }
  const memory = memoryCap(config.maxMemoryMb, readContainerMemoryLimit());
  const maxMemoryMb = memory.bytes === null ? null : Math.floor(memory.bytes / 2 ** 20);
  if (worker === 0) {
    logger.info("caps in force", {
      maxConnections,
      workers: config.workers,
      maxConnectionsPerUser: config.maxConnectionsPerUser,
      maxQueueBytes: config.maxQueueBytes,
      maxMemoryMb,
      maxMemoryFrom: memory.source,
    });
  }
  const memoryWatch = watchMemory({
    capBytes: memory.bytes,
    rss: () => Deno.memoryUsage().rss,
    clock,
    onChange: (over, rss) => {
      const fields = { rssMb: Math.round(rss / 2 ** 20), maxMemoryMb };
      if (over) logger.warn("resident memory above its cap: new streams are refused", fields);
      else logger.info("resident memory below its cap again: streams are accepted", fields);
    },
  });
  const hub = createLiveHub({
    store,
    bus,
    clock,
    memoryOver: memoryWatch.over,
    config: {
      maxConnections,
      maxConnectionsPerUser: config.maxConnectionsPerUser,
      maxQueueBytes: config.maxQueueBytes,
      heartbeatMs: config.heartbeatMs,
      streamTimeoutMs: config.sseTimeoutMs,
      retryMs: config.retryMs,
      writeTimeoutMs: config.writeTimeoutMs,
    },
    observer: createHubObserver({ metrics, logger, clock }),
  });
  const presence = await openPresence(config, { kv, hub, clock, logger });
  const online = (userId: string) => presence.online(userId);
  const push = await setUpPush(config, { kv, readKv, clock, logger, metrics, online });
  const authenticate = createJwtAuthenticator({
    secret: config.jwtSecret,
    previousSecret: config.jwtSecretPrevious,
    jwksUrl: config.jwtJwksUrl,
    issuer: config.jwtIssuer,
    audience: config.jwtAudience,
    onKeySetError: (failure) => logger.error("cannot fetch the JWT key set", failure),
  });
  const onUnexpectedError = (error: unknown, requestId: string) =>
    logger.error("unexpected error", { requestId, ...errorFields(error) });
  const limits = {
    publish: createRateLimiter({
      name: "publish",
      scope: "publisher",
      ratePerSecond: config.ratePublishPerSecond,
      burst: 2 * config.ratePublishPerSecond,
      largestCost: ALARM_LIMITS.batchMax,
      clock,
    }),
    user: createRateLimiter({
      name: "request",
      scope: "user",
      ratePerSecond: config.rateUserPerSecond,
      burst: 2 * config.rateUserPerSecond,
      clock,
    }),
    connectionAttempt: createRateLimiter({
      name: "connection attempt",
      scope: "address",
      ratePerSecond: config.rateConnectPerIpPerSecond,
      burst: 5 * config.rateConnectPerIpPerSecond,
      clock,
    }),
  };
  const app = createApp({
    limits,
    origins: createOriginPolicy(config.corsOrigins, config.publicUrl),
    proxies: parseTrustedProxies(config.trustedProxies),
    service,
    hub,
    presence,
    push: push?.service,
    authenticate,
    worker,
    ready: async () => {
      if (stopping) throw new UnavailableError("shutting down");
      const [, keys, busProblem] = await Promise.all([
        store.ping(),
        authenticate.keySetStatus(),
        bus.ready().then(() => null, (error) => error instanceof Error ? error.message : "down"),
      ]);
      if (keys.state === "missing") throw new UnavailableError(keys.reason);
      const reasons: string[] = [];
      if (busProblem !== null) {
        reasons.push(`${busProblem}: fan-out to other instances is paused`);
      }
      if (keys.state === "stale") reasons.push(keys.reason);
      return reasons;
    },
    metrics: metrics.render,
    version: VERSION,
    publicUrl: config.publicUrl,
    webAssets: await loadWebAssets(),
    onUnexpectedError,
    logger,
  });

  // Every isolate shares the KV file, so one sweeper is enough: the primary's.
  const sweeper = worker === 0 ? startExpirySweeper(store, logger) : undefined;

  const listen = config.transport === "node" ? listenNode : listenDeno;
  const listener = await listen(app, {
    port: config.port,
    host: config.host,
    // Workers share the primary's port; the kernel spreads connections over them.
    reusePort: severalWorkers,
    headerTimeoutMs: config.headerTimeoutMs,
    idleTimeoutMs: config.idleTimeoutMs,
    maxSockets: socketCap(openFiles, config.workers),
    onTransportError: (message, fields) => logger.warn(message, fields),
  });
  const { addr } = listener;
  const host = addr.hostname === "0.0.0.0" || addr.hostname === "::" ? "localhost" : addr.hostname;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${addr.port}`;
  logger.info("alarmd listening", { url, version: VERSION, transport: config.transport });
  await push?.startSender();

  return {
    url,
    port: addr.port,
    finished: listener.finished,
    connectionCount: (userId) =>
      userId === undefined ? hub.connectionCount : hub.connectionCountOf(userId),
    shutdown() {
      stopping ??= (async () => {
        // Readiness fails from here on, so a load balancer stops sending new clients.
        logger.info("shutting down", { connections: hub.connectionCount });
        sweeper?.stop();
        memoryWatch.stop();
        await push?.stopSender();
        // Streams first: clients reconnect elsewhere (with Last-Event-ID), and an HTTP server's
        // shutdown would otherwise wait for responses that never end.
        await hub.close();
        await presence.close();
        await listener.stop();
        await store.close();
        await bus.close();
        if (readKv !== kv) readKv.close();
        kv.close();
        logger.info("alarmd stopped");
      })();
      return stopping;
    },
  };
}
