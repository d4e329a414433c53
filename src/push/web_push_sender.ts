/**
 * PushSender over `fetch`: encrypts the payload to the browser's keys, signs VAPID for the push
 * service's origin, POSTs once and turns the answer into a PushResult. It never follows a
 * redirect and checks the endpoint against the allow-list itself, so a stored subscription can
 * never make alarmd call a host the policy refuses, whoever wrote it; the encryptor checks the
 * keys again too, since WebCrypto imports a point off the curve without complaint. Endpoints
 * carry the subscription's secret id, so no reason it returns contains one (only its origin).
 */
import type { PushRequest, PushResult, PushSender } from "../domain/push.ts";
import { encryptPayload } from "./payload_encryption.ts";
import { pushResultOf } from "./push_response.ts";
import { createVapidAuthorizer, type VapidAuthorizer } from "./vapid_authorization.ts";

export interface WebPushSenderOptions {
  /** Whether alarmd may send to `endpoint` (the endpoint policy's `allows`). */
  readonly allowed: (endpoint: string) => boolean;
  /** How long one request may take, from connecting to the answer's status line. */
  readonly timeoutMs?: number;
  readonly now?: () => number;
  /** Builds the VAPID header; the default reuses a token per push service for an hour. */
  readonly vapid?: VapidAuthorizer;
}

export function createWebPushSender(options: WebPushSenderOptions): PushSender {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const now = options.now ?? Date.now;
  const vapid = options.vapid ?? createVapidAuthorizer({ now });

  async function send(request: PushRequest): Promise<PushResult> {
    const { endpoint, keys } = request.subscription;
    if (!options.allowed(endpoint)) {
      return { kind: "rejected", status: null, reason: "the endpoint is not allowed" };
    }
    if (!Number.isSafeInteger(request.ttlSeconds) || request.ttlSeconds < 0) {
      return { kind: "rejected", status: null, reason: "the TTL is not a whole number of seconds" };
    }
    const url = new URL(endpoint);
    let body: Uint8Array<ArrayBuffer>;
    let authorization: string;
    try {
      body = await encryptPayload(keys, request.payload);
    } catch (error) {
      return { kind: "rejected", status: null, reason: `cannot encrypt: ${messageOf(error)}` };
    }
    try {
      authorization = await vapid.authorization(url.origin, request.vapid, request.subject);
    } catch (error) {
      return { kind: "rejected", status: null, reason: `cannot sign VAPID: ${messageOf(error)}` };
    }
    let response: Response;
    try {
      response = await fetch(url, {
        method: "POST",
        redirect: "manual",
        signal: AbortSignal.timeout(timeoutMs),
        headers: {
          "Authorization": authorization,
          "Content-Encoding": "aes128gcm",
          "Content-Type": "application/octet-stream",
          "TTL": String(request.ttlSeconds),
          "Urgency": "normal",
        },
        body,
      });
    } catch (error) {
      const timedOut = error instanceof DOMException && error.name === "TimeoutError";
      return {
        kind: "retry",
        status: null,
        retryAfterMs: null,
        reason: timedOut
          ? `no answer from ${url.origin} within ${timeoutMs} ms`
          : `cannot reach ${url.origin}: ${withoutUrl(messageOf(error), url)}`,
      };
    }
    // The body is never needed; cancelling it frees the connection and its resource.
    await response.body?.cancel().catch(() => {});
    if (response.type === "opaqueredirect") {
      return { kind: "rejected", status: null, reason: "the push service redirected" };
    }
    return pushResultOf(response.status, response.headers.get("retry-after"), now());
  }

  return {
    async send(request) {
      try {
        return await send(request);
      } catch (error) {
        return { kind: "rejected", status: null, reason: `local failure: ${messageOf(error)}` };
      }
    },
  };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** `message` with any URL in it (the endpoint carries the subscription id) cut to the origin. */
function withoutUrl(message: string, url: URL): string {
  return message.replaceAll(/https?:\/\/[^\s)]+/g, url.origin);
}
