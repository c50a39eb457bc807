/**
 * The transcript store: one interface, two adapters. SQLite
 * (`./sqlite.ts`, one file under DATA_DIR, nothing to set up) is the
 * default; PostgreSQL (`./postgres.ts`, `DATABASE_URL=postgres://…`) lets
 * many instances share one database. `./open.ts` picks one. Both have the
 * same schema, through the versioned migrations of `./migrations.ts`.
 *
 * Every method is async (PostgreSQL is). Each final is committed in its own
 * transaction before the promise of {@link TranscriptStore.addSegment}
 * resolves; the call-event pipeline (`../call/pipeline.ts`) awaits that
 * commit before anyone hears of the final, so a final that was printed or
 * sent anywhere is already committed, even if the process is killed.
 *
 * Work that must commit or fail together with a final (a webhook outbox
 * row, say) goes into that final's transaction: register it once with
 * {@link TranscriptStore.addFinalHook}, or pass `within` to one
 * {@link TranscriptStore.addSegment}. It gets a {@link StoreTransaction}.
 *
 * @module
 */
import type { Track, Transcript, Word } from "../transcribe/engine.ts";

/** The database file inside a data folder. */
export const DB_FILE = "callscribe.db";

/** The SQLite database path for a data folder (`DATA_DIR`). */
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
  /** The engine that produced it (hybrid calls mix `assemblyai` and `local`); null if not recorded. */
  engine: string | null;
  /** Who spoke it within its track (AssemblyAI's speaker labels: `A`, `B`, …); null if not labelled. */
  speaker: string | null;
  /** The language detected (e.g. `es`); null if not detected. */
  language: string | null;
}

/** A final as the engine gives it, before it is stored (without `engine`, the call's engine). */
export type NewSegment = Omit<Transcript, "type">;

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

/** A value bound to a `?` placeholder. */
export type SqlValue = string | number | bigint | boolean | null | Uint8Array;

/** An open transaction of either store. */
export interface StoreTransaction {
  /** Which SQL dialect `query` speaks. */
  readonly dialect: "sqlite" | "postgres";
  /**
   * Runs one statement with `?` placeholders (on both stores; never put a
   * literal `?` in the SQL) and returns its rows.
   */
  query<T = Record<string, unknown>>(sql: string, params?: readonly SqlValue[]): Promise<T[]>;
}

/** Work done inside the transaction that appends a final; throwing rolls the final back. */
export type FinalHook = (tx: StoreTransaction, segment: Segment) => void | Promise<void>;

/** Work done inside the transaction of one write; throwing rolls the write back. */
export type TransactionWork = (tx: StoreTransaction) => void | Promise<void>;

/**
 * Work done inside the transaction that marks calls interrupted, once for
 * each call: the call as marked, with its segments (the webhook outbox
 * queues its `call-ended` there).
 */
export type InterruptedHook = (
  tx: StoreTransaction,
  ended: { call: StoredCall; segments: Segment[] },
) => void | Promise<void>;

/** Options of {@link TranscriptStore.addSegment}. */
export interface AppendOptions {
  /** When the final arrived (epoch ms); now by default. */
  receivedAt?: number;
  /** More work for this final's transaction, after the hooks of {@link TranscriptStore.addFinalHook}. */
  within?: FinalHook;
}

/** The call fields `callStarted` records. */
export interface NewCall {
  callSid: string;
  direction: string;
  from?: string;
  to?: string;
}

/** Calls and their segments, in SQLite or PostgreSQL. */
export interface TranscriptStore {
  /** Which adapter this is. */
  readonly kind: "sqlite" | "postgres";
  /** Where the data is, for messages: a path, or the URL without its password. */
  readonly location: string;

  /** Records a call that started (or restarted: a known SID keeps its segments), with `within` in its transaction. */
  callStarted(
    call: NewCall,
    at: number,
    engine?: string,
    options?: { within?: TransactionWork },
  ): Promise<void>;
  /** Commits one final (and the final hooks' work) in one transaction; returns it as stored. */
  addSegment(callSid: string, final: NewSegment, options?: AppendOptions): Promise<Segment>;
  /**
   * Marks a call ended (`completed`, or another status such as `interrupted`), with `within` in
   * its transaction. Its duration is the wall-clock time, or `audioMs` (the call's audio, e.g. a
   * simulated call run faster than real time) when longer.
   */
  callEnded(
    callSid: string,
    at: number,
    reason: string,
    status?: string,
    options?: { within?: TransactionWork; audioMs?: number },
  ): Promise<void>;
  /**
   * Calls left `in-progress` by a server that stopped without ending them
   * become `interrupted`, their words kept, with `within` run for each in
   * the same transaction. Returns how many there were. Only a server that
   * just started (and, on SQLite, is alone) may call it.
   */
  markInterrupted(options?: { within?: InterruptedHook }): Promise<number>;

