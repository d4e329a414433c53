/**
 * The CPU that Web Push's cryptography needs, and nothing else: at `--rate` messages a second
 * for `--seconds`, encrypts a payload with alarmd's encryptor and decrypts it with the test push
 * service's decryptor, as a sender and a push service would, without HTTP, storage or alarmd.
 * `bench/push_bench.ts` runs it beside a push-off server to show what sharing the machine's
 * cores with that work alone does to the publish latency.
 *
 *   deno run -A bench/push_crypto_load.ts --rate 1000 --seconds 10
 *
 * Prints one JSON line: messages done, achieved rate, CPU used (% of one core).
 */
import { encryptPayload } from "../src/push/payload_encryption.ts";
import { decryptAes128gcm, newReceiver, toBase64Url } from "../tests/helpers/test_push_service.ts";
import { processTicks, TICKS_PER_SECOND } from "./proc_cpu.ts";

const arg = (name: string, fallback: number) => {
  const at = Deno.args.indexOf(`--${name}`);
  return at === -1 ? fallback : Number(Deno.args[at + 1]);
};
const rate = arg("rate", 1000);
const seconds = arg("seconds", 10);
const TICK_MS = 10;

const receivers = await Promise.all(Array.from({ length: 64 }, () => newReceiver()));
const payload = JSON.stringify({
  id: "01JDQ3V8Z6Y2K9N4T7W1X5R0AB",
  type: "comment",
  title: "Kim commented on your post",
  body: "Nice photo!",
  url: "/inbox",
  createdAt: "2026-12-01T12:00:00.000Z",
});

async function oneMessage(i: number) {
  const receiver = receivers[i % receivers.length];
  const keys = { p256dh: toBase64Url(receiver.publicKey), auth: toBase64Url(receiver.authSecret) };
  const body = await encryptPayload(keys, payload);
  await decryptAes128gcm(body, receiver);
}

const ticks0 = processTicks("self");
const started = performance.now();
const pending = new Set<Promise<void>>();
let sent = 0;
let done = 0;
while (performance.now() - started < seconds * 1000) {
  // Open loop: whatever is due by now starts now, however far behind the previous ones are.
  const due = Math.floor((performance.now() - started) * rate / 1000);
  for (; sent < due; sent++) {
    const p = oneMessage(sent).then(() => void done++);
    pending.add(p);
    p.finally(() => pending.delete(p));
  }
  await new Promise((resolve) => setTimeout(resolve, TICK_MS));
}
await Promise.all(pending);
const ms = performance.now() - started;
console.log(JSON.stringify({
  messages: done,
  achievedRate: Math.round(done * 1000 / ms),
  cpuPercent: Math.round((processTicks("self") - ticks0) * 1000 / TICKS_PER_SECOND * 100 / ms),
}));
