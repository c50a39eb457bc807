/**
 * A call's audio summary in the store (table `call_audio`, migration "audio
 * quality and recording length per call"): each track's quality as JSON and
 * the recording's length. Written when the call ends; one implementation for
 * both stores, through {@link TranscriptStore.transaction}.
 *
 * @module
 */
import type { CallAudioSummary } from "../call/events.ts";
import type { TranscriptStore } from "./db.ts";

/** Stores a call's audio summary, replacing any. */
export async function saveCallAudio(
  store: Pick<TranscriptStore, "transaction">,
  callSid: string,
  audio: CallAudioSummary,
): Promise<void> {
  await store.transaction((tx) =>
    tx.query(
      `INSERT INTO call_audio (call_sid, quality, recorded_ms) VALUES (?, ?, ?)
       ON CONFLICT (call_sid) DO UPDATE SET quality = excluded.quality, recorded_ms = excluded.recorded_ms`,
      [
        callSid,
        JSON.stringify(audio.quality),
        audio.recordedMs === null ? null : Math.round(audio.recordedMs),
      ],
    )
  );
}

/** A call's audio summary, or null (not ended yet, or ended before quality was measured). */
export async function loadCallAudio(
  store: Pick<TranscriptStore, "transaction">,
  callSid: string,
): Promise<CallAudioSummary | null> {
  const rows = await store.transaction((tx) =>
    tx.query<{ quality: unknown; recorded_ms: number | string | null }>(
      "SELECT quality, recorded_ms FROM call_audio WHERE call_sid = ?",
      [callSid],
    )
  );
  if (!rows.length) return null;
  const { quality, recorded_ms: recordedMs } = rows[0];
  return {
    // TEXT on SQLite, JSONB (already parsed) on PostgreSQL.
    quality: typeof quality === "string" ? JSON.parse(quality) : quality,
    recordedMs: recordedMs === null ? null : Number(recordedMs),
  } as CallAudioSummary;
}
