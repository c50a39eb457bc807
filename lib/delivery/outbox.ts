/**
 * The webhook outbox: one row per event and endpoint, written in the same
 * transaction as what the event reports, read by the delivery worker. One
 * interface, one small file per database (`sqlite_outbox.ts`,
 * `postgres_outbox.ts`).
 *
 * Order: for each call and endpoint only the oldest pending delivery can be
 * claimed, so a call's events arrive in order; other calls and other
 * endpoints are not held up. A claim is a lease: an instance that dies
 * holding one lets it lapse, and another instance (or the next run) sends
 * the event.
 *
 * @module
 */

/** Where a delivery stands. */
export type DeliveryStatus = "pending" | "delivered" | "failed";
/** The statuses, for checking input. */
export const DELIVERY_STATUSES: readonly DeliveryStatus[] = ["pending", "delivered", "failed"];

/** One event for one endpoint. Times are epoch ms. */
export interface Delivery {
  id: number;
  /** The `webhook-id`, shared by every endpoint's delivery of the event. */
  messageId: string;
  endpoint: string;
  callSid: string;
  eventType: string;
  body: string;
  status: DeliveryStatus;
  attempts: number;
  createdAt: number;
  /** Retries end a retry window after this (the creation, or the last retry by hand). */
  windowStart: number;
  nextAttemptAt: number;
  /** Why the last attempt did not succeed (`HTTP 503`, `timed out after 10 s`, …). */
  lastError: string | null;
  deliveredAt: number | null;
}

/** Filters for {@link Outbox.list}. */
export interface DeliveryQuery {
  status?: DeliveryStatus;
  limit?: number;
  offset?: number;
}

/** The worker's view of the outbox. */
export interface Outbox {
  /**
   * Claims up to `limit` deliveries for `endpoint` that are due at `now`:
   * per call only its oldest pending one, and none another claim still
   * holds. Each is held by `owner` for `leaseMs`.
   */
  claim(
    endpoint: string,
    options: { limit: number; now: number; leaseMs: number; owner: string },
  ): Promise<Delivery[]>;
  /** When the next pending delivery for `endpoint` is due; null when none is pending. */
  nextDue(endpoint: string): Promise<number | null>;
  /** Marks claimed deliveries delivered (in one write: under load many finish together). */
  delivered(ids: readonly number[], now: number): Promise<void>;
  /** Gives a claimed delivery back, due again `at`, with the reason it was not delivered. */
  retryLater(id: number, at: number, error: string): Promise<void>;
  /** Marks a delivery failed (it is not tried again unless retried by hand). */
  failed(id: number, error: string): Promise<void>;
  /** Deliveries newest first, with the number that match. */
  list(query: DeliveryQuery): Promise<{ deliveries: Delivery[]; total: number }>;
  /** How many deliveries have `status`. */
  count(status: DeliveryStatus): Promise<number>;
  /** Undelivered events per endpoint (what the size limit bounds). */
  pendingCount(endpoint: string): Promise<number>;
  /**
   * Makes failed deliveries pending again, due at `now` with a new retry
   * window (one by id, or every failed one); returns how many.
   */
  retryFailed(now: number, id?: number): Promise<number>;
  /** Forgets delivered rows older than `before`; returns how many. */
  prune(before: number): Promise<number>;
}
