/**
 * Live events shared by every instance on one PostgreSQL. Each event is a
 * row of `live_events`; `NOTIFY callscribe_live` carries only its id (a
 * notification's payload is limited to 8000 bytes and is not kept), and
 * every instance, this one included, reads the row and delivers it to its
 * dashboards. The row id is the SSE event id, so a client that reconnects
 * to any instance resumes after its `Last-Event-ID`.
 *
 * A final's event is written in the final's own transaction (see
 * {@link PostgresLiveBus.finalHook}): it exists exactly when the final does.
 *
 * @module
 */
import type { FinalHook } from "../store/db.ts";
import { placeholders, type PostgresStore } from "../store/postgres.ts";
import type { LiveBus, LiveEvent } from "../live/live_hub.ts";
import { segmentData } from "../live/live_hub.ts";
import type { Logger } from "../log.ts";

/** The NOTIFY channel. */
export const LIVE_CHANNEL = "callscribe_live";

/** Most events one catch-up reads; a client further behind gets a replay from the store. */
const MAX_CATCH_UP = 5000;
/**
 * Ids of events delivered lately, kept to skip repeats. Ids are taken at
 * INSERT and seen at COMMIT, so a lower id can arrive after a higher one
 * (two calls' finals committing at once): "higher than the last delivered"
 * would drop it.
 */
const RECENT_IDS = 10_000;
/** A catch-up after a reconnect reads this many ids back, for events committed late. */
const LATE_COMMIT_IDS = 1000;

const INSERT_AND_NOTIFY = `WITH e AS (
    INSERT INTO live_events (call_sid, type, data) VALUES (?, ?, ?::text::jsonb) RETURNING id
  ) SELECT pg_notify('${LIVE_CHANNEL}', id::text) FROM e`;

interface EventRow {
  id: string | number;
  call_sid: string;
  type: string;
  data: Record<string, unknown>;
}

const toEvent = (row: EventRow): LiveEvent => ({
  id: String(row.id),
  type: row.type,
  callSid: row.call_sid,
  data: row.data,
});

/** The PostgreSQL live bus of one instance. */
export class PostgresLiveBus implements LiveBus {
  #store: PostgresStore;
  #log: Logger;
  #deliver: (event: LiveEvent) => void = () => {};
  #pending: string[] = [];
  #reading: Promise<void> = Promise.resolve();
  #lastDelivered = 0;
  /** Ids delivered lately (insertion order: the oldest go first), see {@link RECENT_IDS}. */
  #delivered = new Set<number>();
  #unlisten: (() => Promise<void>) | undefined;
  /** Per call, the latest publish: a call's events are written in the order they happened. */
  #publishing = new Map<string, Promise<unknown>>();

  constructor(store: PostgresStore, log: Logger) {
    this.#store = store;
    this.#log = log;
  }

  /** Listens, handing every instance's events to `deliver` in order. */
  async start(deliver: (event: LiveEvent) => void): Promise<void> {
    this.#deliver = deliver;
    const [{ id }] = await this.#store.sql`SELECT COALESCE(MAX(id), 0) AS id FROM live_events`;
    this.#lastDelivered = Number(id);
    const { unlisten } = await this.#store.sql.listen(LIVE_CHANNEL, (payload) => {
      this.#pending.push(payload);
      this.#reading = this.#reading.then(() => this.#read());
    }, () => {
      // (Re)connected: what was notified while the listener was away is read from the table.
      this.#reading = this.#reading.then(() => this.#catchUp());
    });
    this.#unlisten = unlisten;
  }

  /** Reads the rows of the notified ids (one query for all that arrived meanwhile). */
  async #read(): Promise<void> {
    const ids = this.#pending.splice(0).map(Number).filter((id) => !this.#delivered.has(id));
    if (!ids.length) return;
    try {
      const rows = await this.#store.sql<EventRow[]>`
        SELECT id, call_sid, type, data FROM live_events WHERE id = ANY(${ids}) ORDER BY id`;
      for (const row of rows) this.#hand(toEvent(row));
    } catch (error) {
      this.#log.warn(`cannot read live events: ${(error as Error).message}`);
    }
  }

  async #catchUp(): Promise<void> {
    // From a little before the newest delivered: events committed late are below it.
    const from = Math.max(0, this.#lastDelivered - LATE_COMMIT_IDS);
    const events = await this.since(String(from)).catch(() => null) ??
      await this.since(String(this.#lastDelivered)).catch(() => null);
    for (const event of events ?? []) this.#hand(event);
  }

  #hand(event: LiveEvent): void {
    const id = Number(event.id);
    if (this.#delivered.has(id)) return;
    this.#delivered.add(id);
    if (this.#delivered.size > RECENT_IDS) {
      this.#delivered.delete(this.#delivered.values().next().value!);
    }
    this.#lastDelivered = Math.max(this.#lastDelivered, id);
    this.#deliver(event);
  }

  publish(type: string, callSid: string, data: Record<string, unknown>): void {
    const previous = this.#publishing.get(callSid) ?? Promise.resolve();
    const done = previous.then(() =>
      this.#store.sql.unsafe(placeholders(INSERT_AND_NOTIFY), [callSid, type, JSON.stringify(data)])
    ).catch((error) => {
      this.#log.warn(`cannot publish a ${type} event of ${callSid}: ${(error as Error).message}`);
    });
    this.#publishing.set(callSid, done);
    done.then(() => {
      if (this.#publishing.get(callSid) === done) this.#publishing.delete(callSid);
    });
  }

  /** Writes a final's event in the final's transaction: register with `store.addFinalHook`. */
  readonly finalHook: FinalHook = async (tx, segment) => {
    await tx.query(INSERT_AND_NOTIFY, [
      segment.callSid,
      "final",
      JSON.stringify(segmentData(segment)),
    ]);
  };

  async since(id: string): Promise<LiveEvent[] | null> {
    if (!/^\d+$/.test(id)) return null;
    const after = Number(id);
    const [{ oldest }] = await this.#store.sql`SELECT MIN(id) AS oldest FROM live_events`;
    // Pruned past the client's id: the table no longer has all it missed.
    if (oldest !== null && Number(oldest) > after + 1) return null;
    const rows = await this.#store.sql<EventRow[]>`
      SELECT id, call_sid, type, data FROM live_events WHERE id > ${after} ORDER BY id
      LIMIT ${MAX_CATCH_UP + 1}`;
    if (rows.length > MAX_CATCH_UP) return null;
    return rows.map(toEvent);
  }

  async activeCalls(): Promise<Record<string, unknown>[]> {
    const rows = await this.#store.sql`
      SELECT call_sid, direction, from_number, to_number, started_at FROM calls
      WHERE status = 'in-progress' ORDER BY started_at`;
    return rows.map((row) => ({
      callSid: row.call_sid,
      direction: row.direction,
      from: row.from_number,
      to: row.to_number,
      startedAt: new Date(Number(row.started_at)).toISOString(),
    }));
  }

  /** Waits for events being written, then stops listening. */
  async close(): Promise<void> {
    await Promise.all(this.#publishing.values());
    await this.#unlisten?.().catch(() => {});
    await this.#reading;
  }
}
