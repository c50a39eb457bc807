/**
 * What a call's audio was like, as the recorder sums it up when the call
 * ends: each track's quality, the recording's length, and what the laptop
 * leg sent into the call.
 *
 * @module
 */
import type { CallQuality } from "./track_quality.ts";

/**
 * What the laptop leg sent into the call (the outbound track): its microphone,
 * a WAV file (`AUDIO_INPUT=<wav>`), or nothing: `off` when no input was
 * configured or usable, or the laptop was busy with another call.
 */
export type LaptopInput = "microphone" | "file" | "off";

/** What a call's audio was like: each track's quality, and the recording's length (null: none). */
export interface CallAudioSummary {
  quality: CallQuality;
  recordedMs: number | null;
  /** What the laptop leg sent; null when the call had no laptop leg (forwarded) or it is unknown. */
  laptopInput?: LaptopInput | null;
}
