/**
 * A simulated room for the laptop leg: what the microphone hears is the
 * laptop user's speech plus the speaker's output, delayed, reverberated,
 * attenuated, resampled by the drift between the two devices' clocks, with
 * background noise. Deterministic for a seed. Used by `deno task call
 * --simulate --room`, the tests and the echo bench.
 *
 * @module
 */
import { fractionalSample } from "../audio/fractional.ts";
import { seededRandom } from "../seeded_random.ts";

/** The room's acoustics and devices. */
export interface RoomSettings {
  /** Speaker write to microphone capture, in ms (device buffers plus the air). */
  delayMs: number;
  /** Reverberation time: the impulse response decays 60 dB in this many seconds. */
  rt60S: number;
  /** Speaker-to-microphone gain of the echo path, dB. */
  gainDb: number;
  /** Background noise at the microphone, dBFS RMS. */
  noiseDb: number;
  /** The speaker's clock runs this many ppm faster than the microphone's. */
  driftPpm: number;
  /** Seeds the impulse response and the noise. */
  seed: number;
}

/** A laptop on a desk: 150 ms device delay, a 0.3 s room, −3 dB, quiet, 50 ppm apart. */
export const DEFAULT_ROOM: RoomSettings = {
  delayMs: 150,
  rt60S: 0.3,
  gainDb: -3,
  noiseDb: -60,
  driftPpm: 50,
  seed: 1,
};

const LIMITS: Record<keyof RoomSettings, [number, number, string]> = {
  delayMs: [50, 1000, "delay"],
  rt60S: [0.05, 2, "rt60"],
  gainDb: [-40, 6, "gain"],
  noiseDb: [-120, -10, "noise"],
  driftPpm: [-1000, 1000, "drift"],
  seed: [0, 2 ** 32 - 1, "seed"],
};

/**
 * Parses `delay=200,rt60=0.4,gain=-6,noise=-60,drift=80,seed=7` (any subset; the rest from
 * {@link DEFAULT_ROOM}); an empty string or `default` is the default room.
 */
export function parseRoomSettings(spec: string): RoomSettings {
  const settings = { ...DEFAULT_ROOM };
  if (spec.trim() === "" || spec.trim() === "default") return settings;
  const keys = Object.keys(LIMITS) as (keyof RoomSettings)[];
  for (const part of spec.split(",")) {
    const [name, text] = part.split("=").map((s) => s.trim());
    const key = keys.find((k) => LIMITS[k][2] === name);
    const names = keys.map((k) => LIMITS[k][2]).join(", ");
    if (!key) {
      throw new RangeError(`Cannot parse room "${spec}": unknown setting "${name}" (${names})`);
    }
    const value = Number(text);
    const [min, max] = LIMITS[key];
    if (
      text === undefined || text === "" || !Number.isFinite(value) || value < min || value > max
    ) {
      throw new RangeError(
        `Cannot parse room "${spec}": ${name} must be a number from ${min} to ${max}, got "${
          text ?? ""
        }"`,
      );
    }
    settings[key] = value;
  }
  return settings;
}

/** Roughly Gaussian noise (sum of four uniforms), unit variance. */
function gaussian(next: () => number): number {
  return (next() + next() + next() + next() - 2) * Math.sqrt(3);
}

/**
 * The room between the laptop's speaker and microphone, at 8 kHz. Feed it what the speaker
 * plays ({@link play}) and the user's speech ({@link capture}); it returns the microphone signal.
 * Speaker audio not yet played when the microphone needs it counts as silence.
 */
export class SimulatedRoom {
  /** Its settings. */
  readonly settings: Readonly<RoomSettings>;
  /** The room impulse response, gain included. */
  readonly impulseResponse: Float32Array;
  #noise: () => number;
  #noiseRms: number;
  #step: number;
  #delay: number;
  /** Speaker samples kept (from #base on), grown as played. */
  #speaker = new Float32Array(8000);
  #base = 0;
  #played = 0;
  /** The drift-resampled, delayed speaker signal, the last impulse-response length of it,
   * stored twice over (at i and i + length) so the convolution reads it contiguously. */
  #history: Float32Array;
  #at = 0;
  #captured = 0;

  constructor(settings: RoomSettings, sampleRate = 8000) {
    this.settings = settings;
    const next = seededRandom(settings.seed);
    const length = Math.max(1, Math.round(settings.rt60S * sampleRate));
    const h = new Float32Array(length);
    // Exponentially decaying noise (60 dB over rt60), with a direct path at its start.
    for (let i = 0; i < length; i++) {
      h[i] = gaussian(next) * 0.3 * Math.exp((-Math.log(1000) * i) / length);
    }
    h[0] = 1;
    let energy = 0;
    for (const x of h) energy += x * x;
    const scale = 10 ** (settings.gainDb / 20) / Math.sqrt(energy);
    for (let i = 0; i < length; i++) h[i] *= scale;
    this.impulseResponse = h;
    this.#noise = seededRandom(settings.seed ^ 0x9e3779b9);
    this.#noiseRms = 10 ** (settings.noiseDb / 20);
    this.#step = 1 + settings.driftPpm * 1e-6;
    this.#delay = (settings.delayMs * sampleRate) / 1000;
    this.#history = new Float32Array(2 * length);
  }

  /** Speaker samples played so far. */
  get played(): number {
    return this.#played;
  }

  /** Microphone samples captured so far. */
  get captured(): number {
    return this.#captured;
  }

  /** The speaker plays these samples (appended to what it played before). */
  play(samples: Float32Array): void {
    const kept = this.#played - this.#base;
    if (kept + samples.length > this.#speaker.length) {
      // Drop what the microphone can no longer hear, then grow if still short.
      const heard = Math.floor(this.#position(this.#captured)) - 1;
      const needed = Math.min(this.#played, Math.max(this.#base, heard));
      const keep = this.#speaker.subarray(needed - this.#base, kept);
      const size = Math.max(this.#speaker.length, 2 * (keep.length + samples.length));
      const grown = size > this.#speaker.length ? new Float32Array(size) : this.#speaker;
      grown.set(keep);
      this.#speaker = grown;
      this.#base = needed;
    }
    this.#speaker.set(samples, this.#played - this.#base);
    this.#played += samples.length;
  }

  /** The microphone signal while the user says `speech` (its next samples). */
  capture(speech: Float32Array): Float32Array {
    const h = this.impulseResponse;
    const n = h.length;
    const out = new Float32Array(speech.length);
    for (let i = 0; i < speech.length; i++) {
      const x = this.#speakerAt(this.#position(this.#captured + i));
      const newest = this.#at + n;
      this.#history[this.#at] = x;
      this.#history[newest] = x;
      // h[k] weighs the sample k older than the newest.
      let echo = 0;
      for (let k = 0; k < n; k++) echo += h[k] * this.#history[newest - k];
      this.#at = this.#at + 1 === n ? 0 : this.#at + 1;
      out[i] = speech[i] + echo + this.#noiseRms * gaussian(this.#noise);
    }
    this.#captured += speech.length;
    return out;
  }

  /** Where in the speaker's samples the microphone's sample `n` hears (fractional). */
  #position(n: number): number {
    return n * this.#step - this.#delay;
  }

  /** The speaker's signal at a fractional sample position. */
  #speakerAt(t: number): number {
    return fractionalSample(this.#read, t);
  }

  #read = (i: number): number => this.#sample(i);

  #sample(i: number): number {
    return i >= this.#base && i < this.#played ? this.#speaker[i - this.#base] : 0;
  }
}
