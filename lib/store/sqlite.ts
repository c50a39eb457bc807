/**
 * The SQLite transcript store (`node:sqlite`, WAL mode, FTS5 search): the
 * default, one file under DATA_DIR, nothing to set up.
 *
 * `node:sqlite` is synchronous; the store's methods are async only to share
 * {@link TranscriptStore} with PostgreSQL. Writes run one at a time, so a
 * final hook that awaits never lets another statement into its transaction.
 *
 * @module
 */
import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import { dirname } from "node:path";
import { mkdirSync } from "node:fs";
import {
  type AppendOptions,
  callFromRow,
  type CallPage,
  type CallQuery,
  dbPath,
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
import { InstanceLock } from "./instance_lock.ts";
import { StatementCache } from "./statement_cache.ts";

type Row = Record<string, SQLInputValue>;

/** A read or a transaction waiting its turn. */
interface Job {
  work: () => unknown;
  transaction: boolean;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/** The most transactions committed together. */
const MAX_GROUP = 256;

/** The SQLite store of calls and segments. */
export class SqliteStore implements TranscriptStore {
  readonly kind = "sqlite";
  readonly location: string;
  /** The database file (or `:memory:`). */
  readonly path: string;
  #db: DatabaseSync;
  #seq = new Map<string, number>();
  #hooks = new Set<FinalHook>();
  /** Jobs waiting for the database, in order (see {@link SqliteStore.#drain}). */
  #jobs: Job[] = [];
  #draining = false;
  readonly #statements: StatementCache<StatementSync>;
  #tx: StoreTransaction;
  /** The server recording calls through this store (null for readers such as the CLI). */
  readonly instanceId: string | null;
  #lock: InstanceLock | null = null;

  /**
   * Opens (creating if needed) the database at `path` and migrates it. With
   * `instanceId` (a server), the store holds that instance's lock beside the
   * file until closed and records the instance on the calls it starts.
   */
  constructor(path: string, options: { instanceId?: string } = {}) {
    this.path = this.location = path;
    this.instanceId = options.instanceId ?? null;
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    this.#db = new DatabaseSync(path);
    this.#statements = new StatementCache((sql) => this.#db.prepare(sql));
    this.#db.exec("PRAGMA journal_mode = WAL");
    // FULL: each commit is on disk before the final is printed, even across power loss.
    this.#db.exec("PRAGMA synchronous = FULL");
    this.#db.exec("PRAGMA foreign_keys = ON");
    // The command line may read while the server writes.
    this.#db.exec("PRAGMA busy_timeout = 5000");
    this.#tx = {
      dialect: "sqlite",
      query: <T>(sql: string, params: readonly SqlValue[] = []) =>
        Promise.resolve(this.#statement(sql).all(...(params as SQLInputValue[])) as T[]),
    };
    this.#migrate();
    if (this.instanceId && path !== ":memory:") {
      this.#lock = InstanceLock.acquire(dirname(path), this.instanceId);
    }
  }

  /** Opens the store in a data folder (`DATA_DIR`); `instanceId` as in the constructor. */
  static open(dataDir: string, options: { instanceId?: string } = {}): SqliteStore {
    return new SqliteStore(dbPath(dataDir), options);
  }

  #migrate(): void {
    const { user_version: version } = this.#statement("PRAGMA user_version").get() as {
      user_version: number;
    };
    if (version > MIGRATIONS.length) throw newerSchemaError(this.path, version);
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.#db.exec("BEGIN IMMEDIATE");
      try {
        this.#db.exec(MIGRATIONS[v].sqlite);
        this.#db.exec(`PRAGMA user_version = ${v + 1}`);
        this.#db.exec("COMMIT");
      } catch (error) {
        this.#db.exec("ROLLBACK");
        throw new Error(
          `cannot migrate ${this.path} to version ${v + 1} (${MIGRATIONS[v].name}): ${
            (error as Error).message
          }`,
        );
      }
    }
  }

  /** `sql` compiled once (compiling a statement cost about a quarter of a call's start). */
  #statement(sql: string): StatementSync {
    return this.#statements.get(sql);
  }

  /** Runs `work` after every job queued before it, outside any transaction. */
  #exclusive<T>(work: () => T | Promise<T>): Promise<T> {
    return this.#enqueue(work, false);
  }

  /**
   * Runs `work` in a transaction after every job queued before it; resolves
   * once it is committed. Its writes and its hooks' commit together or not at
   * all.
   */
  #transaction<T>(work: (tx: StoreTransaction) => T | Promise<T>): Promise<T> {
    return this.#enqueue(() => work(this.#tx), true);
  }

  transaction<T>(work: (tx: StoreTransaction) => Promise<T>): Promise<T> {
    return this.#transaction(work);
  }

  #enqueue<T>(work: () => T | Promise<T>, transaction: boolean): Promise<T> {
    const { promise, resolve, reject } = Promise.withResolvers<T>();
    this.#jobs.push({ work, transaction, resolve: resolve as (value: unknown) => void, reject });
    if (!this.#draining) {
      this.#draining = true;
      // From a microtask: the jobs a caller queues in one go are then all there for one group.
      queueMicrotask(() => this.#drain());
    }
    return promise;
  }

  /** Runs the queued jobs in order; transactions queued one behind another commit together. */
  async #drain(): Promise<void> {
    try {
      while (this.#jobs.length) {
        const first = this.#jobs.shift()!;
        if (!first.transaction) {
          try {
            first.resolve(await first.work());
          } catch (error) {
            first.reject(error);
          }
          continue;
        }
        const batch = [first];
        while (batch.length < MAX_GROUP && this.#jobs[0]?.transaction) {
          batch.push(this.#jobs.shift()!);
        }
        await this.#commitGroup(batch);
      }
    } finally {
      this.#draining = false;
    }
  }

  /**
   * Group commit: the jobs in one transaction, each in a savepoint of its own
   * (one that throws is rolled back alone and rejects), then one commit: one
   * write and sync of the log for a burst of calls starting or ending at
   * once, where a transaction each held the event loop ~0.2 ms per call.
   * None resolves before the commit is on disk.
   */
  async #commitGroup(batch: Job[]): Promise<void> {
    /** Jobs not yet rejected on their own, with what their work returned. */
    const unsettled = new Map<Job, unknown>(batch.map((job) => [job, undefined]));
    try {
      this.#db.exec("BEGIN IMMEDIATE");
      for (const job of batch) {
        this.#db.exec("SAVEPOINT job");
        let value: unknown;
        try {
          value = await job.work();
        } catch (error) {
          this.#db.exec("ROLLBACK TO job");
          this.#db.exec("RELEASE job");
          unsettled.delete(job);
          job.reject(error);
          continue;
        }
        this.#db.exec("RELEASE job");
        unsettled.set(job, value);
      }
      this.#db.exec("COMMIT");
    } catch (error) {
      // The database failed (its disk, a lock held too long): nothing of the group is kept.
      if (this.#db.isTransaction) {
        try {
          this.#db.exec("ROLLBACK");
        } catch {
          // SQLite rolled it back itself
        }
      }
      // Turn numbers the rolled-back segments took are read again from the database.
      this.#seq.clear();
      for (const job of unsettled.keys()) job.reject(error);
      return;
    }
    for (const [job, value] of unsettled) job.resolve(value);
  }

  addFinalHook(hook: FinalHook): () => void {
    this.#hooks.add(hook);
    return () => this.#hooks.delete(hook);
  }

  callStarted(
    call: NewCall,
    at: number,
    engine?: string,
    options: { within?: TransactionWork } = {},
  ): Promise<void> {
    return this.#transaction(async (tx) => {
      this.#statement(
        `INSERT INTO calls (call_sid, direction, from_number, to_number, engine, started_at, answered_at, status, instance_id)
         VALUES (?, ?, ?, ?, ?, ?, ?, 'in-progress', ?)
         ON CONFLICT (call_sid) DO UPDATE SET status = 'in-progress', ended_at = NULL, duration_ms = NULL,
           instance_id = excluded.instance_id`,
      ).run(
        call.callSid,
        call.direction,
        call.from ?? null,
        call.to ?? null,
        engine ?? null,
        at,
        at,
        this.instanceId,
      );
      await options.within?.(tx);
    });
  }

  addSegment(callSid: string, t: NewSegment, options: AppendOptions = {}): Promise<Segment> {
    const receivedAt = options.receivedAt ?? Date.now();
    const confidence = meanConfidence(t.words);
    const hooks = [...this.#hooks, ...(options.within ? [options.within] : [])];
    return this.#transaction(async (tx) => {
      // Read when its turn comes: a final before it in the same group may have taken a number.
      const previous = this.#seq.get(callSid);
      // A final may arrive for a call we never saw start (store opened mid-call).
      this.#statement(
        `INSERT OR IGNORE INTO calls (call_sid, direction, started_at, status, instance_id)
           VALUES (?, 'unknown', ?, 'in-progress', ?)`,
      ).run(callSid, receivedAt, this.instanceId);
      const seq = (previous ?? (this.#statement(
        "SELECT COALESCE(MAX(seq), 0) AS seq FROM segments WHERE call_sid = ?",
      ).get(callSid) as { seq: number }).seq) + 1;
      const result = this.#statement(
        `INSERT INTO segments (call_sid, track, seq, text, start_ms, end_ms, words, confidence, received_at, engine, speaker, language)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        callSid,
        t.track,
        seq,
        t.text,
        Math.round(t.startMs),
        Math.round(t.endMs),
        JSON.stringify(t.words),
        confidence,
        receivedAt,
        t.engine ?? null,
        t.speaker ?? null,
        t.language ?? null,
      );
      const segment = storedSegment(callSid, t, {
        id: Number(result.lastInsertRowid),
        seq,
        receivedAt,
        confidence,
      });
      for (const hook of hooks) await hook(tx, segment);
      // Set only once the final and its hooks succeeded; a failed commit clears the numbers.
      this.#seq.set(callSid, segment.seq);
      return segment;
    });
  }

  callEnded(
    callSid: string,
    at: number,
    reason: string,
    status = "completed",
    options: { within?: TransactionWork; audioMs?: number } = {},
  ): Promise<void> {
    return this.#transaction(async (tx) => {
      this.#statement(
        `UPDATE calls SET ended_at = ?, status = ?, end_reason = ?, duration_ms = MAX(0, ? - started_at, ?)
         WHERE call_sid = ?`,
      ).run(at, status, reason, at, Math.round(options.audioMs ?? 0), callSid);
      await options.within?.(tx);
      this.#seq.delete(callSid);
    });
  }

  /**
   * Marks `interrupted` the calls in progress whose server is gone: its
   * instance lock is free (killed, crashed), or the call names no instance
   * (recorded before instances were). Calls of a server still running on
   * this database (a second server on the same DATA_DIR) are left alone.
   */
  markInterrupted(options: { within?: InterruptedHook } = {}): Promise<number> {
    return this.#transaction(async (tx) => {
      const alive = new Map<string, boolean>();
      const isAlive = (id: string) => {
        if (id === this.instanceId) return true;
        if (!alive.has(id)) alive.set(id, InstanceLock.isAlive(dirname(this.path), id));
        return alive.get(id)!;
      };
      const marked = (this.#statement(
        `SELECT call_sid, instance_id FROM calls WHERE status = 'in-progress' ORDER BY started_at, call_sid`,
      ).all() as Row[]).filter((row) =>
        row.instance_id === null || !isAlive(String(row.instance_id))
      )
        .map((row) => String(row.call_sid));
      const mark = this.#statement(
        `UPDATE calls SET status = 'interrupted', end_reason = 'server stopped',
             ended_at = COALESCE((SELECT MAX(received_at) FROM segments s WHERE s.call_sid = calls.call_sid), started_at),
             duration_ms = COALESCE((SELECT MAX(received_at) FROM segments s WHERE s.call_sid = calls.call_sid), started_at) - started_at
           WHERE call_sid = ?`,
      );
      for (const callSid of marked) mark.run(callSid);
      if (options.within) {
        for (const callSid of marked) {
          const row = this.#statement(`${CALL_SELECT} WHERE c.call_sid = ?`).get(callSid) as Row;
          await options.within(tx, {
            call: callFromRow(row),
            segments: this.#segmentsOf(callSid),
          });
        }
      }
      return marked.length;
    });
  }

  getCall(callSid: string): Promise<StoredCall | null> {
    return this.#exclusive(() => {
      const row = this.#statement(`${CALL_SELECT} WHERE c.call_sid = ?`).get(callSid) as
        | Row
        | undefined;
      return row ? callFromRow(row) : null;
    });
  }

  listCalls(query: CallQuery = {}): Promise<CallPage> {
    return this.#exclusive(() => {
      const where: string[] = [];
      const params: SQLInputValue[] = [];
      if (query.search?.trim()) {
        where.push(
          `c.call_sid IN (SELECT s.call_sid FROM segments s
             WHERE s.id IN (SELECT rowid FROM segments_fts WHERE segments_fts MATCH ?))`,
        );
        params.push(ftsQuery(query.search));
      }
      if (query.number?.trim()) {
        where.push(
          `(REPLACE(REPLACE(REPLACE(COALESCE(c.from_number, ''), '+', ''), ' ', ''), '-', '') LIKE ? ESCAPE '\\'
            OR REPLACE(REPLACE(REPLACE(COALESCE(c.to_number, ''), '+', ''), ' ', ''), '-', '') LIKE ? ESCAPE '\\')`,
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
      const total = (this.#statement(`SELECT COUNT(*) AS n FROM calls c ${clause}`).get(
        ...params,
      ) as { n: number }).n;
      const rows = this.#statement(
        `${CALL_SELECT} ${clause} ORDER BY c.started_at DESC, c.rowid DESC LIMIT ? OFFSET ?`,
      ).all(...params, query.limit ?? 50, query.offset ?? 0) as Row[];
      return { calls: rows.map(callFromRow), total };
    });
  }

  segments(callSid: string): Promise<Segment[]> {
    return this.#exclusive(() => this.#segmentsOf(callSid));
  }

  #segmentsOf(callSid: string): Segment[] {
    const rows = this.#statement(
      "SELECT * FROM segments WHERE call_sid = ? ORDER BY seq",
    ).all(callSid) as Row[];
    return rows.map(segmentFromRow);
  }

  deleteCall(callSid: string): Promise<boolean> {
    return this.#transaction(() => {
      const changes = Number(
        this.#statement("DELETE FROM calls WHERE call_sid = ?").run(callSid).changes,
      );
      this.#seq.delete(callSid);
      return changes > 0;
    });
  }

  /** Closes the database (checkpointing the WAL) once queued writes are done; releases the instance lock. */
  close(): Promise<void> {
    return this.#exclusive(() => {
      if (this.#db.isOpen) this.#db.close();
      this.#lock?.release();
    });
  }
}

const CALL_SELECT =
  `SELECT c.*, (SELECT COUNT(*) FROM segments s WHERE s.call_sid = c.call_sid) AS segment_count
  FROM calls c`;

/**
 * Turns what a person types into an FTS5 query that cannot be a syntax
 * error: every word is quoted (all must match); a trailing `*` keeps prefix search.
 */
function ftsQuery(input: string): string {
  const terms = searchTerms(input).map(({ word, prefix }) =>
    `"${word.replaceAll('"', '""')}"${prefix ? "*" : ""}`
  );
  return terms.join(" ") || '""';
}
