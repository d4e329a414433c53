/**
 * RFC 8291 message encryption (`aes128gcm`, RFC 8188, one record) through
 * @block65/webcrypto-web-push: WebCrypto only, so it runs the same under `deno run` and in a
 * compiled binary, and most of its work runs off the event loop. The one place that names the
 * library. No padding: payloads are small and a full-size record would multiply the bytes sent.
 */
import { encryptNotification } from "@block65/webcrypto-web-push";
import type { PushSubscriptionRecord } from "../domain/push.ts";

/** The request body for `payload`, readable only by the browser holding `keys`. */
export function encryptPayload(
  keys: PushSubscriptionRecord["keys"],
  payload: string,
): Promise<Uint8Array<ArrayBuffer>> {
  const subscription = { endpoint: "", expirationTime: null, keys };
  return encryptNotification(subscription, new TextEncoder().encode(payload), { pad: false });
}
