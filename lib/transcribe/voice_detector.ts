/**
 * The voice detector that ends utterances early, for either engine: the
 * local engine flushes its stream on a speech end, the AssemblyAI engine
 * sends `ForceEndpoint`. Two kinds, one interface:
 *
 * - `energy` ({@link EnergySpeechDetector}): loudness over the line's noise
 *   floor. Costs next to nothing; on a noisy line it hears no end, and the
 *   engine's own endpoint rules end the utterance instead.
 * - `silero` ({@link SpeechDetector}): Silero VAD. Tells speech from noise,
 *   and costs about as much CPU as the bundled 3.3M speech model (measured:
 *   the local engine's CPU went up 60–70% with it).
 *
 * @module
 */
import { ENERGY_DETECTOR_DEFAULTS, EnergySpeechDetector } from "./energy_speech_detector.ts";
import { SPEECH_DETECTOR_DEFAULTS, SpeechDetector, type SpeechEvent } from "./speech_detector.ts";
import type { VoiceDetectorKind } from "./voice_detector_kind.ts";

/** A detector over one stream of audio (one per track). */
export interface VoiceDetector {
  /** Takes the next samples (floats in −1…1, at the rate it was made for); returns what changed. */
  push(samples: Float32Array): SpeechEvent[];
  /** True between a speech start and its end. */
  readonly speaking: boolean;
}

/** What {@link createVoiceDetector} needs. */
export interface VoiceDetectorOptions {
  kind: VoiceDetectorKind;
  sampleRate: 8000 | 16000;
  /** Silence that ends speech, in ms. */
  minSilenceMs: number;
  /** Silero's speech probability threshold (0–1); the energy detector has none. */
  threshold: number;
}

/** A new detector of the kind asked for (a Silero one loads its model: ~30 ms). */
export function createVoiceDetector(options: VoiceDetectorOptions): VoiceDetector {
  const { kind, sampleRate, minSilenceMs, threshold } = options;
  if (kind === "energy") {
    return new EnergySpeechDetector({ ...ENERGY_DETECTOR_DEFAULTS, sampleRate, minSilenceMs });
  }
  return new SpeechDetector({ ...SPEECH_DETECTOR_DEFAULTS, sampleRate, minSilenceMs, threshold });
}
