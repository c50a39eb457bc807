/**
 * The voice detector: hears where speech starts and ends in one stream of
 * audio, so that either engine can end an utterance early (the local engine
 * flushes its stream, the AssemblyAI engine sends `ForceEndpoint`). Two
 * kinds, one interface:
 *
 * - `energy` (`energy_voice_detector.ts`): loudness over the line's noise
 *   floor. Costs next to nothing; on a noisy line it hears no end, and the
 *   engine's own endpoint rules end the utterance instead.
 * - `silero` (`silero_voice_detector.ts`): Silero VAD. Tells speech from
 *   noise, and costs about as much CPU as the bundled 3.3M speech model
 *   (measured: the local engine's CPU went up 60–70% with it).
 *
 * `create_voice_detector.ts` makes one of a kind. This module loads neither,
 * so settings are parsed where sherpa-onnx, which runs Silero, must not load
 * (the `transcripts` command has no FFI permission).
 *
 * @module
 */

/** Which detector ends utterances: `energy` (free) or `silero` (hears speech in noise). */
export type VoiceDetectorKind = "energy" | "silero";

/** The kinds, for parsing settings. */
export const VOICE_DETECTOR_KINDS: readonly VoiceDetectorKind[] = ["energy", "silero"];

/** A change between speech and silence; times in ms from the start of the stream. */
export type SpeechEvent =
  /** Speech began; seen once `atMs` of audio had been pushed. */
  | { type: "speech-start"; atMs: number }
  /** Speech from `startMs` to `endMs` is over; seen once `atMs` of audio had been pushed. */
  | { type: "speech-end"; atMs: number; startMs: number; endMs: number };

/** A voice detector over one stream of audio (one per track: it keeps that stream's state). */
export interface VoiceDetector {
  /** The rate of the samples it takes, per second. */
  readonly sampleRate: number;
  /** True between a speech start and its end. */
  readonly speaking: boolean;
  /** Takes the next samples (floats in −1…1, at {@link sampleRate}); returns what changed. */
  push(samples: Float32Array): SpeechEvent[];
  /** Starts over on a new stream (a loaded model is kept, so a detector can be reused). */
  reset(): void;
}

/** True when a detector's events end a stretch of speech. */
export function endsSpeech(events: readonly SpeechEvent[]): boolean {
  return events.some((e) => e.type === "speech-end");
}
