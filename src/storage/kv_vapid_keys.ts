import type { VapidKeys } from "../domain/push.ts";
import { kvKeys } from "./kv_keys.ts";
import { commitUnlessBusy } from "./kv_retry.ts";

/** The VAPID key pairs of a deployment: the one to subscribe with, and every one still in use. */
export interface VapidKeyring {
  readonly current: VapidKeys;
  /** The pair whose public key is `publicKey`, or null if this deployment never had it. */
  pairOf(publicKey: string): Promise<VapidKeys | null>;
}

/**
 * Every instance and restart must sign with the same key, or browsers' subscriptions break: the
 * key lives in KV, shared by the deployment. The configured pair, when given, becomes current;
 * else the first instance generates one, with a check that nobody stored one meanwhile, and the
 * others use whatever was stored. Earlier pairs stay, so that subscriptions made with them are
 * still signed with the key they were made with.
 */
export async function loadVapidKeys(
  kv: Deno.Kv,
  configured: VapidKeys | null,
  generate: () => Promise<VapidKeys>,
): Promise<VapidKeyring> {
  for (;;) {
    const current = await kv.get<string>(kvKeys.vapidCurrent);
    let pair: VapidKeys;
    if (configured) {
      if (current.value === configured.publicKey) break;
      pair = configured;
    } else if (current.value !== null) {
      break;
    } else {
      pair = await generate();
    }
    const result = await commitUnlessBusy(() =>
      kv.atomic().check(current)
        .set(kvKeys.vapidKey(pair.publicKey), pair.privateKey)
        .set(kvKeys.vapidCurrent, pair.publicKey)
    );
    if (result.ok) break;
  }
  const publicKey = (await kv.get<string>(kvKeys.vapidCurrent)).value!;
  const current = await pairFromKv(kv, publicKey);
  if (!current) throw new Error(`the KV file names VAPID key ${publicKey} but does not hold it`);
  const known = new Map<string, VapidKeys | null>([[publicKey, current]]);
  return {
    current,
    async pairOf(key) {
      if (!known.has(key)) known.set(key, await pairFromKv(kv, key));
      return known.get(key)!;
    },
  };
}

async function pairFromKv(kv: Deno.Kv, publicKey: string): Promise<VapidKeys | null> {
  const privateKey = (await kv.get<string>(kvKeys.vapidKey(publicKey))).value;
  return privateKey === null ? null : { publicKey, privateKey };
}
