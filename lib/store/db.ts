/**
 * The transcript store: every call and every final segment in SQLite
 * (`node:sqlite`, WAL mode), searchable with FTS5.
 *
 * Finals are written synchronously, one transaction each, from the
 * registry's listener. Register {@link TranscriptStore.attach} before the
 * printer: a line that was printed is then already committed, so a crash
 * (even SIGKILL) never loses a printed final.
 *
 * @module
 */
import { DatabaseSync, type SQLInputValue } from "node:sqlite";
import { dirname } from "node:path";
import { mkdirSync } from "node:fs";
import type { CallEvent, CallListener } from "../call/events.ts";
import type { CallRegistry } from "../call/registry.ts";
import type { Track, Word } from "../transcribe/engine.ts";

/** The database file inside a data folder. */
export const DB_FILE = "callscribe.db";

/** The database path for a data folder (`DATA_DIR`). */
export function dbPath(dataDir: string): string {
  return `${dataDir.replace(/\/+$/, "") || "."}/${DB_FILE}`;
}

/** A call as stored. Times are epoch ms. */
export interface StoredCall {
  callSid: string;
  direction: string;
  from: string | null;
  to: string | null;
  engine: string | null;
  startedAt: number;
  /** When the media stream started (Twilio only streams answered calls). */
  answeredAt: number | null;
  endedAt: number | null;
  /** `in-progress`, `completed`, or `interrupted` (the server stopped without ending it). */
  status: string;
  durationMs: number | null;
  endReason: string | null;
  segmentCount: number;
}

/** One final piece of a track's transcript. */
export interface Segment {
  id: number;
  callSid: string;
  track: Track;
  /** Order of arrival within the call (1, 2, …) over both tracks. */
  seq: number;
  text: string;
  startMs: number;
  endMs: number;
  words: Word[];
  /** Mean word confidence, when the engine gives one. */
  confidence: number | null;
  receivedAt: number;
}

/** Filters for {@link TranscriptStore.listCalls}. */
export interface CallQuery {
  /** Full-text search over segments (words; a trailing `*` is a prefix). */
  search?: string;
  /** Part of the from or to number (digits compared, `+`, spaces and dashes ignored). */
  number?: string;
  /** Calls started at or after (epoch ms). */
  since?: number;
  /** Calls started before (epoch ms). */
  until?: number;
  limit?: number;
  offset?: number;
}

/** A page of calls, newest first. */
export interface CallPage {
  calls: StoredCall[];
  total: number;
}

/** Schema migrations, applied in order; `PRAGMA user_version` is the number applied. */
const MIGRATIONS: string[] = [
  `CREATE TABLE calls (
     call_sid TEXT PRIMARY KEY,
     direction TEXT NOT NULL,
     from_number TEXT,
     to_number TEXT,
     engine TEXT,
     started_at INTEGER NOT NULL,
     answered_at INTEGER,
     ended_at INTEGER,
     status TEXT NOT NULL,
     duration_ms INTEGER,
     end_reason TEXT
   );
   CREATE INDEX calls_started ON calls (started_at DESC);
   CREATE TABLE segments (
     id INTEGER PRIMARY KEY,
     call_sid TEXT NOT NULL REFERENCES calls (call_sid) ON DELETE CASCADE,
     track TEXT NOT NULL CHECK (track IN ('inbound', 'outbound')),
     seq INTEGER NOT NULL,
     text TEXT NOT NULL,
     start_ms INTEGER NOT NULL,
     end_ms INTEGER NOT NULL,
     words TEXT NOT NULL,
     confidence REAL,
     received_at INTEGER NOT NULL
   );
   CREATE INDEX segments_call ON segments (call_sid, start_ms);
   CREATE VIRTUAL TABLE segments_fts USING fts5 (text, content = 'segments', content_rowid = 'id');
   CREATE TRIGGER segments_ai AFTER INSERT ON segments BEGIN
     INSERT INTO segments_fts (rowid, text) VALUES (new.id, new.text);
   END;
   CREATE TRIGGER segments_ad AFTER DELETE ON segments BEGIN
     INSERT INTO segments_fts (segments_fts, rowid, text) VALUES ('delete', old.id, old.text);
   END;`,
];

/** Current schema version (number of migrations). */
export const SCHEMA_VERSION = MIGRATIONS.length;

type Row = Record<string, SQLInputValue>;

/** The SQLite store of calls and segments. */
export class TranscriptStore {
  readonly path: string;
  #db: DatabaseSync;
  #seq = new Map<string, number>();

