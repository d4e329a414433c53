import denoJson from "../deno.json" with { type: "json" };
import { createMemoryBus } from "./broker/memory_bus.ts";
import { createRedisBus, RejectedMessageError } from "./broker/redis_bus.ts";
import { createBroadcastBus } from "./broker/broadcast_bus.ts";
import type { Config } from "./config.ts";
import { ALARM_LIMITS } from "./domain/alarm.ts";
import { createAlarmService } from "./domain/alarm_service.ts";
import { createLiveHub } from "./domain/live_hub.ts";
import type { Clock } from "./domain/ports.ts";
import { systemClock } from "./domain/ports.ts";
import { createApp } from "./http/app.ts";
import { createJwtAuthenticator } from "./http/auth.ts";
import { parseTrustedProxies } from "./http/client_address.ts";
import { listenDeno } from "./http/deno_transport.ts";
import { listenNode } from "./http/node_transport.ts";
import { createOriginPolicy } from "./http/origin_policy.ts";
import type { WebAsset } from "./http/web_routes.ts";
import type { Logger } from "./log.ts";
import { createLogger, errorFields } from "./log.ts";
import { createKvAlarmStore } from "./storage/kv_alarm_store.ts";
import { ensureKvLayout } from "./storage/kv_layout.ts";
import { loadBusKey } from "./storage/kv_bus_key.ts";
import { createMetrics } from "./metrics.ts";
import { memoryCap, readContainerMemoryLimit, watchMemory } from "./memory_limit.ts";
import { FD_RESERVE, readOpenFileLimit, socketCap, streamCap } from "./open_file_limit.ts";
import { createRateLimiter } from "./domain/rate_limiter.ts";
import { UnavailableError } from "./domain/errors.ts";

export const VERSION: string = denoJson.version;

const SWEEP_INTERVAL_MS = 30_000;

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

/**
 * The composition root: opens KV at the configured path (never a bare `Deno.openKv()`, which
 * is in-memory inside a compiled binary), builds the adapters and services, serves the app.
 */
export interface StartOptions {
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Which of `config.workers` isolates this is; 0 (the primary) also sweeps expired alarms. */
  readonly worker?: number;
}

