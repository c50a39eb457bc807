/**
 * The kinds of voice detector (see `voice_detector.ts`), apart from the
 * detectors themselves: settings are parsed where sherpa-onnx, which runs
 * Silero, must not load (the `transcripts` command has no FFI permission).
 *
 * @module
 */

/** Which detector ends utterances: `energy` (free) or `silero` (hears speech in noise). */
export type VoiceDetectorKind = "energy" | "silero";

/** The kinds, for parsing settings. */
export const VOICE_DETECTOR_KINDS: readonly VoiceDetectorKind[] = ["energy", "silero"];
