/**
 * One instance's part in a service of many on one PostgreSQL: its live bus
 * (every instance's events reach its dashboards) and its heartbeat (its row
 * in `instances`, and the sweep that marks dead instances' calls
 * `interrupted` and tells every dashboard).
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { PostgresStore } from "../store/postgres.ts";
import type { LiveHub } from "../live/live_hub.ts";
import type { OutgoingWebhooks } from "../delivery/outgoing_webhooks.ts";
import { PostgresLiveBus } from "./live_bus.ts";
import { InstanceHeartbeat } from "./instance.ts";

/** This instance in the service. */
export class Cluster {
  readonly bus: PostgresLiveBus;
  readonly heartbeat: InstanceHeartbeat;
  #store: PostgresStore;
  #removeHook: (() => void) | undefined;
  #live: LiveHub | undefined;

  constructor(
    store: PostgresStore,
    options: {
      url: () => string;
      timeoutMs: number;
      log: Logger;
      /** Outgoing webhooks: queues each interrupted call's `call-ended` in its transaction, then sends. */
      webhooks?: Pick<OutgoingWebhooks, "interrupted" | "worker">;
    },
  ) {
    this.#store = store;
    this.bus = new PostgresLiveBus(store, options.log);
    this.heartbeat = new InstanceHeartbeat({
      store,
      url: options.url,
      timeoutMs: options.timeoutMs,
      log: options.log,
      interruptedWithin: options.webhooks?.interrupted,
      onInterrupted: (calls) => {
        for (const call of calls) this.#live?.publishEnded(call);
        options.webhooks?.worker.wake();
      },
    });
  }

  /** Listens for every instance's events (into `live`), then starts beating. */
  async start(live: LiveHub): Promise<void> {
    this.#live = live;
    // A final's event commits in the final's own transaction.
    this.#removeHook = this.#store.addFinalHook(this.bus.finalHook);
    await this.bus.start((event) => live.deliver(event));
    await live.loadActive();
    await this.heartbeat.start();
  }

  /** Stops beating (the row says stopped) and listening. */
  async stop(): Promise<void> {
    await this.heartbeat.stop();
    await this.bus.close();
    this.#removeHook?.();
  }
}