export async function startServer(
  config: Config,
  options: StartOptions = {},
): Promise<RunningServer> {
  const worker = options.worker ?? 0;
  const shared = config.workers > 1;
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger(config.logLevel);
  const kv = await openKv(config.kvPath);
  const retentionMs = Math.round(config.retentionDays * 86_400_000);
  const layout = await ensureKvLayout(kv, { now: () => clock.now(), retentionMs });
  if (layout.moved + layout.dropped > 0) {
    logger.info("KV file moved to the current key layout", {
      keysMoved: layout.moved,
      keysDropped: layout.dropped,
    });
  }
  // Reads on their own connection do not queue behind commits (see KvAlarmStoreOptions.readKv).
  const readKv = isLocalFile(config.kvPath) ? await Deno.openKv(config.kvPath) : kv;
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
    : shared
    ? createBroadcastBus({ onError: onBusError })
    : createMemoryBus({ onError: onBusError });
  const service = createAlarmService({ store, bus });
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
    observer: {
      opened: (c) => {
        metrics.connectionsOpened.inc();
        logger.info("stream opened", { userId: c.userId, connectionId: c.id });
      },
      closed: (c, reason) => {
        metrics.connectionsClosed.inc({ reason });
        if (reason === "slow_client" || reason === "write_timeout") {
          metrics.slowClientsDropped.inc();
        }
        logger.info("stream closed", {
          userId: c.userId,
          connectionId: c.id,
          reason,
          durationMs: clock.now() - c.openedAt,
        });
      },
      alarmSent: (alarm, replayed) => {
        if (replayed) {
          metrics.alarmsReplayed.inc();
          return;
        }
        metrics.alarmsDelivered.inc();
        metrics.deliveryLatency.observe(
          Math.max(0, clock.now() - Date.parse(alarm.createdAt)) / 1000,
        );
      },
      refused: (scope) => metrics.connectionsRefused.inc({ scope }),
    },
  });
  const authenticate = createJwtAuthenticator({
    secret: config.jwtSecret,
    jwksUrl: config.jwtJwksUrl,
    issuer: config.jwtIssuer,
    audience: config.jwtAudience,
    onKeySetError: (failure) => logger.error("cannot fetch the JWT key set", failure),
  });
  const onUnexpectedError = (error: unknown, requestId: string) =>
    logger.error("unexpected error", { requestId, ...errorFields(error) });
  const limiter = (name: string, ratePerSecond: number, burstFactor: number, largestCost = 1) =>
    createRateLimiter({
      name,
      ratePerSecond,
      burst: ratePerSecond * burstFactor,
      largestCost,
      clock,
    });
  const limits = {
    publish: limiter("publish", config.ratePublishPerSecond, 2, ALARM_LIMITS.batchMax),
    user: limiter("user", config.rateUserPerSecond, 2),
    connectionAttempt: limiter("connection attempt", config.rateConnectPerIpPerSecond, 5),
  };
  const app = createApp({
    limits,
    origins: createOriginPolicy(config.corsOrigins, config.publicUrl),
    proxies: parseTrustedProxies(config.trustedProxies),
    service,
    hub,
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
    webAssets: await loadWebAssets(),
    onUnexpectedError,
    logger,
  });

  let stopping: Promise<void> | null = null;
  const sweep = () =>
    store.sweepExpired().then(
      (n) => n > 0 && logger.info("expired alarms swept", { count: n }),
      (error) => logger.warn("sweep failed", errorFields(error)),
    );
  // One sweeper per deployment host is enough: the primary isolate runs it.
  if (worker === 0) void sweep();
  const sweeper = worker === 0 ? setInterval(sweep, SWEEP_INTERVAL_MS) : undefined;

  const listen = config.transport === "node" ? listenNode : listenDeno;
  const listener = await listen(app, {
    port: config.port,
    host: config.host,
    reusePort: config.workers > 1,
    headerTimeoutMs: config.headerTimeoutMs,
    idleTimeoutMs: config.idleTimeoutMs,
    maxSockets: socketCap(openFiles, config.workers),
    onTransportError: (message, fields) => logger.warn(message, fields),
  });
  // Workers share the primary's port; the kernel spreads connections over them.
  const { addr } = listener;
  const host = addr.hostname === "0.0.0.0" || addr.hostname === "::" ? "localhost" : addr.hostname;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${addr.port}`;
  logger.info("alarmd listening", { url, version: VERSION, transport: config.transport });

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
        if (sweeper !== undefined) clearInterval(sweeper);
        memoryWatch.stop();
        // Streams first: clients reconnect elsewhere (with Last-Event-ID), and an HTTP server's
        // shutdown would otherwise wait for responses that never end.
        await hub.close();
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

const CONTENT_TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  png: "image/png",
  svg: "image/svg+xml",
};

/** web/ ships inside the compiled binary (`--include web/`), so it is read the same way there. */
async function loadWebAssets(): Promise<Map<string, WebAsset>> {
  const dir = new URL("../web/", import.meta.url);
  const assets = new Map<string, WebAsset>();
  for await (const entry of Deno.readDir(dir)) {
    const ext = entry.name.split(".").pop() ?? "";
    if (!entry.isFile || !(ext in CONTENT_TYPES)) continue;
    assets.set(`/${entry.name}`, {
      body: await Deno.readFile(new URL(entry.name, dir)),
      contentType: CONTENT_TYPES[ext],
    });
  }
  return assets;
}

/** A file path, not ":memory:" (a second handle would be another database) or KV Connect. */
const isLocalFile = (path: string) => !/^https?:\/\//.test(path) && path !== ":memory:";

async function openKv(path: string): Promise<Deno.Kv> {
  if (isLocalFile(path)) {
    const dir = path.replace(/[\\/][^\\/]*$/, "");
    if (dir && dir !== path) await Deno.mkdir(dir, { recursive: true });
  }
  return await Deno.openKv(path);
}
