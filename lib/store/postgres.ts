/**
 * The PostgreSQL transcript store (the `postgres` npm driver), for
 * `DATABASE_URL=postgres://…`: many instances share one database. Search
 * is PostgreSQL full-text search (a generated `tsvector` with a GIN index,
 * the `simple` configuration, `word:*` for prefixes).
 *
 * @module
 */
import postgres from "postgres";
import {
  type AppendOptions,
  callFromRow,
  type CallPage,
  type CallQuery,
  type FinalHook,
  type InterruptedHook,
  meanConfidence,
  type NewCall,
  type NewSegment,
  numberPattern,
  searchTerms,
  type Segment,
  segmentFromRow,
  type SqlValue,
  type StoredCall,
  storedSegment,
  type StoreTransaction,
  type TransactionWork,
  type TranscriptStore,
} from "./db.ts";
import { MIGRATIONS, newerSchemaError } from "./migrations.ts";

type Row = Record<string, unknown>;
type Sql = postgres.Sql;
type TxSql = postgres.TransactionSql;

/** Any key works; this one is ours (an arbitrary 64-bit number). */
const MIGRATION_LOCK = 7_316_427_025;

/** A URL for messages: the password is never shown. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.password = "";
    return parsed.toString();
  } catch {
    return "(DATABASE_URL)";
  }
}

/** `?` placeholders to PostgreSQL's `$1, $2, …`. */
export function placeholders(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

function transactionOf(tx: TxSql): StoreTransaction {
  return {
    dialect: "postgres",
    query: async <T>(sql: string, params: readonly SqlValue[] = []) =>
      (await tx.unsafe(placeholders(sql), params as postgres.ParameterOrJSON<never>[])) as T[],
  };
}

/** The PostgreSQL store of calls and segments. */
export class PostgresStore implements TranscriptStore {
  readonly kind = "postgres";
  readonly location: string;
  /** The driver's connection pool (LISTEN/NOTIFY and the instance registry use it too). */
  readonly sql: Sql;
  #hooks = new Set<FinalHook>();
  /** Per call, the latest append: a call's finals commit in the order they were given. */
  #appends = new Map<string, Promise<unknown>>();
  /** This instance: its calls are recorded as its own. */
  readonly instanceId: string | null;
  #instanceTimeoutSeconds: number;

  private constructor(sql: Sql, location: string, options: PostgresStoreOptions) {
    this.sql = sql;
    this.location = location;
    this.instanceId = options.instanceId ?? null;
    this.#instanceTimeoutSeconds = (options.instanceTimeoutMs ?? INSTANCE_TIMEOUT_MS) / 1000;
  }

  /** Connects to `url`, checks it can be reached, and migrates the schema. */
  static async connect(url: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const location = redactUrl(url);
    const sql = postgres(url, {
      max: options.max ?? 10,
      onnotice: () => {},
      connect_timeout: 10,
      connection: { application_name: "callscribe" },
    });
    const store = new PostgresStore(sql, location, options);
    try {
      await store.#migrate();
    } catch (error) {
      await sql.end({ timeout: 1 });
      throw new Error(`cannot use the database ${location}: ${(error as Error).message}`);
    }
    return store;
  }

  async #migrate(): Promise<void> {
    for (let v = 1; v <= MIGRATIONS.length; v++) {
      // Each migration in its own transaction, under a lock: instances starting together wait.
      await this.sql.begin(async (tx) => {
        await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`;
        await tx`CREATE TABLE IF NOT EXISTS callscribe_schema (version INTEGER NOT NULL)`;
        const [row] = await tx`SELECT version FROM callscribe_schema`;
        const version = row ? Number(row.version) : 0;
        if (version > MIGRATIONS.length) throw newerSchemaError(this.location, version);
        if (version >= v) return;
        try {
          await tx.unsafe(MIGRATIONS[v - 1].postgres).simple();
        } catch (error) {
          throw new Error(
            `cannot migrate to version ${v} (${MIGRATIONS[v - 1].name}): ${
              (error as Error).message
            }`,
          );
        }
        if (row) await tx`UPDATE callscribe_schema SET version = ${v}`;
        else await tx`INSERT INTO callscribe_schema (version) VALUES (${v})`;
      });
    }
  }

  async transaction<T>(work: (tx: StoreTransaction) => Promise<T>): Promise<T> {
    return await this.sql.begin((tx) => work(transactionOf(tx))) as T;
  }

  addFinalHook(hook: FinalHook): () => void {
    this.#hooks.add(hook);
    return () => this.#hooks.delete(hook);
  }

  async callStarted(
    call: NewCall,
    at: number,
    engine?: string,
    options: { within?: TransactionWork } = {},
  ): Promise<void> {
    await this.sql.begin(async (tx) => {
      await tx`
        INSERT INTO calls (call_sid, direction, from_number, to_number, engine, started_at, answered_at, status, instance_id)
        VALUES (${call.callSid}, ${call.direction}, ${call.from ?? null}, ${call.to ?? null},
                ${engine ?? null}, ${at}, ${at}, 'in-progress', ${this.instanceId})
        ON CONFLICT (call_sid) DO UPDATE SET status = 'in-progress', ended_at = NULL, duration_ms = NULL,
          instance_id = EXCLUDED.instance_id`;
      await options.within?.(transactionOf(tx));
    });
  }

  addSegment(callSid: string, t: NewSegment, options: AppendOptions = {}): Promise<Segment> {
    const previous = this.#appends.get(callSid) ?? Promise.resolve();
    const appended = previous.then(() => this.#append(callSid, t, options));
    const settled = appended.catch(() => {});
    this.#appends.set(callSid, settled);
    settled.then(() => {
      if (this.#appends.get(callSid) === settled) this.#appends.delete(callSid);
    });
    return appended;
  }

  async #append(callSid: string, t: NewSegment, options: AppendOptions): Promise<Segment> {
    const receivedAt = options.receivedAt ?? Date.now();
    const confidence = meanConfidence(t.words);
    const hooks = [...this.#hooks, ...(options.within ? [options.within] : [])];
    const startMs = Math.round(t.startMs);
    const endMs = Math.round(t.endMs);
    return await this.sql.begin(async (tx) => {
      // A final may arrive for a call we never saw start (store opened mid-call).
      await tx`
        INSERT INTO calls (call_sid, direction, started_at, status, instance_id)
        VALUES (${callSid}, 'unknown', ${receivedAt}, 'in-progress', ${this.instanceId})
        ON CONFLICT (call_sid) DO NOTHING`;
      // The call's row lock orders its finals even if two writers ever raced.
      await tx`SELECT 1 FROM calls WHERE call_sid = ${callSid} FOR UPDATE`;
      const [row] = await tx`
        INSERT INTO segments (call_sid, track, seq, text, start_ms, end_ms, words, confidence, received_at, engine, speaker, language)
        SELECT ${callSid}, ${t.track}, COALESCE(MAX(seq), 0) + 1, ${t.text}, ${startMs}, ${endMs},
               ${tx.json(t.words as unknown as postgres.JSONValue)}, ${confidence}, ${receivedAt},
               ${t.engine ?? null}, ${t.speaker ?? null}, ${t.language ?? null}
        FROM segments WHERE call_sid = ${callSid}
        RETURNING id, seq`;
      const segment = storedSegment(callSid, t, {
        id: Number(row.id),
        seq: Number(row.seq),
        receivedAt,
        confidence,
      });
      const transaction = transactionOf(tx);
      for (const hook of hooks) await hook(transaction, segment);
      return segment;
    }) as Segment;
  }

  async callEnded(
    callSid: string,
    at: number,
    reason: string,
    status = "completed",
    options: { within?: TransactionWork; audioMs?: number } = {},
  ): Promise<void> {
    await this.sql.begin(async (tx) => {
      await tx`
        UPDATE calls SET ended_at = ${at}, status = ${status}, end_reason = ${reason},
          duration_ms = GREATEST(0, ${at}::bigint - started_at, ${
        Math.round(options.audioMs ?? 0)
      }::bigint)
        WHERE call_sid = ${callSid}`;
      await options.within?.(transactionOf(tx));
    });
  }

  /** On PostgreSQL: the calls of instances that stopped beating, see {@link interruptOrphans}. */
  async markInterrupted(options: { within?: InterruptedHook } = {}): Promise<number> {
    return (await this.interruptOrphans(options)).length;
  }

  /**
   * Marks `interrupted` the calls in progress whose instance is gone: no
   * heartbeat within the instance timeout, stopped, or never registered
   * (never this instance's own). Their words are kept; the call ends at its
   * last final. Safe to run on every instance at once: each call is marked
   * by one. `within` runs for each marked call in the same transaction.
   * Returns the calls this run marked.
   */
  async interruptOrphans(options: { within?: InterruptedHook } = {}): Promise<StoredCall[]> {
    return await this.sql.begin(async (tx) => {
      const calls = await this.#markOrphans(tx);
      if (options.within) {
        for (const call of calls) {
          const rows =
            await tx`SELECT * FROM segments WHERE call_sid = ${call.callSid} ORDER BY seq`;
          await options.within(transactionOf(tx), { call, segments: rows.map(segmentFromRow) });
        }
      }
      return calls;
    }) as StoredCall[];
  }

  async #markOrphans(tx: TxSql): Promise<StoredCall[]> {
    const rows = await tx`
      UPDATE calls SET status = 'interrupted', end_reason = 'instance stopped',
        ended_at = COALESCE((SELECT MAX(received_at) FROM segments s WHERE s.call_sid = calls.call_sid), started_at),
        duration_ms = COALESCE((SELECT MAX(received_at) FROM segments s WHERE s.call_sid = calls.call_sid), started_at) - started_at
      WHERE status = 'in-progress'
        AND instance_id IS DISTINCT FROM ${this.instanceId ?? ""}
        AND NOT EXISTS (
          SELECT 1 FROM instances i WHERE i.id = calls.instance_id AND i.state <> 'stopped'
            AND i.heartbeat_at > now() - make_interval(secs => ${this.#instanceTimeoutSeconds}))
      RETURNING *, (SELECT COUNT(*) FROM segments s WHERE s.call_sid = calls.call_sid) AS segment_count`;
    return rows.map(callFromRow);
  }

  async getCall(callSid: string): Promise<StoredCall | null> {
    const [row] = await this.sql.unsafe(`${CALL_SELECT} WHERE c.call_sid = $1`, [callSid]);
    return row ? callFromRow(row) : null;
  }

  async listCalls(query: CallQuery = {}): Promise<CallPage> {
    const where: string[] = [];
    const params: SqlValue[] = [];
    if (query.search?.trim()) {
      where.push(
        `c.call_sid IN (SELECT s.call_sid FROM segments s
           WHERE s.text_search @@ to_tsquery('simple', ?))`,
      );
      params.push(tsQuery(query.search));
    }
    if (query.number?.trim()) {
      where.push(
        `(regexp_replace(COALESCE(c.from_number, ''), '[+ -]', '', 'g') LIKE ? ESCAPE '\\'
          OR regexp_replace(COALESCE(c.to_number, ''), '[+ -]', '', 'g') LIKE ? ESCAPE '\\')`,
      );
      const like = numberPattern(query.number);
      params.push(like, like);
    }
    if (query.since !== undefined) {
      where.push("c.started_at >= ?");
      params.push(query.since);
    }
    if (query.until !== undefined) {
      where.push("c.started_at < ?");
      params.push(query.until);
    }
    const clause = where.length ? `WHERE ${where.join(" AND ")}` : "";
    const bind = params as postgres.ParameterOrJSON<never>[];
    const [count] = await this.sql.unsafe(
      placeholders(`SELECT COUNT(*) AS n FROM calls c ${clause}`),
      bind,
    );
    const rows = await this.sql.unsafe(
      placeholders(
        `${CALL_SELECT} ${clause} ORDER BY c.started_at DESC, c.id DESC LIMIT ? OFFSET ?`,
      ),
      [...bind, query.limit ?? 50, query.offset ?? 0],
    );
    return { calls: rows.map(callFromRow), total: Number(count.n) };
  }

  async segments(callSid: string): Promise<Segment[]> {
    const rows = await this.sql`SELECT * FROM segments WHERE call_sid = ${callSid} ORDER BY seq`;
    return rows.map(segmentFromRow);
  }

  async deleteCall(callSid: string): Promise<boolean> {
    const result = await this.sql`DELETE FROM calls WHERE call_sid = ${callSid}`;
    return result.count > 0;
  }

  /** Closes the pool, letting running queries finish (up to 5 s). */
  async close(): Promise<void> {
    await this.sql.end({ timeout: 5 });
  }
}

/** Options of {@link PostgresStore.connect}. */
export interface PostgresStoreOptions {
  /** Most connections in the pool (default 10). */
  max?: number;
  /** This instance's id: calls it records are its own, and never orphans to it. */
  instanceId?: string;
  /** An instance without a heartbeat for this long is gone (default {@link INSTANCE_TIMEOUT_MS}). */
  instanceTimeoutMs?: number;
}

/** Default of {@link PostgresStoreOptions.instanceTimeoutMs}. */
export const INSTANCE_TIMEOUT_MS = 15_000;

const CALL_SELECT =
  `SELECT c.*, (SELECT COUNT(*) FROM segments s WHERE s.call_sid = c.call_sid) AS segment_count
  FROM calls c`;

/**
 * Turns what a person types into a `tsquery` that cannot be a syntax error:
 * every word quoted (all must match); a trailing `*` keeps prefix search.
 */
function tsQuery(input: string): string {
  return searchTerms(input).map(({ word, prefix }) =>
    `'${word.replaceAll("\\", "\\\\").replaceAll("'", "''")}'${prefix ? ":*" : ""}`
  ).join(" & ");
}
