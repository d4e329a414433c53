/** Flags that take no value; every other `--name` takes one (`--name value` or `--name=value`). */
const BOOLEAN_FLAGS = new Set(["dev", "publish", "help", "version", "h", "v", "force", "ready"]);

/** How many arguments each command takes after its name (`backup FILE`); others take none. */
const OPERANDS: Readonly<Record<string, number>> = { backup: 1 };

export interface ParsedArgs {
  readonly command: string | null;
  /** The arguments after the command's name, as many as OPERANDS allows it. */
  readonly operands: readonly string[];
  readonly flags: Record<string, string>;
  readonly switches: ReadonlySet<string>;
}

export class UsageError extends Error {}

export function parseArgs(argv: readonly string[]): ParsedArgs {
  let command: string | null = null;
  const operands: string[] = [];
  const flags: Record<string, string> = {};
  const switches = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "-h") {
      switches.add("help");
      continue;
    }
    if (!arg.startsWith("--")) {
      if (command === null) command = arg;
      else if (operands.length < (OPERANDS[command] ?? 0)) operands.push(arg);
      else throw new UsageError(`unexpected argument "${arg}"`);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    if (!/^[a-z][a-z0-9-]*$/.test(name)) throw new UsageError(`malformed option "${arg}"`);
    if (BOOLEAN_FLAGS.has(name)) {
      if (eq !== -1) throw new UsageError(`--${name} takes no value`);
      switches.add(name);
      continue;
    }
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (value === undefined) throw new UsageError(`--${name} needs a value`);
    flags[name] = value;
  }
  return { command, operands, flags, switches };
}

/** "90s", "15m", "1h", "7d" → milliseconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+)(s|m|h|d)$/.exec(text);
  if (!match) throw new UsageError(`--ttl must look like 90s, 15m, 1h or 7d; got "${text}"`);
  const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as "s"];
  const ms = Number(match[1]) * unit;
  if (ms <= 0) throw new UsageError("--ttl must be positive");
  return ms;
}
