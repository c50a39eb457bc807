/**
 * A voice detector that runs only while the line is loud: Silero costs about
 * as much CPU as the local engine's small model, and a track is silent much
 * of a call. The local engine wraps its Silero detectors in one.
 *
 * @module
 */
import { endsSpeech, type SpeechEvent, type VoiceDetector } from "./voice_detector.ts";

/**
 * The detector runs only from a 20 ms frame louder than this (RMS, about −50
 * dBFS: below any speech, above a quiet line's noise) until it has ended that
 * speech, or seen none for {@link IDLE_MS}.
 */
const GATE_RMS = 0.003;
const IDLE_MS = 1000;

/**
 * Wraps a detector: it hears nothing until a batch is louder than the gate,
 * and starts over (closing the gate) after each speech end or a second with
 * no speech. Push audio a frame (20 ms) at a time: the gate measures each push.
 */
export class GatedVoiceDetector implements VoiceDetector {
  readonly #inner: VoiceDetector;
  /** The inner detector is listening, and for how long it has heard no speech. */
  #open = false;
  #idleMs = 0;

  /** Gates `inner`, which it then owns (resets it, and reads its rate). */
  constructor(inner: VoiceDetector) {
    this.#inner = inner;
  }

  /** The inner detector's rate. */
  get sampleRate(): number {
    return this.#inner.sampleRate;
  }

  /** True between a speech start and its end (never while the gate is closed). */
  get speaking(): boolean {
    return this.#inner.speaking;
  }

  /** Takes the next samples; the inner detector hears them only while the gate is open. */
  push(samples: Float32Array): SpeechEvent[] {
    if (!this.#open) {
      let sum = 0;
      for (const x of samples) sum += x * x;
      if (Math.sqrt(sum / samples.length) < GATE_RMS) return [];
      this.#open = true;
      this.#idleMs = 0;
    }
    const events = this.#inner.push(samples);
    this.#idleMs = this.#inner.speaking
      ? 0
      : this.#idleMs + (samples.length * 1000) / this.#inner.sampleRate;
    if (endsSpeech(events) || this.#idleMs >= IDLE_MS) this.reset();
    return events;
  }

  /** Closes the gate and starts the inner detector over. */
  reset(): void {
    this.#inner.reset();
    this.#open = false;
    this.#idleMs = 0;
  }
}
