/**
 * The outbox as a table of the transcript store, on SQLite and PostgreSQL
 * alike (the `webhook_outbox` migration). Events are queued by
 * {@link SqlOutbox.enqueue} inside the store's transaction for what they
 * report. Claims on PostgreSQL take their rows with `FOR UPDATE SKIP
 * LOCKED`, so instances sharing the database never claim the same event;
 * SQLite has one writer and needs no row locks.
 *
 * @module
 */
import type { SqlValue, StoreTransaction, TranscriptStore } from "../store/db.ts";
import type { Delivery, DeliveryQuery, DeliveryStatus, Outbox } from "./outbox.ts";
import type { WebhookMessage } from "./webhook_message.ts";

/** What differs between the two dialects. */
const DIALECT = {
  sqlite: { greatest: "MAX", lock: "" },
  postgres: { greatest: "GREATEST", lock: "FOR UPDATE OF o SKIP LOCKED" },
} as const;

/** A pending delivery that is its call's oldest pending one for its endpoint. */
const HEAD_OF_CALL = `NOT EXISTS (
  SELECT 1 FROM webhook_outbox p
  WHERE p.endpoint = o.endpoint AND p.status = 'pending' AND p.call_sid = o.call_sid AND p.id < o.id)`;

/** The outbox in a transcript store. */
export class SqlOutbox implements Outbox {
  #store: TranscriptStore;

  constructor(store: TranscriptStore) {
    this.#store = store;
  }

