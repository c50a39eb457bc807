/**
 * Retention: calls older than a cutoff are deleted with everything of them
 * (segments and their full-text index entries, audio quality, recording),
 * and so are delivered (or given up) webhook rows, whose bodies hold
 * transcript text. On both stores, through their common SQL.
 *
 * SQLite keeps deleted bytes in free pages and the full-text index keeps
 * stale entries in its segment b-trees until merged, so a purge there turns
 * on `secure_delete` (freed pages are zeroed) and merges the index
 * (`optimize`): once the write-ahead log is checkpointed (automatically, and
 * when the server closes the database) the words are gone from the file,
 * not only from queries. PostgreSQL removes the rows and their index entries
 * from every query at once; their space is reclaimed by autovacuum.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { TranscriptStore } from "./db.ts";

/** What a purge deleted. */
export interface PurgeResult {
  calls: number;
  recordings: number;
  webhooks: number;
}

/** Deletes a call's recording (the recordings folder); false when it had none. */
export interface RecordingRemover {
  remove(callSid: string): Promise<boolean>;
}

/** Calls deleted per transaction: a big backlog never holds the database for long. */
const BATCH = 500;

/**
 * Deletes every call that started before `beforeMs` (epoch ms) and is not in
 * progress, with its recording, and the webhook rows created before it that
 * are delivered or failed (pending ones are still owed).
 */
export async function purgeBefore(
  store: TranscriptStore,
  beforeMs: number,
  recordings?: RecordingRemover,
): Promise<PurgeResult> {
  const result: PurgeResult = { calls: 0, recordings: 0, webhooks: 0 };
  if (store.kind === "sqlite") {
    await store.transaction(async (tx) => void await tx.query("PRAGMA secure_delete = ON"));
  }
  for (;;) {
    const sids = await store.transaction(async (tx) => {
      const rows = await tx.query<{ call_sid: string }>(
        `SELECT call_sid FROM calls WHERE started_at < ? AND status <> 'in-progress'
         ORDER BY started_at LIMIT ${BATCH}`,
        [beforeMs],
      );
      const sids = rows.map((r) => r.call_sid);
      if (sids.length === 0) return sids;
      const list = sids.map(() => "?").join(", ");
      // Segments, their search index entries and the audio summary go with the call (cascade).
      await tx.query(`DELETE FROM calls WHERE call_sid IN (${list})`, sids);
      await tx.query(`DELETE FROM live_events WHERE call_sid IN (${list})`, sids);
      return sids;
    });
    for (const sid of sids) {
      if (await recordings?.remove(sid)) result.recordings++;
    }
    result.calls += sids.length;
    if (sids.length < BATCH) break;
  }
  result.webhooks = await store.transaction(async (tx) => {
    const rows = await tx.query<{ n: number }>(
      `SELECT COUNT(*) AS n FROM webhook_outbox
       WHERE status IN ('delivered', 'failed') AND created_at < ?`,
      [beforeMs],
    );
    await tx.query(
      `DELETE FROM webhook_outbox WHERE status IN ('delivered', 'failed') AND created_at < ?`,
      [beforeMs],
    );
    return Number(rows[0]?.n ?? 0);
  });
  if (store.kind === "sqlite" && (result.calls || result.webhooks)) {
    await store.transaction(async (tx) => {
      await tx.query("INSERT INTO segments_fts (segments_fts) VALUES ('optimize')");
    });
  }
  return result;
}

/** Options of {@link startRetention}. */
export interface RetentionOptions {
  store: TranscriptStore;
  recordings?: RecordingRemover;
  /** `RETENTION_DAYS`: calls older than this many days are deleted. */
  days: number;
  log: Logger;
  /** How often to purge, in ms (default hourly); the first purge runs at once. */
  everyMs?: number;
}

/** Purges at start and then hourly; returns the stopper (awaits a purge under way). */
export function startRetention(options: RetentionOptions): () => Promise<void> {
  const { store, recordings, days, log } = options;
  let running: Promise<void> = Promise.resolve();
  const purge = () => {
    running = running.then(async () => {
      const before = Date.now() - days * 86_400_000;
      try {
        const done = await purgeBefore(store, before, recordings);
        if (done.calls || done.webhooks) {
          log.info(
            `retention (${days} days): deleted ${done.calls} call(s), ${done.recordings} ` +
              `recording(s), ${done.webhooks} webhook row(s) from before ${
                new Date(before).toISOString()
              }`,
          );
        }
      } catch (error) {
        log.error(`retention: purge failed: ${(error as Error).message}; retrying in an hour`);
      }
    });
  };
  purge();
  const timer = setInterval(purge, options.everyMs ?? 3_600_000);
  return async () => {
    clearInterval(timer);
    await running;
  };
}