  /** Opens (creating if needed) the database at `path` and migrates it. */
  constructor(path: string) {
    this.path = path;
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    this.#db = new DatabaseSync(path);
    this.#db.exec("PRAGMA journal_mode = WAL");
    // FULL: each commit is on disk before the final is printed, even across power loss.
    this.#db.exec("PRAGMA synchronous = FULL");
    this.#db.exec("PRAGMA foreign_keys = ON");
    // The command line may read while the server writes.
    this.#db.exec("PRAGMA busy_timeout = 5000");
    this.#migrate();
  }

  /** Opens the store in a data folder (`DATA_DIR`). */
  static open(dataDir: string): TranscriptStore {
    return new TranscriptStore(dbPath(dataDir));
  }

  #migrate(): void {
    const { user_version: version } = this.#db.prepare("PRAGMA user_version").get() as {
      user_version: number;
    };
    if (version > MIGRATIONS.length) {
      throw new Error(
        `${this.path} has schema version ${version}, newer than this callscribe (${MIGRATIONS.length}); upgrade callscribe`,
      );
    }
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.#transaction(() => {
        this.#db.exec(MIGRATIONS[v]);
        this.#db.exec(`PRAGMA user_version = ${v + 1}`);
      });
    }
  }

  #transaction<T>(work: () => T): T {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      const result = work();
      this.#db.exec("COMMIT");
      return result;
    } catch (error) {
      this.#db.exec("ROLLBACK");
      throw error;
    }
  }

  /** Records a call that started (or restarted: a known SID keeps its segments). */
  callStarted(
    call: { callSid: string; direction: string; from?: string; to?: string },
    at: number,
    engine?: string,
  ): void {
    this.#db.prepare(
      `INSERT INTO calls (call_sid, direction, from_number, to_number, engine, started_at, answered_at, status)
       VALUES (?, ?, ?, ?, ?, ?, ?, 'in-progress')
       ON CONFLICT (call_sid) DO UPDATE SET status = 'in-progress', ended_at = NULL, duration_ms = NULL`,
    ).run(
      call.callSid,
      call.direction,
      call.from ?? null,
      call.to ?? null,
      engine ?? null,
      at,
      at,
    );
  }

  /** Writes one final in its own transaction; returns it as stored. */
  addSegment(
    callSid: string,
    t: { track: Track; text: string; startMs: number; endMs: number; words: Word[] },
    receivedAt = Date.now(),
  ): Segment {
    const confidences = t.words.map((w) => w.confidence).filter((c): c is number =>
      typeof c === "number"
    );
    const confidence = confidences.length
      ? confidences.reduce((a, b) => a + b, 0) / confidences.length
      : null;
    return this.#transaction(() => {
      // A final may arrive for a call we never saw start (store opened mid-call).
      this.#db.prepare(
        `INSERT OR IGNORE INTO calls (call_sid, direction, started_at, status)
         VALUES (?, 'unknown', ?, 'in-progress')`,
      ).run(callSid, receivedAt);
      let seq = this.#seq.get(callSid);
      if (seq === undefined) {
        const row = this.#db.prepare(
          "SELECT COALESCE(MAX(seq), 0) AS seq FROM segments WHERE call_sid = ?",
        ).get(callSid) as { seq: number };
        seq = row.seq;
      }
      seq++;
      const result = this.#db.prepare(
        `INSERT INTO segments (call_sid, track, seq, text, start_ms, end_ms, words, confidence, received_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
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
      );
      this.#seq.set(callSid, seq);
      return {
        id: Number(result.lastInsertRowid),
        callSid,
        track: t.track,
        seq,
        text: t.text,
        startMs: Math.round(t.startMs),
        endMs: Math.round(t.endMs),
        words: t.words,
        confidence,
        receivedAt,
      };
    });
  }

  /** Marks a call ended. */
  callEnded(callSid: string, at: number, reason: string, status = "completed"): void {
    this.#db.prepare(
      `UPDATE calls SET ended_at = ?, status = ?, end_reason = ?, duration_ms = MAX(0, ? - started_at)
       WHERE call_sid = ?`,
    ).run(at, status, reason, at, callSid);
    this.#seq.delete(callSid);
  }

  /**
   * Calls still `in-progress` from an earlier run of the server (it was
   * killed): marks them `interrupted`. Only a server that just started may
   * call this. Returns how many there were.
   */
  markInterrupted(): number {
    const result = this.#db.prepare(
      `UPDATE calls SET status = 'interrupted',
         ended_at = COALESCE((SELECT MAX(received_at) FROM segments s WHERE s.call_sid = calls.call_sid), started_at),
         duration_ms = COALESCE((SELECT MAX(received_at) FROM segments s WHERE s.call_sid = calls.call_sid), started_at) - started_at
       WHERE status = 'in-progress'`,
    ).run();
    return Number(result.changes);
  }

  /** Subscribes the store to `registry`'s events; returns the unsubscribe function. */
  attach(registry: CallRegistry, onSegment?: (segment: Segment) => void): () => void {
    return registry.listen(this.listener(registry.engine.name, onSegment));
  }

  /** A listener writing call events (finals only; partials are not kept). */
  listener(engine?: string, onSegment?: (segment: Segment) => void): CallListener {
    return (event: CallEvent) => {
      switch (event.type) {
        case "call-started":
          this.callStarted(event.call, event.at, engine);
          return;
        case "transcript":
          if (event.transcript.type === "final") {
            const segment = this.addSegment(event.call.callSid, event.transcript);
            onSegment?.(segment);
          }
          return;
        case "call-ended":
          this.callEnded(event.call.callSid, event.at, event.reason);
          return;
      }
    };
  }

  /** One call, or null. */
  getCall(callSid: string): StoredCall | null {
    const row = this.#db.prepare(
      `${CALL_SELECT} WHERE c.call_sid = ?`,
    ).get(callSid) as Row | undefined;
    return row ? toCall(row) : null;
  }

  /** Calls newest first, filtered. */
  listCalls(query: CallQuery = {}): CallPage {
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
      const digits = query.number.replace(/[\s\-().+]/g, "");
      where.push(
        `(REPLACE(REPLACE(REPLACE(COALESCE(c.from_number, ''), '+', ''), ' ', ''), '-', '') LIKE ? ESCAPE '\\'
          OR REPLACE(REPLACE(REPLACE(COALESCE(c.to_number, ''), '+', ''), ' ', ''), '-', '') LIKE ? ESCAPE '\\')`,
      );
      const like = `%${digits.replace(/[\\%_]/g, (m) => "\\" + m)}%`;
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
    const total = (this.#db.prepare(`SELECT COUNT(*) AS n FROM calls c ${clause}`).get(
      ...params,
    ) as { n: number }).n;
    const rows = this.#db.prepare(
      `${CALL_SELECT} ${clause} ORDER BY c.started_at DESC, c.rowid DESC LIMIT ? OFFSET ?`,
    ).all(...params, query.limit ?? 50, query.offset ?? 0) as Row[];
    return { calls: rows.map(toCall), total };
  }

  /** A call's segments in order of arrival. */
  segments(callSid: string): Segment[] {
    const rows = this.#db.prepare(
      "SELECT * FROM segments WHERE call_sid = ? ORDER BY seq",
    ).all(callSid) as Row[];
    return rows.map(toSegment);
  }

  /** Deletes a call and its segments; false when there was no such call. */
  deleteCall(callSid: string): boolean {
    const changes = this.#transaction(() =>
      Number(this.#db.prepare("DELETE FROM calls WHERE call_sid = ?").run(callSid).changes)
    );
    this.#seq.delete(callSid);
    return changes > 0;
  }

  /** Closes the database (checkpointing the WAL). */
  close(): void {
    if (this.#db.isOpen) this.#db.close();
  }
}

const CALL_SELECT =
  `SELECT c.*, (SELECT COUNT(*) FROM segments s WHERE s.call_sid = c.call_sid) AS segment_count
  FROM calls c`;

function toCall(row: Row): StoredCall {
  return {
    callSid: row.call_sid as string,
    direction: row.direction as string,
    from: row.from_number as string | null,
    to: row.to_number as string | null,
    engine: row.engine as string | null,
    startedAt: Number(row.started_at),
    answeredAt: row.answered_at === null ? null : Number(row.answered_at),
    endedAt: row.ended_at === null ? null : Number(row.ended_at),
    status: row.status as string,
    durationMs: row.duration_ms === null ? null : Number(row.duration_ms),
    endReason: row.end_reason as string | null,
    segmentCount: Number(row.segment_count ?? 0),
  };
}

function toSegment(row: Row): Segment {
  return {
    id: Number(row.id),
    callSid: row.call_sid as string,
    track: row.track as Track,
    seq: Number(row.seq),
    text: row.text as string,
    startMs: Number(row.start_ms),
    endMs: Number(row.end_ms),
    words: JSON.parse(row.words as string),
    confidence: row.confidence === null ? null : Number(row.confidence),
    receivedAt: Number(row.received_at),
  };
}

/**
 * Turns what a person types into an FTS5 query that cannot be a syntax
 * error: every word is quoted (all must match); a trailing `*` keeps prefix search.
 */
export function ftsQuery(input: string): string {
  const terms = input.split(/\s+/).filter(Boolean).map((term) => {
    const prefix = term.endsWith("*");
    const word = term.replace(/\*+$/, "").replaceAll('"', '""');
    return word ? `"${word}"${prefix ? "*" : ""}` : "";
  }).filter(Boolean);
  return terms.join(" ") || '""';
}
