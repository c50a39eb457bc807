/**
 * The `energy` voice detector: where speech ends in a live audio stream, from its loudness alone: a 20 ms
 * frame is speech when it is well above the line's noise floor (tracked as
 * the stream goes), and speech ends after `minSilenceMs` of frames that are
 * not. It costs a few operations a sample, where Silero
 * (`silero_voice_detector.ts`) costs about as much CPU as decoding with a small
 * speech model, and it sees the end as soon as the silence is long enough
 * (Silero's own smoothing adds ~100 ms). What it cannot do is tell speech
 * from loud noise: on a noisy line, noise keeps it "speaking", and finals
 * then come from the engine's endpoint rules, as with no detector.
 *
 * @module
 */
import type { SpeechEvent, VoiceDetector } from "./voice_detector.ts";

/** How an {@link EnergyVoiceDetector} decides. */
export interface EnergyVoiceDetectorOptions {
  /** Rate of the samples pushed, per second. */
  sampleRate: number;
  /** Silence that ends speech, in ms: lower is a sooner end, and more sentences cut at pauses. */
  minSilenceMs: number;
  /** Speech shorter than this (ms, frames above the threshold) is ignored (clicks). */
  minSpeechMs: number;
  /** How far above the noise floor a frame must be to count as speech, in dB. */
  aboveNoiseDb: number;
  /** A frame below this level (dBFS) is never speech, however quiet the line. */
  minSpeechDbfs: number;
}

/** Defaults measured on the shared test speech (README, "Live latency and the engine's cost"). */
export const ENERGY_DETECTOR_DEFAULTS: Omit<EnergyVoiceDetectorOptions, "sampleRate"> = {
  minSilenceMs: 320,
  minSpeechMs: 100,
  aboveNoiseDb: 6,
  minSpeechDbfs: -50,
};

/** Frames the level is measured over, in ms. */
const FRAME_MS = 20;
/**
 * The noise floor is the quietest frame of this many ms: a talker pauses
 * within a few seconds, so the floor follows the line's noise, not the
 * speaker (2 s windows put it inside long sentences, and cut them).
 */
const FLOOR_WINDOW_MS = 5000;
/** Levels never go below this (digital silence would be −∞). */
const FLOOR_MIN_DBFS = -80;

/** Loudness-based end of speech over one stream of audio (one per track: it keeps that stream's floor). */
export class EnergyVoiceDetector implements VoiceDetector {
  readonly #options: EnergyVoiceDetectorOptions;
  readonly #frame: number;
  /** Samples of the frame being measured so far, and their sum of squares. */
  #filled = 0;
  #sum = 0;
  /** Frame levels of the floor window (dBFS), as a ring. */
  readonly #levels = new Float64Array(FLOOR_WINDOW_MS / FRAME_MS).fill(FLOOR_MIN_DBFS);
  #frames = 0;
  #pushed = 0;
  #speaking = false;
  /** Speech frames since the last end, and where the first of them started (in samples). */
  #speechMs = 0;
  #speechStart = 0;
  /** Where the last speech frame ended, in samples, and silence since. */
  #lastSpeechEnd = 0;
  #silenceMs = 0;

  /** Makes a detector with these settings; a rate that is not positive is a `RangeError`. */
  constructor(options: EnergyVoiceDetectorOptions) {
    if (!(options.sampleRate > 0)) {
      throw new RangeError(
        `EnergyVoiceDetector: sampleRate must be positive, got ${options.sampleRate}`,
      );
    }
    this.#options = options;
    this.#frame = Math.round((options.sampleRate * FRAME_MS) / 1000);
  }

  /** Audio pushed so far, in ms. */
  get positionMs(): number {
    return this.#ms(this.#pushed);
  }

  /** The rate of the samples it takes, per second. */
  get sampleRate(): number {
    return this.#options.sampleRate;
  }

  /** True between a speech start and its end. */
  get speaking(): boolean {
    return this.#speaking;
  }

  /** Takes the next samples (floats in −1…1); returns what changed. */
  push(samples: Float32Array): SpeechEvent[] {
    const events: SpeechEvent[] = [];
    for (const x of samples) {
      this.#sum += x * x;
      this.#pushed++;
      if (++this.#filled === this.#frame) this.#endFrame(events);
    }
    return events;
  }

  /** Starts over on a new stream. */
  reset(): void {
    this.#filled = 0;
    this.#sum = 0;
    this.#levels.fill(FLOOR_MIN_DBFS);
    this.#frames = 0;
    this.#pushed = 0;
    this.#speaking = false;
    this.#speechMs = 0;
    this.#silenceMs = 0;
  }

  #endFrame(events: SpeechEvent[]): void {
    const db = Math.max(FLOOR_MIN_DBFS, 10 * Math.log10(this.#sum / this.#filled));
    this.#filled = 0;
    this.#sum = 0;
    const levels = this.#levels;
    levels[this.#frames++ % levels.length] = db;
    // Until the window has filled, its unfilled slots are not the line's noise.
    const seen = Math.min(this.#frames, levels.length);
    let floor = db;
    for (let i = 0; i < seen; i++) floor = Math.min(floor, levels[i]);
    const { aboveNoiseDb, minSpeechDbfs, minSilenceMs, minSpeechMs } = this.#options;
    const speech = db >= Math.max(floor + aboveNoiseDb, minSpeechDbfs);
    if (speech) {
      if (this.#speechMs === 0) this.#speechStart = this.#pushed - this.#frame;
      this.#speechMs += FRAME_MS;
      this.#silenceMs = 0;
      this.#lastSpeechEnd = this.#pushed;
      if (!this.#speaking && this.#speechMs >= minSpeechMs) {
        this.#speaking = true;
        events.push({ type: "speech-start", atMs: this.positionMs });
      }
      return;
    }
    if (this.#speechMs === 0) return;
    this.#silenceMs += FRAME_MS;
    if (this.#silenceMs < minSilenceMs) return;
    if (this.#speaking) {
      events.push({
        type: "speech-end",
        atMs: this.positionMs,
        startMs: this.#ms(this.#speechStart),
        endMs: this.#ms(this.#lastSpeechEnd),
      });
    }
    this.#speaking = false;
    this.#speechMs = 0;
  }

  #ms(samples: number): number {
    return (samples / this.#options.sampleRate) * 1000;
  }
}
