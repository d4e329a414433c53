import { CONFIG_KEYS, configSchema, envName, flagName } from "../config.ts";

export function helpText(version: string): string {
  const rows = CONFIG_KEYS.map((key) => {
    const field = configSchema.shape[key];
    const parsed = field.safeParse(undefined);
    const def = parsed.success && parsed.data !== undefined ? String(parsed.data) : "";
    return `  ${envName(key).padEnd(34)} ${flagName(key).padEnd(28)} ${def}`;
  });
  return `alarmd ${version}: real-time notifications over Server-Sent Events, stored in Deno KV

Usage:
  alarmd [serve]                 start the server (needs ALARMD_JWT_SECRET or ALARMD_JWT_JWKS_URL)
  alarmd serve --dev             start for development: ./.alarmd/dev.kv, an ephemeral secret,
                                 prints a user token, a publisher token and the inbox URL
  alarmd token --sub ID [--publish] [--ttl 1h]
                                 print a token signed with ALARMD_JWT_SECRET
  alarmd backup FILE [--kv-path PATH] [--force]
                                 copy the KV file (ALARMD_KV_PATH) to FILE while alarmd serves;
                                 --force replaces an existing FILE; prints one JSON line
  alarmd health [--ready] [--url URL]
                                 exit 0 when /healthz (--ready: /readyz) answers 200, else 1
                                 with the reason; URL defaults to http://127.0.0.1:ALARMD_PORT
  alarmd --help | --version      --version also names the Deno version and target it runs on

Settings (environment variable, flag, default):
${rows.join("\n")}

Invalid settings stop start-up with exit code 2 and one line naming the setting.
`;
}
