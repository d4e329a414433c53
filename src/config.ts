import { z } from "zod";
import { parseTrustedProxies } from "./http/client_address.ts";

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const optionalUrl = z.string().url().refine((u) => /^https?:\/\//.test(u), "must be http(s)")
  .optional();
const hs256Secret = z.string().refine(
  (s) => new TextEncoder().encode(s).byteLength >= 32,
  "must be at least 32 bytes (HS256 key); generate one with: openssl rand -base64 48",
);

/**
 * Every setting, as one zod schema. Each key is read from `ALARMD_<SNAKE_CASE>` or the flag
 * `--<kebab-case>` (a flag wins), so names in errors, docs and the contract match one-to-one.
 */
export const configSchema = z.object({
  port: int(0, 65535).default(8080),
  host: z.string().min(1).default("0.0.0.0"),
  kvPath: z.string().min(1).default("./alarmd.kv"),
  /** Enables fan-out across processes and hosts through Redis pub/sub. */
  redisUrl: z.string().regex(/^rediss?:\/\/.+/, "must be a redis:// or rediss:// URL").optional(),
  jwtSecret: hs256Secret.optional(),
  /** The secret before a rotation: it verifies HS256 tokens still out there, never signs. */
  jwtSecretPrevious: hs256Secret.optional(),
  jwtJwksUrl: optionalUrl,
  jwtIssuer: z.string().min(1).optional(),
  jwtAudience: z.string().min(1).optional(),
  retryMs: int(0, 3_600_000).default(3000),
  heartbeatMs: int(20, 3_600_000).default(15_000),
  sseTimeoutMs: int(100, 7 * 24 * 3_600_000).default(3_600_000),
  writeTimeoutMs: int(100, 3_600_000).default(30_000),
  maxConnectionsPerUser: int(1, 10_000).default(16),
  maxConnections: int(1, 10_000_000).default(100_000),
  maxQueueBytes: int(1024, 1 << 30).default(1 << 20),
  /**
   * Resident memory in MiB above which new streams are refused (`503`), so that a container is
   * never killed for memory by its own connections. Unset: 80 % of the container's memory limit
   * when there is one, else no cap; 0 turns the cap off.
   */
  maxMemoryMb: int(0, 1 << 30).optional(),
  retentionDays: z.coerce.number().positive().max(3650).default(30),
  maxAlarmsPerUser: int(1, 100_000).default(1000),
  logLevel: z.enum(["debug", "info", "warn", "error"]).default("info"),
  /** Alarms per second per publisher (`sub`), burst twice that; 0 disables. */
  ratePublishPerSecond: int(0, 1_000_000).default(10_000),
  /** Requests per second per user on the user endpoints, burst twice that; 0 disables. */
  rateUserPerSecond: int(0, 1_000_000).default(50),
  /** Stream attempts per second per client IP, burst five times that; 0 disables. */
  rateConnectPerIpPerSecond: int(0, 1_000_000).default(50),
  /** Origins allowed to call the API from browsers: comma-separated, or `*`; empty for none. */
  corsOrigins: z.string().default("").refine(
    (v) =>
      v === "" || v === "*" || v.split(",").every((o) => /^https?:\/\/[^/\s,]+$/.test(o.trim())),
    "must be * or comma-separated origins like https://app.example.com",
  ),
  /**
   * Isolates serving one port (`reusePort`), each a full alarmd on the same KV file, fanning out
   * to each other over BroadcastChannel (or Redis when configured).
   */
  workers: int(1, 64).default(1),
  /** How streams reach sockets: `node` (node:http, res.write) or `deno` (Deno.serve). */
  transport: z.enum(["node", "deno"]).default("node"),
  /** The whole request head must arrive within this; one deadline, not reset per byte. */
  headerTimeoutMs: int(100, 3_600_000).default(10_000),
  /** A keep-alive connection idle this long is closed. */
  idleTimeoutMs: int(100, 3_600_000).default(60_000),
  /** The origin browsers use to reach alarmd (behind a proxy): what "own origin" means. */
  publicUrl: z.string().refine(
    (u) => URL.canParse(u) && /^https?:$/.test(new URL(u).protocol),
    "must be an http(s) URL such as https://alarms.example.com",
  ).optional(),
  /** Peers (IPs or CIDRs, comma-separated) whose X-Forwarded-For/-Proto/-Host are believed. */
  trustedProxies: z.string().default("").refine(
    (v) => {
      try {
        parseTrustedProxies(v);
        return true;
      } catch {
        return false;
      }
    },
    "must be comma-separated IP addresses or CIDR ranges such as 10.0.0.0/8, ::1",
  ),
  /** `offline`: push alarms with a notification to users with no live stream; `always`; `off`. */
  push: z.enum(["offline", "always", "off"]).default("offline"),
  /** The VAPID `sub` (`mailto:` or `https:`): without it push is off. */
  vapidSubject: z.string().regex(/^(mailto:.+|https:\/\/.+)$/, "must be a mailto: or https: URL")
    .optional(),
  /** A fixed VAPID key pair (base64url raw P-256 keys); else one is generated once, kept in KV. */
  vapidPublicKey: z.string().regex(/^[A-Za-z0-9_-]{86,88}={0,2}$/, "must be base64url").optional(),
  vapidPrivateKey: z.string().regex(/^[A-Za-z0-9_-]{42,44}={0,2}$/, "must be base64url").optional(),
  /** Push service origins allowed instead of the known ones (comma-separated). */
  pushAllowedOrigins: z.string().default("").refine(
    (v) => v === "" || v.split(",").every((o) => /^https?:\/\/[^/\s,]+$/.test(o.trim())),
    "must be comma-separated origins like https://push.example.com or http://127.0.0.1:9000",
  ),
  /** How long a push service keeps an undelivered message, and how long alarmd retries. */
  pushTtlSeconds: int(0, 28 * 86_400).default(86_400),
  /** Pushes waiting in the outbox at most; past it the oldest are dropped and counted. */
  pushMaxPending: int(1, 100_000_000).default(1_000_000),
});

export type Config = Readonly<z.infer<typeof configSchema>>;
export type ConfigKey = keyof Config;

export const CONFIG_KEYS = Object.keys(configSchema.shape) as ConfigKey[];

export function envName(key: string): string {
  return "ALARMD_" + key.replace(/[A-Z]/g, (c) => "_" + c).toUpperCase();
}

export function flagName(key: string): string {
  return "--" + key.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase());
}

