/**
 * The {@link ConnectionFront} on a worker thread of its own, as the server
 * runs it: the front copies every byte of every connection (media streams
 * included), and on the server's own event loop that copying would delay
 * the frames it relays.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { ConnectionFrontOptions } from "./connection_front.ts";
import type { FrontCommand, FrontReport } from "./front_worker.ts";

/** The front's thread: started, stopped and closed from the server's. */
export class FrontThread {
  #worker: Worker;
  #waiting = new Map<string, (report: FrontReport) => void>();
  /** The port the front listens on. */
  readonly port: number;

  private constructor(worker: Worker, port: number) {
    this.#worker = worker;
    this.port = port;
  }

  /** Starts the worker and the front in it; rejects as `Deno.listen` would (e.g. the port is taken). */
  static async start(options: ConnectionFrontOptions): Promise<FrontThread> {
    const { log, ...rest } = options;
    const worker = new Worker(new URL("./front_worker.ts", import.meta.url).href, {
      type: "module",
    });
    const waiting = new Map<string, (report: FrontReport) => void>();
    worker.onmessage = ({ data }: MessageEvent<FrontReport>) => {
      if (data.type === "log") return logLine(log, data.level, data.message);
      const resolve = waiting.get(data.type === "failed" ? "started" : data.type);
      waiting.delete(data.type === "failed" ? "started" : data.type);
      resolve?.(data);
    };
    const started = await new Promise<FrontReport>((resolve) => {
      waiting.set("started", resolve);
      worker.postMessage({ type: "start", options: rest } satisfies FrontCommand);
    });
    if (started.type !== "started") {
      worker.terminate();
      throw new Error(
        `cannot listen on ${options.hostname}:${options.port}: ${
          started.type === "failed" ? started.message : started.type
        }`,
      );
    }
    const thread = new FrontThread(worker, started.port);
    thread.#waiting = waiting;
    return thread;
  }

  /** Stops accepting; open connections go on until {@link close}. */
  async stop(): Promise<void> {
    await this.#send({ type: "stop" }, "stopped");
  }

  /** Closes every open connection and ends the thread. */
  async close(): Promise<void> {
    await this.#send({ type: "close" }, "closed");
    this.#worker.terminate();
  }

  #send(command: FrontCommand, answer: string): Promise<unknown> {
    return new Promise((resolve) => {
      this.#waiting.set(answer, resolve);
      this.#worker.postMessage(command);
    });
  }
}

function logLine(log: Logger, level: "info" | "warn" | "error", message: string): void {
  log[level](message);
}
