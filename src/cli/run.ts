import type { Config } from "../config.ts";
import { ConfigError, loadConfig } from "../config.ts";
import { describeConfig } from "../config.ts";
import type { Logger } from "../log.ts";
import { createLogger } from "../log.ts";
import { startServer, VERSION } from "../server.ts";
import { parseArgs, parseDuration, UsageError } from "./args.ts";
import { BackupError, backupKv } from "./backup.ts";
import { runHealth } from "./health.ts";
import { helpText } from "./help.ts";
import { mintToken } from "./token.ts";

export interface CliIo {
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** Resolves when the process is asked to stop (SIGTERM/SIGINT). */
  readonly stopSignal: Promise<string>;
}

/** Runs one CLI invocation; returns the exit code. */
export async function runCli(io: CliIo): Promise<number> {
  try {
    return await dispatch(io);
  } catch (error) {
    if (error instanceof UsageError || error instanceof ConfigError) {
      io.stderr(`alarmd: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
}

async function dispatch(io: CliIo): Promise<number> {
  const { command, operands, flags, switches } = parseArgs(io.args);
  if (switches.has("help") || switches.has("h")) {
    io.stdout(helpText(VERSION));
    return 0;
  }
  if (switches.has("version") || switches.has("v")) {
    io.stdout(`alarmd ${VERSION} (deno ${Deno.version.deno}, ${Deno.build.target})\n`);
    return 0;
  }
  switch (command ?? "serve") {
    case "serve":
      return await serve(io, flags, switches.has("dev"));
    case "token":
      return await token(io, flags, switches.has("publish"));
    case "health":
      return await runHealth(io, flags, switches.has("ready"));
    case "backup":
      return await backup(io, operands, flags, switches.has("force"));
    default:
      throw new UsageError(`unknown command "${command}" (commands: serve, token, health, backup)`);
  }
}

async function serve(io: CliIo, flags: Record<string, string>, dev: boolean): Promise<number> {
  let config: Config;
  let devSecret: string | null = null;
  if (dev) {
    const env = io.env;
    devSecret = env.ALARMD_JWT_SECRET ?? flags["jwt-secret"] ?? randomSecret();
    config = loadConfig(env, flags, {
      jwtSecret: devSecret,
      kvPath: flags["kv-path"] ?? env.ALARMD_KV_PATH ?? "./.alarmd/dev.kv",
      host: flags["host"] ?? env.ALARMD_HOST ?? "127.0.0.1",
    });
  } else {
    config = loadConfig(io.env, flags);
    if (!config.jwtSecret && !config.jwtJwksUrl) {
      throw new ConfigError(
        "ALARMD_JWT_SECRET (--jwt-secret) or ALARMD_JWT_JWKS_URL (--jwt-jwks-url) is required; " +
          "set a secret of 32+ bytes (openssl rand -base64 48), or try `alarmd serve --dev`",
      );
    }
  }
  const logger = createLogger(config.logLevel, (line) => io.stderr(line + "\n"));
  logger.info("starting", { config: describeConfig(config), dev });
  const server = await startServer(config, { logger });
  // The primary took the port (0 means any): the other isolates share exactly that one.
  const workers = await startWorkers({ ...config, port: server.port }, logger);
  if (devSecret) io.stdout(await devBanner(server.url, devSecret, config));
  const signal = await Promise.race([io.stopSignal, server.finished.then(() => null)]);
  if (signal) logger.info("stopping", { signal });
  const forced = setTimeout(() => {
    logger.error("shutdown took over 9 s, exiting");
    Deno.exit(1);
  }, 9_000);
  await Promise.all(workers.map((stop) => stop()));
  await server.shutdown();
  clearTimeout(forced);
  return 0;
}

/** Starts isolates 1..N-1 of `--workers N`; returns a stop function for each. */
async function startWorkers(config: Config, logger: Logger): Promise<(() => Promise<void>)[]> {
  const stops: (() => Promise<void>)[] = [];
  for (let worker = 1; worker < config.workers; worker++) {
    const isolate = new Worker(new URL("../worker.ts", import.meta.url), { type: "module" });
    /** The worker's next message of `kind`, or its failure. */
    const nextMessage = (kind: string) =>
      new Promise<{ kind: string; error?: string }>((resolve) => {
        const listener = (event: MessageEvent) => {
          if (event.data.kind === kind || event.data.kind === "failed") {
            isolate.removeEventListener("message", listener);
            resolve(event.data);
          }
        };
        isolate.addEventListener("message", listener);
      });
    const started = nextMessage("started");
    isolate.postMessage({ kind: "start", config, worker });
    const outcome = await started;
    if (outcome.kind === "failed") throw new Error(`worker ${worker} failed: ${outcome.error}`);
    stops.push(async () => {
      const stopped = nextMessage("stopped");
      isolate.postMessage({ kind: "stop" });
      await stopped;
      isolate.terminate();
    });
  }
  if (config.workers > 1) logger.info("workers started", { workers: config.workers });
  return stops;
}

async function token(io: CliIo, flags: Record<string, string>, publish: boolean) {
  const { sub, ttl, ...rest } = flags;
  if (!sub || sub.length > 128) throw new UsageError("token needs --sub ID (1..128 characters)");
  const ttlMs = parseDuration(ttl ?? "1h");
  const config = loadConfig(io.env, rest);
  if (!config.jwtSecret) {
    throw new ConfigError("ALARMD_JWT_SECRET (--jwt-secret) is required to mint tokens");
  }
  io.stdout(
    await mintToken({
      secret: config.jwtSecret,
      sub,
      publish,
      ttlMs,
      issuer: config.jwtIssuer,
      audience: config.jwtAudience,
    }) + "\n",
  );
  return 0;
}

/** `backup FILE`: prints one JSON line describing the copy; exit 1 when the copy failed. */
async function backup(
  io: CliIo,
  operands: readonly string[],
  flags: Record<string, string>,
  force: boolean,
): Promise<number> {
  const file = operands[0];
  if (!file) throw new UsageError("backup needs a FILE to write: alarmd backup FILE [--force]");
  const config = loadConfig(io.env, flags);
  try {
    const report = await backupKv(config.kvPath, file, { force });
    io.stdout(JSON.stringify({ source: config.kvPath, ...report }) + "\n");
    return 0;
  } catch (error) {
    if (!(error instanceof BackupError)) throw error;
    io.stderr(`alarmd: backup failed: ${error.message}\n`);
    return 1;
  }
}

function randomSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes));
}

async function devBanner(url: string, secret: string, config: Config): Promise<string> {
  const day = 24 * 3_600_000;
  const common = { secret, ttlMs: day, issuer: config.jwtIssuer, audience: config.jwtAudience };
  const user = await mintToken({ ...common, sub: "dev-user", publish: false });
  const publisher = await mintToken({ ...common, sub: "dev-backend", publish: true });
  return `
alarmd ${VERSION} (dev) on ${url}, storing in ${config.kvPath}

  Inbox (open in a browser):
    ${url}/?token=${user}

  User token (sub dev-user, 24 h):
    ${user}

  Publisher token (sub dev-backend, scope alarms:publish, 24 h):
    ${publisher}

  Send an alarm:
    curl -X POST ${url}/api/v1/alarms -H "Authorization: Bearer ${publisher}" \\
      -H "Content-Type: application/json" \\
      -d '{"userId":"dev-user","type":"comment","data":{"text":"Kim commented on your post"}}'

  Watch the stream:
    curl -N "${url}/api/v1/users/alarm/subscribe?access_token=${user}"

The secret is ephemeral: these tokens stop working when the server restarts.
`;
}
