/**
 * Makes the voice detector of a kind (see `voice_detector.ts`): the one place
 * that knows the implementations, so the engines hold a {@link VoiceDetector}
 * and never a concrete one.
 *
 * @module
 */
import { ENERGY_DETECTOR_DEFAULTS, EnergyVoiceDetector } from "./energy_voice_detector.ts";
import { SILERO_DETECTOR_DEFAULTS, SileroVoiceDetector } from "./silero_voice_detector.ts";
import type { VoiceDetector, VoiceDetectorKind } from "./voice_detector.ts";

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
    return new EnergyVoiceDetector({ ...ENERGY_DETECTOR_DEFAULTS, sampleRate, minSilenceMs });
  }
  return new SileroVoiceDetector({
    ...SILERO_DETECTOR_DEFAULTS,
    sampleRate,
    minSilenceMs,
    threshold,
  });
}
