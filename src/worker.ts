/**
 * One extra isolate of `alarmd serve --workers N`: a full alarmd on the same port (reusePort)
 * and the same KV file. The primary sends the validated config and later a stop request.
 */
import type { Config } from "./config.ts";
import { createLogger } from "./log.ts";
import { startServer } from "./server.ts";

interface Start {
  readonly kind: "start";
  readonly config: Config;
  readonly worker: number;
}

const scope = self as unknown as {
  onmessage: ((event: MessageEvent<Start | { kind: "stop" }>) => void) | null;
  postMessage(message: unknown): void;
  close(): void;
};

let stop: (() => Promise<void>) | null = null;

scope.onmessage = async (event) => {
  const message = event.data;
  if (message.kind === "start") {
    const logger = createLogger(message.config.logLevel);
    try {
      const server = await startServer(message.config, { logger, worker: message.worker });
      stop = () => server.shutdown();
      scope.postMessage({ kind: "started" });
    } catch (error) {
      scope.postMessage({ kind: "failed", error: String(error) });
    }
  } else if (message.kind === "stop") {
    await stop?.();
    scope.postMessage({ kind: "stopped" });
    scope.close();
  }
};