/** Settings whose values never appear in an error or a log line. */
const SECRET_KEYS = new Set<string>(["jwtSecret", "jwtSecretPrevious", "vapidPrivateKey"]);

/** A configuration problem, phrased as one line that names the variable and the flag. */
export class ConfigError extends Error {}

/**
 * Reads the config from the environment and parsed flags (kebab-case keys without dashes).
 * Unknown `ALARMD_*` variables and unknown flags are errors: a typo must not silently fall back
 * to a default.
 */
export function loadConfig(
  env: Readonly<Record<string, string | undefined>>,
  flags: Readonly<Record<string, string>>,
  overrides: Partial<Record<ConfigKey, unknown>> = {},
): Config {
  const input: Record<string, unknown> = {};
  const known = new Set(CONFIG_KEYS.map(envName));
  for (const name of Object.keys(env)) {
    if (name.startsWith("ALARMD_") && !known.has(name) && env[name] !== undefined) {
      throw new ConfigError(`${name} is not a known setting (see alarmd --help)`);
    }
  }
  const flagKeys = new Map(CONFIG_KEYS.map((k) => [flagName(k).slice(2), k]));
  for (const flag of Object.keys(flags)) {
    if (!flagKeys.has(flag)) {
      throw new ConfigError(`--${flag} is not a known option (see alarmd --help)`);
    }
  }
  for (const key of CONFIG_KEYS) {
    const fromFlag = flags[flagName(key).slice(2)];
    const fromEnv = env[envName(key)];
    const value = fromFlag ?? (fromEnv === "" ? undefined : fromEnv);
    if (value !== undefined) input[key] = value;
  }
  Object.assign(input, overrides);
  const parsed = configSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = String(issue.path[0]);
    // URLs may carry credentials (redis://user:pass@…): masked here as in describeConfig.
    const shown = SECRET_KEYS.has(key)
      ? "(hidden)"
      : String(JSON.stringify(input[key])).replace(/\/\/[^@/]*@/, "//***@");
    throw new ConfigError(
      `${envName(key)} (${flagName(key)}) ${issue.message.toLowerCase()}; got ${shown}`,
    );
  }
  if (parsed.data.jwtSecretPrevious && !parsed.data.jwtSecret) {
    throw new ConfigError(
      `${envName("jwtSecretPrevious")} (${flagName("jwtSecretPrevious")}) needs ` +
        `${envName("jwtSecret")} (${flagName("jwtSecret")}): the previous secret only verifies ` +
        "tokens, the current one signs them",
    );
  }
  return Object.freeze(parsed.data);
}

/** The settings without secrets, for the start-up log line. */
export function describeConfig(config: Config): Record<string, unknown> {
  const { jwtSecret, jwtSecretPrevious, redisUrl, jwtJwksUrl, vapidPrivateKey, ...rest } = config;
  return {
    ...rest,
    jwtSecret: jwtSecret ? "(set)" : undefined,
    jwtSecretPrevious: jwtSecretPrevious ? "(set)" : undefined,
    vapidPrivateKey: vapidPrivateKey ? "(set)" : undefined,
    redisUrl: redisUrl?.replace(/\/\/[^@/]*@/, "//***@"),
    jwtJwksUrl: jwtJwksUrl?.replace(/\/\/[^@/]*@/, "//***@"),
  };
}
