/**
 * The local engine's settings: endpoint rules, threads and workers, the
 * voice detector, key terms. Apart from the engine itself so settings are
 * parsed where sherpa-onnx must not load.
 *
 * @module
 */
import type { VoiceDetectorKind } from "./voice_detector_kind.ts";

/** Endpointing and decoding options of the local engine. */
export interface LocalEngineOptions {
  /** Seconds of trailing silence that end an utterance with no words (rule 1). */
  rule1MinTrailingSilence: number;
  /** Seconds of trailing silence that end an utterance after words (rule 2). */
  rule2MinTrailingSilence: number;
  /** Longest utterance in seconds before it is cut (rule 3). */
  rule3MinUtteranceLength: number;
  /** Inference threads of each recognizer. */
  numThreads: number;
  /**
   * Decoder workers, each a thread with its own copy of the model; a call's
   * tracks are spread over them. 0 decodes on the server's own thread.
   */
  workers: number;
  /**
   * How far a worker may fall behind real time, in seconds of audio per open
   * track, before new audio for its tracks is dropped (bounds memory when the
   * machine cannot keep up).
   */
  maxLagSeconds: number;
  /**
   * How late the model emits a token after the word starts, in ms; subtracted
   * from token times so `[start - end]` matches the audio.
   */
  tokenDelayMs: number;
  /**
   * The voice detector that hears the end of speech: `energy` (free; on a
   * noisy line it hears no end and the endpoint rules decide) or `silero`
   * (tells speech from noise, costs about as much CPU as this small model).
   */
  vad: VoiceDetectorKind;
  /**
   * Silence in ms after which the voice detector ends an utterance: the
   * stream is flushed (tail padding, so the model's look-ahead emits the last
   * words) and the final emitted at once. 0 leaves finals to the endpoint
   * rules, which stay the fallback either way. Lower: sooner finals, and more
   * sentences cut in two at a pause.
   */
  vadSilenceMs: number;
  /** Silero's speech probability threshold (0–1). */
  vadThreshold: number;
  /**
   * Words and phrases to bias decoding towards (`KEYTERMS`): with any, the
   * decoder runs `modified_beam_search` with them as hotwords; without,
   * `greedy_search` (cheaper).
   */
  keyterms: string[];
  /** How much a key term's tokens are boosted, per token (`KEYTERMS_SCORE`). */
  keytermsScore: number;
}

/** Defaults measured on the shared test speech (README, "Live latency and the engine's cost"). */
export const LOCAL_DEFAULTS: LocalEngineOptions = {
  rule1MinTrailingSilence: 2.4,
  rule2MinTrailingSilence: 0.8,
  rule3MinUtteranceLength: 20,
  numThreads: 1,
  workers: Math.max(1, navigator.hardwareConcurrency ?? 1),
  maxLagSeconds: 60,
  tokenDelayMs: 200,
  vad: "energy",
  vadSilenceMs: 320,
  vadThreshold: 0.5,
  keyterms: [],
  keytermsScore: 1.5,
};
