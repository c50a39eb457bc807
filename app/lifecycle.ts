/**
 * The stops of a server's components: each component registers its stop
 * when it is built ({@link Lifecycle.defer}); {@link Lifecycle.stop} runs
 * them in reverse, each bounded in time, a failing one logged without
 * keeping the rest from running.
 *
 * @module
 */
import type { Logger } from "../lib/log.ts";

/** Default bound of one stop. */
export const STOP_TIMEOUT_MS = 10_000;

interface Stop {
  name: string;
  stop: () => unknown;
  timeoutMs: number;
}

/** Stops registered in build order, run in reverse. */
export class Lifecycle {
  #stops: Stop[] = [];
  #log: Logger;
  #stopping: Promise<void> | null = null;

  constructor(log: Logger) {
    this.#log = log;
  }

  /** Registers `stop` (run at most `timeoutMs`, default {@link STOP_TIMEOUT_MS}) under `name`. */
  defer(name: string, stop: () => unknown, timeoutMs = STOP_TIMEOUT_MS): void {
    if (this.#stopping) throw new Error(`Cannot defer the stop of ${name}: already stopping`);
    this.#stops.push({ name, stop, timeoutMs });
  }

  /** Runs every stop, the last registered first; resolves once all have run (or timed out). */
  stop(): Promise<void> {
    this.#stopping ??= this.#stopAll();
    return this.#stopping;
  }

  async #stopAll(): Promise<void> {
    for (const { name, stop, timeoutMs } of this.#stops.reverse()) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), timeoutMs);
      });
      try {
        const outcome = await Promise.race([Promise.resolve().then(stop), timedOut]);
        if (outcome === "timeout") {
          this.#log.error(`stopping ${name} took over ${timeoutMs} ms; going on without it`);
        }
      } catch (error) {
        this.#log.error(`cannot stop ${name}: ${(error as Error).message}`);
      } finally {
        clearTimeout(timer);
      }
    }
  }
}