  /** Runs `hook` inside the transaction of every final appended from now on; returns the remover. */
  addFinalHook(hook: FinalHook): () => void;
  /** Runs `work` in one transaction (rolled back if it throws). */
  transaction<T>(work: (tx: StoreTransaction) => Promise<T>): Promise<T>;

  /** One call, or null. */
  getCall(callSid: string): Promise<StoredCall | null>;
  /** Calls newest first, filtered. */
  listCalls(query?: CallQuery): Promise<CallPage>;
  /** A call's segments in order of arrival. */
  segments(callSid: string): Promise<Segment[]>;
  /** Deletes a call and its segments; false when there was no such call. */
  deleteCall(callSid: string): Promise<boolean>;
  /** Closes the database. */
  close(): Promise<void>;
}

/** The segment a store returns for `t` once written with `row`'s id, turn number and time. */
export function storedSegment(
  callSid: string,
  t: NewSegment,
  row: { id: number; seq: number; receivedAt: number; confidence: number | null },
): Segment {
  return {
    id: row.id,
    callSid,
    track: t.track,
    seq: row.seq,
    text: t.text,
    startMs: Math.round(t.startMs),
    endMs: Math.round(t.endMs),
    words: t.words,
    confidence: row.confidence,
    receivedAt: row.receivedAt,
    engine: t.engine ?? null,
    speaker: t.speaker ?? null,
    language: t.language ?? null,
  };
}

/** Mean word confidence, or null when the engine gave none. */
export function meanConfidence(words: Word[]): number | null {
  const confidences = words.map((w) => w.confidence).filter((c): c is number =>
    typeof c === "number"
  );
  return confidences.length ? confidences.reduce((a, b) => a + b, 0) / confidences.length : null;
}

/** One word of a search as a person typed it: all must match; a trailing `*` makes a prefix. */
export interface SearchTerm {
  word: string;
  prefix: boolean;
}

/** Splits a search into terms (empty words, such as a lone `*`, are dropped). */
export function searchTerms(input: string): SearchTerm[] {
  return input.split(/\s+/).filter(Boolean).map((term) => ({
    word: term.replace(/\*+$/, ""),
    prefix: term.endsWith("*"),
  })).filter((term) => term.word);
}

/** Digits of a phone number search, escaped for `LIKE … ESCAPE '\'`, as a contains pattern. */
export function numberPattern(number: string): string {
  const digits = number.replace(/[\s\-().+]/g, "");
  return `%${digits.replace(/[\\%_]/g, (m) => "\\" + m)}%`;
}

const orNull = (value: unknown) => (value === null || value === undefined ? null : Number(value));

/** A `calls` row (with `segment_count`) of either store as a {@link StoredCall}. */
export function callFromRow(row: Record<string, unknown>): StoredCall {
  return {
    callSid: row.call_sid as string,
    direction: row.direction as string,
    from: row.from_number as string | null,
    to: row.to_number as string | null,
    engine: row.engine as string | null,
    startedAt: Number(row.started_at),
    answeredAt: orNull(row.answered_at),
    endedAt: orNull(row.ended_at),
    status: row.status as string,
    durationMs: orNull(row.duration_ms),
    endReason: row.end_reason as string | null,
    segmentCount: Number(row.segment_count ?? 0),
  };
}

/** A `segments` row of either store (words as JSON text, or parsed) as a {@link Segment}. */
export function segmentFromRow(row: Record<string, unknown>): Segment {
  return {
    id: Number(row.id),
    callSid: row.call_sid as string,
    track: row.track as Track,
    seq: Number(row.seq),
    text: row.text as string,
    startMs: Number(row.start_ms),
    endMs: Number(row.end_ms),
    words: typeof row.words === "string" ? JSON.parse(row.words) : row.words as Word[],
    confidence: orNull(row.confidence),
    receivedAt: Number(row.received_at),
    engine: (row.engine as string | null | undefined) ?? null,
    speaker: (row.speaker as string | null | undefined) ?? null,
    language: (row.language as string | null | undefined) ?? null,
  };
}
