import denoJson from "../deno.json" with { type: "json" };
import { createMemoryBus } from "./broker/memory_bus.ts";
import { createRedisBus } from "./broker/redis_bus.ts";
import { createBroadcastBus } from "./broker/broadcast_bus.ts";
import type { Config } from "./config.ts";
import { createAlarmService } from "./domain/alarm_service.ts";
import { createLiveHub } from "./domain/live_hub.ts";
import type { Clock } from "./domain/ports.ts";
import { systemClock } from "./domain/ports.ts";
import { createServer } from "node:http";
import type { AlarmService } from "./domain/alarm_service.ts";
import type { LiveHub } from "./domain/live_hub.ts";
import type { AlarmdApp } from "./http/app.ts";
import { createApp } from "./http/app.ts";
import type { Authenticate } from "./http/auth.ts";
import { createJwtAuthenticator } from "./http/auth.ts";
import { createNodeListener } from "./http/node_listener.ts";
import type { WebAsset } from "./http/web_routes.ts";
import type { Logger } from "./log.ts";
import { createLogger, errorFields } from "./log.ts";
import { createKvAlarmStore } from "./storage/kv_alarm_store.ts";
import { ensureKvLayout } from "./storage/kv_layout.ts";
import { createMetrics } from "./metrics.ts";
import { FD_RESERVE, readOpenFileLimit, streamCap } from "./open_file_limit.ts";
import { createRateLimiter } from "./domain/rate_limiter.ts";
import type { Guards } from "./http/guards.ts";
import { parseCorsOrigins } from "./http/guards.ts";
import { UnavailableError } from "./domain/errors.ts";

export const VERSION: string = denoJson.version;

const SWEEP_INTERVAL_MS = 30_000;
/** How long in-flight requests get to finish on shutdown before their connections are cut. */
const SHUTDOWN_GRACE_MS = 2_000;

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
  const onBusError = (error: unknown) => logger.error("bus error", errorFields(error));
  const bus = config.redisUrl
    ? createRedisBus({
      url: config.redisUrl,
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
  const hub = createLiveHub({
    store,
    bus,
    clock,
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
  });
  const onUnexpectedError = (error: unknown, requestId?: string) =>
    logger.error("unexpected error", { requestId, ...errorFields(error) });
  const limiter = (name: string, ratePerSecond: number, burstFactor: number) =>
    createRateLimiter({ name, ratePerSecond, burst: ratePerSecond * burstFactor, clock });
  const guards: Guards = {
    publish: limiter("publish", config.ratePublishPerSecond, 2),
    user: limiter("user", config.rateUserPerSecond, 2),
    connect: limiter("connection attempt", config.rateConnectPerIpPerSecond, 5),
    corsOrigins: parseCorsOrigins(config.corsOrigins),
  };
  const app = createApp({
    guards,
    service,
    hub,
    authenticate,
    worker,
    ready: async () => {
      if (stopping) throw new UnavailableError("shutting down");
      await Promise.all([store.ping(), bus.ready()]);
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

  const listener = config.transport === "node"
    ? await listenNode(config, {
      app,
      hub,
      service,
      authenticate,
      onUnexpectedError,
      logger,
      guards,
    })
    : await listenDeno(config, app);
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

interface Listener {
  readonly addr: { hostname: string; port: number };
  readonly finished: Promise<void>;
  /** Stops accepting, lets in-flight requests finish, closes idle connections. */
  stop(): Promise<void>;
}

async function listenDeno(config: Config, app: AlarmdApp): Promise<Listener> {
  const { promise: listening, resolve: onListen } = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve(
    { port: config.port, hostname: config.host, reusePort: config.workers > 1, onListen },
    app.fetch,
  );
  return { addr: await listening, finished: server.finished, stop: () => server.shutdown() };
}

async function listenNode(
  config: Config,
  deps: {
    app: AlarmdApp;
    hub: LiveHub;
    service: AlarmService;
    authenticate: Authenticate;
    onUnexpectedError: (e: unknown, requestId?: string) => void;
    logger: Logger;
    guards: Guards;
  },
): Promise<Listener> {
  const server = createServer(createNodeListener(deps));
  // A publisher's keep-alive connection should outlive typical pooling idle timeouts.
  server.keepAliveTimeout = 65_000;
  const finished = new Promise<void>((resolve) => server.once("close", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(
      { port: config.port, host: config.host, reusePort: config.workers > 1 },
      () => resolve(),
    );
  });
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("node:http did not report a port");
  return {
    addr: { hostname: address.address, port: address.port },
    finished,
    // close() waits for every connection, and a keep-alive connection that goes idle later
    // would hold it for keepAliveTimeout: close idle ones as they appear, and after a grace
    // period (in-flight requests had time to finish) close what is left.
    stop: () =>
      new Promise<void>((resolve) => {
        const sweep = setInterval(() => server.closeIdleConnections(), 20);
        const force = setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS);
        server.close(() => {
          clearInterval(sweep);
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      }),
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
