/**
 * Outgoing webhooks (ours, to the user's product; Twilio's incoming ones are routes in
 * `../server/twilio_webhooks.ts`) for one server: the queue that writes the outbox in the
 * store's transactions, the worker that sends it, and partials sent
 * straight away.
 *
 * @module
 */
import type { Publisher } from "../call/pipeline.ts";
import { interruptedEvent, type StoreEventHook } from "../call/store_commit.ts";
import type { Logger } from "../log.ts";
import type { InterruptedHook, TranscriptStore } from "../store/db.ts";
import { SqlOutbox } from "./sql_outbox.ts";
import { endpointLabel, type WebhookSettings } from "./settings.ts";
import { webhookMessage } from "./webhook_message.ts";
import { WebhookQueue } from "./webhook_queue.ts";
import { DeliveryWorker, type DeliveryWorkerOptions } from "./worker.ts";

/** Running webhook delivery. */
export interface OutgoingWebhooks {
  /** Give to the pipeline's commit stage (`storeCommit`): queues events in the store's transactions. */
  inTransaction: StoreEventHook;
  /** Register with the pipeline: wakes the worker once an event is committed, sends partials. */
  publisher: Publisher;
  /**
   * Give to the store's `markInterrupted` (or the cluster's sweep): queues the
   * `call-ended` of each call marked interrupted, in that transaction; wake the
   * worker once it has committed.
   */
  interrupted: InterruptedHook;
  outbox: SqlOutbox;
  worker: DeliveryWorker;
}

/** Starts delivery from `store`'s outbox (and of partials, when asked for). */
export async function startOutgoingWebhooks(
  settings: WebhookSettings,
  store: TranscriptStore,
  log: Logger,
  workerOptions: Partial<DeliveryWorkerOptions> = {},
): Promise<OutgoingWebhooks> {
  const outbox = new SqlOutbox(store);
  // One process writes a SQLite store: claims a killed run left behind are void. On
  // PostgreSQL other instances may hold claims; a dead one's lapse with their lease.
  if (store.kind === "sqlite") await outbox.releaseClaims();
  const queue = new WebhookQueue(settings, log);
  const worker = new DeliveryWorker(outbox, settings, { log, ...workerOptions });
  const partials = settings.events.has("partial");
  /** Calls whose latest event was queued and is committed once the listener hears it. */
  const queued = new Set<string>();
  for (const endpoint of settings.endpoints) {
    const url = new URL(endpoint);
    if (url.protocol === "http:" && !["127.0.0.1", "localhost", "[::1]"].includes(url.hostname)) {
      log.warn(
        `WEBHOOK_URL ${
          endpointLabel(endpoint)
        } is not https: transcripts cross the network unencrypted`,
      );
    }
  }
  log.info(
    `webhooks: ${[...settings.events].join(", ")} to ${
      settings.endpoints.map(endpointLabel).join(", ")
    }`,
  );
  worker.start();
  return {
    inTransaction: async (tx, event, ended) => {
      if (await queue.queue(outbox, tx, event, ended)) queued.add(event.call.callSid);
    },
    publisher: (event) => {
      // The pipeline calls this once the store's transaction has committed.
      if (queued.delete(event.call.callSid)) worker.wake();
      if (partials && event.type === "transcript" && event.transcript.type === "partial") {
        const message = webhookMessage(event);
        if (message) worker.sendPartial(message);
      }
    },
    interrupted: async (tx, ended) => {
      await queue.queue(outbox, tx, interruptedEvent(ended.call), ended);
    },
    outbox,
    worker,
  };
}
