/**
 * This instance's row in the shared PostgreSQL: a heartbeat every third of
 * the instance timeout, and a sweep that marks `interrupted` the calls of
 * instances that stopped beating (killed, crashed, cut off). Every live
 * instance sweeps; a call is marked by whichever gets it first, so a dead
 * instance's calls are marked within the timeout plus one beat.
 *
 * @module
 */
import type { PostgresStore } from "../store/postgres.ts";
import type { InterruptedHook, StoredCall } from "../store/db.ts";
import type { Logger } from "../log.ts";

/** The state an instance advertises. */
export type InstanceState = "live" | "draining" | "stopped";

/** Options of {@link InstanceHeartbeat}. */
export interface InstanceHeartbeatOptions {
  store: PostgresStore;
  /** Where this instance's streams go (INSTANCE_URL or PUBLIC_URL). */
  url: () => string;
  /** No heartbeat for this long and an instance is gone (the store's instance timeout). */
  timeoutMs: number;
  log: Logger;
  /** Runs in the transaction that marks each call interrupted (queues its `call-ended` webhook). */
  interruptedWithin?: InterruptedHook;
  /** Hears the calls this instance marked interrupted, once committed (to tell every dashboard). */
  onInterrupted: (calls: StoredCall[]) => void | Promise<void>;
}

/** Live events older than this are pruned; a client away longer gets a replay from the store. */
export const LIVE_EVENT_RETENTION_S = 3600;

/** Keeps this instance's heartbeat row and sweeps dead instances' calls. */
export class InstanceHeartbeat {
  readonly id: string;
  #options: InstanceHeartbeatOptions;
  #timer: ReturnType<typeof setInterval> | undefined;
  #state: InstanceState = "live";
  #beating: Promise<void> = Promise.resolve();

  constructor(options: InstanceHeartbeatOptions) {
    if (!options.store.instanceId) throw new Error("the store was opened without an instance id");
    this.id = options.store.instanceId;
    this.#options = options;
  }

  /** The interval between beats (and sweeps). */
  get intervalMs(): number {
    return Math.max(100, Math.round(this.#options.timeoutMs / 3));
  }

  /** Registers the instance, then beats and sweeps until {@link stop}. */
  async start(): Promise<void> {
    await this.#beat();
    this.#timer = setInterval(() => {
      this.#beating = this.#beating.then(() => this.#tick());
    }, this.intervalMs);
  }

  /** Advertises `draining` (or another state) at once. */
  async setState(state: InstanceState): Promise<void> {
    this.#state = state;
    await this.#beat();
  }

  /** Stops beating and marks the row stopped: the instance ended its calls itself. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#beating;
    await this.setState("stopped").catch(() => {});
  }

  async #beat(): Promise<void> {
    const { sql } = this.#options.store;
    await sql`
      INSERT INTO instances (id, url, state) VALUES (${this.id}, ${this.#options.url()}, ${this.#state})
      ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), state = EXCLUDED.state, url = EXCLUDED.url`;
  }

  async #tick(): Promise<void> {
    try {
      await this.#beat();
      const interrupted = await this.#options.store.interruptOrphans({
        within: this.#options.interruptedWithin,
      });
      if (interrupted.length) {
        this.#options.log.warn(
          `${interrupted.length} call(s) of stopped instances marked interrupted: ${
            interrupted.map((c) => c.callSid).join(", ")
          }`,
        );
        await this.#options.onInterrupted(interrupted);
      }
      const { sql } = this.#options.store;
      await sql`DELETE FROM live_events WHERE created_at < now() - make_interval(secs => ${LIVE_EVENT_RETENTION_S})`;
      await sql`DELETE FROM instances WHERE heartbeat_at < now() - interval '1 day'`;
    } catch (error) {
      // The database may be unreachable for a moment; the next beat tries again.
      this.#options.log.warn(`heartbeat failed: ${(error as Error).message}`);
    }
  }
}
