/**
 * A call's audio as the exports and the call page show it: its recording
 * (from the recordings folder) and its stored quality (from the store).
 *
 * @module
 */
import type { Recordings } from "../recording/recordings.ts";
import { loadCallAudio } from "../store/call_audio.ts";
import type { TranscriptStore } from "../store/db.ts";
import type { CallAudio } from "./transcript_export.ts";

/** A call's recording (when on disk) and stored quality, as the exports and the call page show them. */
export async function callAudio(
  store: Pick<TranscriptStore, "transaction">,
  recordings: Recordings | undefined,
  callSid: string,
): Promise<CallAudio> {
  const recording = await recordings?.info(callSid);
  const stored = await loadCallAudio(store, callSid);
  return {
    recording: recording
      ? {
        durationMs: recording.durationMs,
        url: `/api/calls/${encodeURIComponent(callSid)}/recording.wav`,
      }
      : null,
    quality: stored?.quality ?? null,
    laptopInput: stored?.laptopInput ?? null,
  };
}