  /** Queues `message` for each endpoint, in `tx` (the transaction of what it reports). */
  async enqueue(
    tx: StoreTransaction,
    message: WebhookMessage,
    endpoints: readonly string[],
    now: number,
  ): Promise<void> {
    for (const endpoint of endpoints) {
      await tx.query(
        `INSERT INTO webhook_outbox (message_id, endpoint, call_sid, event_type, body, created_at, window_start, next_attempt_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        [message.id, endpoint, message.callSid, message.type, message.body, now, now, now],
      );
    }
  }

  /** Undelivered events for `endpoint`, counted in `tx`. */
  async pendingIn(tx: StoreTransaction, endpoint: string): Promise<number> {
    const [row] = await tx.query<{ n: number | string }>(
      "SELECT COUNT(*) AS n FROM webhook_outbox WHERE endpoint = ? AND status = 'pending'",
      [endpoint],
    );
    return Number(row.n);
  }

  /**
   * Frees every claim at once. Only for SQLite, which one process writes:
   * claims a killed run left behind are void.
   */
  releaseClaims(): Promise<void> {
    return this.#run(
      "UPDATE webhook_outbox SET lease_owner = NULL, lease_until = NULL WHERE status = 'pending'",
    ).then(() => {});
  }

  async claim(
    endpoint: string,
    options: { limit: number; now: number; leaseMs: number; owner: string },
  ): Promise<Delivery[]> {
    const rows = await this.#run(
      `UPDATE webhook_outbox SET lease_owner = ?, lease_until = ?
       WHERE id IN (
         SELECT o.id FROM webhook_outbox o
         WHERE o.endpoint = ? AND o.status = 'pending' AND o.next_attempt_at <= ?
           AND (o.lease_until IS NULL OR o.lease_until <= ?) AND ${HEAD_OF_CALL}
         ORDER BY o.id LIMIT ? ${this.#dialect.lock})
       RETURNING *`,
      [
        options.owner,
        options.now + options.leaseMs,
        endpoint,
        options.now,
        options.now,
        options.limit,
      ],
    );
    return rows.map(toDelivery).sort((a, b) => a.id - b.id);
  }

  async nextDue(endpoint: string): Promise<number | null> {
    const [row] = await this.#run(
      `SELECT MIN(${this.#dialect.greatest}(o.next_attempt_at, COALESCE(o.lease_until, 0))) AS at
       FROM webhook_outbox o WHERE o.endpoint = ? AND o.status = 'pending' AND ${HEAD_OF_CALL}`,
      [endpoint],
    );
    return row.at === null ? null : Number(row.at);
  }

  async delivered(ids: readonly number[], now: number): Promise<void> {
    if (!ids.length) return;
    await this.#run(
      `UPDATE webhook_outbox SET status = 'delivered', delivered_at = ?, attempts = attempts + 1,
         lease_owner = NULL, lease_until = NULL, last_error = NULL
       WHERE id IN (${ids.map(() => "?").join(", ")})`,
      [now, ...ids],
    );
  }

  async retryLater(id: number, at: number, error: string): Promise<void> {
    await this.#run(
      `UPDATE webhook_outbox SET next_attempt_at = ?, last_error = ?, attempts = attempts + 1,
         lease_owner = NULL, lease_until = NULL WHERE id = ? AND status = 'pending'`,
      [at, error, id],
    );
  }

  async failed(id: number, error: string): Promise<void> {
    await this.#run(
      `UPDATE webhook_outbox SET status = 'failed', last_error = ?, attempts = attempts + 1,
         lease_owner = NULL, lease_until = NULL WHERE id = ? AND status = 'pending'`,
      [error, id],
    );
  }

  async list(query: DeliveryQuery): Promise<{ deliveries: Delivery[]; total: number }> {
    const where = query.status ? "WHERE status = ?" : "";
    const params: SqlValue[] = query.status ? [query.status] : [];
    const [count] = await this.#run(`SELECT COUNT(*) AS n FROM webhook_outbox ${where}`, params);
    const rows = await this.#run(
      `SELECT * FROM webhook_outbox ${where} ORDER BY id DESC LIMIT ? OFFSET ?`,
      [...params, query.limit ?? 50, query.offset ?? 0],
    );
    return { deliveries: rows.map(toDelivery), total: Number(count.n) };
  }

  async count(status: DeliveryStatus): Promise<number> {
    const [row] = await this.#run("SELECT COUNT(*) AS n FROM webhook_outbox WHERE status = ?", [
      status,
    ]);
    return Number(row.n);
  }

  pendingCount(endpoint: string): Promise<number> {
    return this.#store.transaction((tx) => this.pendingIn(tx, endpoint));
  }

  async retryFailed(now: number, id?: number): Promise<number> {
    const rows = await this.#run(
      `UPDATE webhook_outbox SET status = 'pending', window_start = ?, next_attempt_at = ?, attempts = 0,
         lease_owner = NULL, lease_until = NULL
       WHERE status = 'failed' ${id === undefined ? "" : "AND id = ?"} RETURNING id`,
      [now, now, ...(id === undefined ? [] : [id])],
    );
    return rows.length;
  }

  async prune(before: number): Promise<number> {
    const rows = await this.#run(
      "DELETE FROM webhook_outbox WHERE status = 'delivered' AND delivered_at < ? RETURNING id",
      [before],
    );
    return rows.length;
  }

  get #dialect() {
    return DIALECT[this.#store.kind];
  }

  #run(sql: string, params: readonly SqlValue[] = []): Promise<Record<string, unknown>[]> {
    return this.#store.transaction((tx) => tx.query(sql, params));
  }
}

function toDelivery(row: Record<string, unknown>): Delivery {
  const at = (value: unknown) => value === null ? null : Number(value);
  return {
    id: Number(row.id),
    messageId: row.message_id as string,
    endpoint: row.endpoint as string,
    callSid: row.call_sid as string,
    eventType: row.event_type as string,
    body: row.body as string,
    status: row.status as DeliveryStatus,
    attempts: Number(row.attempts),
    createdAt: Number(row.created_at),
    windowStart: Number(row.window_start),
    nextAttemptAt: Number(row.next_attempt_at),
    lastError: row.last_error as string | null,
    deliveredAt: at(row.delivered_at),
  };
}
