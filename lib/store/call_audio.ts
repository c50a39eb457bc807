/**
 * A call's audio summary in the store (table `call_audio`, migrations "audio
 * quality and recording length per call" and "what the laptop leg sent into
 * each call"): each track's quality as JSON, the recording's length and the
 * laptop leg's input. Written when the call ends; one implementation for
 * both stores, through {@link TranscriptStore.transaction}.
 *
 * @module
 */
import type { CallAudioSummary } from "../recording/call_audio_summary.ts";
import type { TranscriptStore } from "./db.ts";

/** Stores a call's audio summary, replacing any. */
export async function saveCallAudio(
  store: Pick<TranscriptStore, "transaction">,
  callSid: string,
  audio: CallAudioSummary,
): Promise<void> {
  await store.transaction((tx) =>
    tx.query(
      `INSERT INTO call_audio (call_sid, quality, recorded_ms, laptop_input) VALUES (?, ?, ?, ?)
       ON CONFLICT (call_sid) DO UPDATE SET quality = excluded.quality,
         recorded_ms = excluded.recorded_ms, laptop_input = excluded.laptop_input`,
      [
        callSid,
        JSON.stringify(audio.quality),
        audio.recordedMs === null ? null : Math.round(audio.recordedMs),
        audio.laptopInput ?? null,
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
    tx.query<
      { quality: unknown; recorded_ms: number | string | null; laptop_input: string | null }
    >(
      "SELECT quality, recorded_ms, laptop_input FROM call_audio WHERE call_sid = ?",
      [callSid],
    )
  );
  if (!rows.length) return null;
  const { quality, recorded_ms: recordedMs, laptop_input: laptopInput } = rows[0];
  return {
    // TEXT on SQLite, JSONB (already parsed) on PostgreSQL.
    quality: typeof quality === "string" ? JSON.parse(quality) : quality,
    recordedMs: recordedMs === null ? null : Number(recordedMs),
    laptopInput,
  } as CallAudioSummary;
}
