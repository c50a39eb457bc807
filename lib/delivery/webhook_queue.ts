/**
 * Puts call events into the outbox, inside the store's transaction for
 * each: picks the events the settings ask for, builds each message once
 * for every endpoint, and keeps each endpoint's outbox within its limit
 * (past it new events for that endpoint are dropped, with a loud warning;
 * the transcript itself is stored as always).
 *
 * @module
 */
import type { CallEvent } from "../call/events.ts";
import type { Logger } from "../log.ts";
import type { Segment, StoredCall, StoreTransaction } from "../store/db.ts";
import { endpointLabel, type WebhookSettings } from "./settings.ts";
import { type WebhookMessage, webhookMessage } from "./webhook_message.ts";

/** The outbox as the store's transaction writes it. */
export interface OutboxWriter {
  enqueue(
    tx: StoreTransaction,
    message: WebhookMessage,
    endpoints: readonly string[],
    now: number,
  ): Promise<void>;
  pendingIn(tx: StoreTransaction, endpoint: string): Promise<number>;
}

/** How long a counted outbox size is trusted before it is counted again. */
const RECOUNT_MS = 1000;

/** Queues the configured events of every call. */
export class WebhookQueue {
  #settings: WebhookSettings;
  #log: Logger;
  #pending = new Map<string, { count: number; countedAt: number }>();
  #full = new Set<string>();

  constructor(settings: WebhookSettings, log: Logger) {
    this.#settings = settings;
    this.#log = log;
  }

  /** Whether `event` is sent at all (partials are sent, but never queued). */
  wants(event: CallEvent): boolean {
    const type = event.type === "transcript" ? event.transcript.type : event.type;
    return this.#settings.events.has(type as never);
  }

  /**
   * Queues `event` through `writer` in `tx` (the transaction that stores
   * it); `ended` is the stored call and its segments for `call-ended`.
   * Returns the message when it was queued for at least one endpoint.
   */
  async queue(
    writer: OutboxWriter,
    tx: StoreTransaction,
    event: CallEvent,
    ended?: { call: StoredCall; segments: Segment[] },
    now = Date.now(),
  ): Promise<WebhookMessage | null> {
    if (!this.wants(event) || (event.type === "transcript" && event.transcript.type !== "final")) {
      return null;
    }
    const message = webhookMessage(event, ended);
    if (!message) return null;
    const endpoints: string[] = [];
    for (const endpoint of this.#settings.endpoints) {
      if (await this.#hasRoom(writer, tx, endpoint, now)) endpoints.push(endpoint);
    }
    if (!endpoints.length) return null;
    await writer.enqueue(tx, message, endpoints, now);
    for (const endpoint of endpoints) this.#pending.get(endpoint)!.count++;
    return message;
  }

  async #hasRoom(
    writer: OutboxWriter,
    tx: StoreTransaction,
    endpoint: string,
    now: number,
  ): Promise<boolean> {
    let known = this.#pending.get(endpoint);
    if (!known || now - known.countedAt >= RECOUNT_MS) {
      known = { count: await writer.pendingIn(tx, endpoint), countedAt: now };
      this.#pending.set(endpoint, known);
    }
    const room = known.count < this.#settings.outboxLimit;
    const label = endpointLabel(endpoint);
    if (!room && !this.#full.has(endpoint)) {
      this.#full.add(endpoint);
      this.#log.warn(
        `!!! the webhook outbox for ${label} is full (${known.count} undelivered events, ` +
          `WEBHOOK_OUTBOX_LIMIT=${this.#settings.outboxLimit}): NEW EVENTS FOR IT ARE DROPPED ` +
          "until it catches up. Is the endpoint down? Transcripts are still stored. !!!",
      );
    } else if (room && this.#full.delete(endpoint)) {
      this.#log.warn(`the webhook outbox for ${label} has room again; events are queued again`);
    }
    return room;
  }
}
