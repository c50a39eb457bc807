/**
 * The worker thread the {@link ConnectionFront} runs in (see
 * `front_thread.ts`): copying every connection's bytes happens beside the
 * server's event loop, not on it. Messages in: `start` (the options but the
 * logger), `stop`, `close`. Messages out: `started` (the port) or `failed`,
 * `log` lines, `stopped`, `closed`.
 *
 * @module
 */
import { ConnectionFront, type ConnectionFrontOptions } from "./connection_front.ts";

/** A message to the worker. */
export type FrontCommand =
  | { type: "start"; options: Omit<ConnectionFrontOptions, "log"> }
  | { type: "stop" }
  | { type: "close" };

/** A message from the worker. */
export type FrontReport =
  | { type: "started"; port: number }
  | { type: "failed"; message: string }
  | { type: "log"; level: "info" | "warn" | "error"; message: string }
  | { type: "stopped" }
  | { type: "closed" };

const scope = self as unknown as {
  postMessage(report: FrontReport): void;
  onmessage: (event: MessageEvent<FrontCommand>) => void;
  close(): void;
};
let front: ConnectionFront | undefined;

scope.onmessage = async ({ data }) => {
  switch (data.type) {
    case "start":
      try {
        const log = (level: "info" | "warn" | "error") => (message: string) =>
          scope.postMessage({ type: "log", level, message });
        front = ConnectionFront.start({
          ...data.options,
          log: { info: log("info"), warn: log("warn"), error: log("error") },
        });
        scope.postMessage({ type: "started", port: front.port });
      } catch (error) {
        scope.postMessage({ type: "failed", message: (error as Error).message });
      }
      return;
    case "stop":
      await front?.stop();
      scope.postMessage({ type: "stopped" });
      return;
    case "close":
      front?.closeAll();
      scope.postMessage({ type: "closed" });
      scope.close();
  }
};
