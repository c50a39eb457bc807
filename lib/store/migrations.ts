/**
 * The schema, as one list of versioned migrations shared by both stores.
 *
 * A migration's version is its position in {@link MIGRATIONS} (1, 2, …).
 * To change the schema, append a migration at the end (never edit or
 * reorder one that shipped) with the SQL for each store; both stores apply,
 * in order and each in its own transaction, every migration their database
 * has not had yet. A database whose version is newer than this list is
 * refused. SQLite keeps its version in `PRAGMA user_version`; PostgreSQL in
 * the one-row table `callscribe_schema`, migrated under an advisory lock so
 * instances starting together do not race.
 *
 * @module
 */

/** One schema change, written for each store. */
export interface Migration {
  /** What it does, for error messages (`add the webhook outbox`). */
  name: string;
  /** SQL for SQLite (`node:sqlite`), several statements allowed. */
  sqlite: string;
  /** SQL for PostgreSQL, several statements allowed. */
  postgres: string;
}

/** Every migration, oldest first. Append only. */
export const MIGRATIONS: readonly Migration[] = [
  {
    name: "calls and segments, with full-text search",
    sqlite: `CREATE TABLE calls (
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
    // The 'simple' configuration lowercases without stemming, like FTS5's default tokenizer.
    postgres: `CREATE TABLE calls (
       id BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
       call_sid TEXT PRIMARY KEY,
       direction TEXT NOT NULL,
       from_number TEXT,
       to_number TEXT,
       engine TEXT,
       started_at BIGINT NOT NULL,
       answered_at BIGINT,
       ended_at BIGINT,
       status TEXT NOT NULL,
       duration_ms BIGINT,
       end_reason TEXT
     );
     CREATE INDEX calls_started ON calls (started_at DESC);
     CREATE TABLE segments (
       id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
       call_sid TEXT NOT NULL REFERENCES calls (call_sid) ON DELETE CASCADE,
       track TEXT NOT NULL CHECK (track IN ('inbound', 'outbound')),
       seq INTEGER NOT NULL,
       text TEXT NOT NULL,
       start_ms INTEGER NOT NULL,
       end_ms INTEGER NOT NULL,
       words JSONB NOT NULL,
       confidence DOUBLE PRECISION,
       received_at BIGINT NOT NULL,
       text_search TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED
     );
     CREATE INDEX segments_call ON segments (call_sid, seq);
     CREATE INDEX segments_text_search ON segments USING GIN (text_search);`,
  },
  {
    // Only PostgreSQL uses them (many instances, one database); SQLite has the same schema.
    name: "instances with heartbeats, the instance of each call, live events",
    sqlite: `CREATE TABLE instances (
       id TEXT PRIMARY KEY,
       url TEXT NOT NULL,
       started_at INTEGER NOT NULL,
       heartbeat_at INTEGER NOT NULL,
       state TEXT NOT NULL
     );
     ALTER TABLE calls ADD COLUMN instance_id TEXT;
     CREATE TABLE live_events (
       id INTEGER PRIMARY KEY,
       call_sid TEXT NOT NULL,
       type TEXT NOT NULL,
       data TEXT NOT NULL,
       created_at INTEGER NOT NULL
     );`,
    // Heartbeats are on the database's clock, so instances' clocks need not agree.
    postgres: `CREATE TABLE instances (
       id TEXT PRIMARY KEY,
       url TEXT NOT NULL,
       started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
       heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
       state TEXT NOT NULL
     );
     ALTER TABLE calls ADD COLUMN instance_id TEXT;
     CREATE INDEX calls_in_progress ON calls (instance_id) WHERE status = 'in-progress';
     CREATE TABLE live_events (
       id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
       call_sid TEXT NOT NULL,
       type TEXT NOT NULL,
       data JSONB NOT NULL,
       created_at TIMESTAMPTZ NOT NULL DEFAULT now()
     );`,
  },
  {
    // Hybrid and per-track engines mix engines within a call: each final records its own.
    name: "the engine of each final",
    sqlite: `ALTER TABLE segments ADD COLUMN engine TEXT;`,
    postgres: `ALTER TABLE segments ADD COLUMN engine TEXT;`,
  },
  {
    name: "the webhook outbox",
    sqlite: outboxTable("INTEGER PRIMARY KEY", "INTEGER"),
    postgres: outboxTable("BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "BIGINT"),
  },
  {
    name: "audio quality and recording length per call",
    sqlite: `CREATE TABLE call_audio (
       call_sid TEXT PRIMARY KEY REFERENCES calls (call_sid) ON DELETE CASCADE,
       quality TEXT NOT NULL,
       recorded_ms INTEGER
     );`,
    postgres: `CREATE TABLE call_audio (
       call_sid TEXT PRIMARY KEY REFERENCES calls (call_sid) ON DELETE CASCADE,
       quality JSONB NOT NULL,
       recorded_ms BIGINT
     );`,
  },
  {
    name: "who spoke each segment within its track, and its language (AssemblyAI)",
    sqlite: `ALTER TABLE segments ADD COLUMN speaker TEXT;
     ALTER TABLE segments ADD COLUMN language TEXT;`,
    postgres: `ALTER TABLE segments ADD COLUMN speaker TEXT;
     ALTER TABLE segments ADD COLUMN language TEXT;`,
  },
  {
    // A silent outbound track means a muted microphone only when the laptop leg had one.
    name: "what the laptop leg sent into each call",
    sqlite: `ALTER TABLE call_audio ADD COLUMN laptop_input TEXT;`,
    postgres: `ALTER TABLE call_audio ADD COLUMN laptop_input TEXT;`,
  },
];

/**
 * The webhook outbox (`lib/delivery/sql_outbox.ts`), the same on both stores
 * but for the id and the type of epoch-ms times. No foreign key to calls:
 * deleting a call does not take back what was already reported.
 */
function outboxTable(id: string, time: string): string {
  return `CREATE TABLE webhook_outbox (
     id ${id},
     message_id TEXT NOT NULL,
     endpoint TEXT NOT NULL,
     call_sid TEXT NOT NULL,
     event_type TEXT NOT NULL,
     body TEXT NOT NULL,
     status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
     attempts INTEGER NOT NULL DEFAULT 0,
     created_at ${time} NOT NULL,
     window_start ${time} NOT NULL,
     next_attempt_at ${time} NOT NULL,
     lease_owner TEXT,
     lease_until ${time},
     last_error TEXT,
     delivered_at ${time},
     UNIQUE (message_id, endpoint)
   );
   CREATE INDEX webhook_outbox_queue ON webhook_outbox (endpoint, status, call_sid, id);
   CREATE INDEX webhook_outbox_status ON webhook_outbox (status, id);`;
}

/** The schema version this callscribe writes (number of migrations). */
export const SCHEMA_VERSION = MIGRATIONS.length;

/** The error for a database migrated by a newer callscribe. */
export function newerSchemaError(where: string, version: number): Error {
  return new Error(
    `${where} has schema version ${version}, newer than this callscribe (${SCHEMA_VERSION}); upgrade callscribe`,
  );
}
