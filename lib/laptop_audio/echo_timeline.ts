/**
 * The speaker's audio on a sample timeline, and microphone frames cancelled
 * against it: the bridge says where each played frame and each captured
 * frame sit on one clock (8 kHz samples), and the canceller is fed the
 * speaker audio that was playing while each microphone frame was captured.
 *
 * The speaker's and the microphone's clocks drift apart (tens of ppm), so the
 * echo slides along the adaptive filter, which speexdsp follows poorly (with
 * 50 ppm, ERLE fell from 30 to 20 dB). The timeline keeps the echo in place:
 * it watches the filter's impulse response slide and reads the reference
 * earlier or later, by fractions of a sample, at the rate it slides.
 *
 * While the long filter converges (its first seconds), a short one runs beside
 * it, and whichever leaves less echo is heard; once the long one has done as
 * well for 2 s of the speaker playing, or after 10 s, the short one is dropped.
 *
 * @module
 */
import { mulawDecode, mulawEncode } from "../audio/mulaw.ts";
import type { EchoCanceller } from "./echo_canceller.ts";
import { FRACTIONAL_HALF_WIDTH, fractionalWeights } from "../audio/fractional.ts";

/**
 * The warm-up filter's length (256 ms): speexdsp's filter needs about four times its length of
 * the speaker playing before it adapts at full speed, so a short one is useful sooner (in the
 * bench, Outbound WER 17 % instead of 21 % in the call's first seconds, one duplicated word less).
 */
export const WARMUP_FILTER_LENGTH = 2048;
/** Speaker audio kept: 2 s, more than the filter spans (older audio cannot echo any more). */
const RING_SAMPLES = 16384;
/** The filter's impulse response is looked at every this many frames (0.5 s). */
const TRACK_FRAMES = 25;
/** A response that slides further than this in one look is a new echo path, not drift. */
const JUMP_SAMPLES = 4;
/** The drift rate is fitted to this many looks at the response (5 s). */
const FIT_TRACKS = 10;
/**
 * The filter follows a sliding echo only partly (it re-adapts as it goes), so the slide it
 * shows is a fraction (0.05-0.4 measured) of the drift left; the fitted speed is doubled.
 */
const FIT_GAIN = 2;
/** A reference frame louder than this (mean square, 16-bit; about −40 dBFS) has the speaker playing. */
const LOUD_ENERGY = 100_000;
/** Drift beyond this (ppm) is not clock drift. */
const MAX_DRIFT_PPM = 300;

/** µ-law frames in, µ-law frames out, the reference read from the speaker's timeline. */
export class EchoTimeline {
  readonly #canceller: EchoCanceller;
  readonly #frameSize: number;
  #ring = new Float32Array(RING_SAMPLES);
  /** One past the newest speaker sample written. */
  #newest = 0;
  #mic: Int16Array;
  #reference: Int16Array;
  #out: Int16Array;
  #weights = new Float64Array(2 * FRACTIONAL_HALF_WIDTH);
  /** Samples the reference is read earlier than the microphone's place says (drift so far). */
  #shift = 0;
  /** Samples added to #shift per frame: the drift rate. */
  #rate = 0;
  /** The filter's impulse response at the last look. */
  #previous: Int32Array | null = null;
  /** How far the filter's response has slid since tracking (re)started, in samples. */
  #tap = 0;
  /** Where the response was (#tap), at which frame, since the last fit. */
  #taps: { frame: number; tap: number }[] = [];
  /** Frames since the last look with the speaker playing. */
  #loudFrames = 0;
  /** Microphone frames cancelled. */
  frames = 0;

  /** A short filter that converges twice as fast, used while the long one is still converging. */
  #warmup: EchoCanceller | null;
  #warmOut: Int16Array;
  /** Smoothed output power of the long and the short filter. */
  #power = { main: 0, warm: 0 };
  #useWarm = false;
  /** Loud frames since the long filter last did worse than the short one. */
  #mainBetter = 0;
  /** Loud frames while the short filter ran. */
  #warmFrames = 0;

  constructor(canceller: EchoCanceller, warmup: EchoCanceller | null = null) {
    this.#canceller = canceller;
    this.#warmup = warmup;
    this.#warmOut = new Int16Array(canceller.options.frameSize);
    this.#frameSize = canceller.options.frameSize;
    this.#mic = new Int16Array(this.#frameSize);
    this.#reference = new Int16Array(this.#frameSize);
    this.#out = new Int16Array(this.#frameSize);
  }

  /** The drift the timeline corrects, ppm (speaker clock fast: positive). */
  get driftPpm(): number {
    return -this.#rate / this.#frameSize * 1e6;
  }

  /** The speaker played `mulaw` starting at sample `at` of the timeline. */
  played(mulaw: Uint8Array, at: number): void {
    // Nothing was played in a gap since the last frame (an idle speaker): silence.
    for (let i = Math.max(this.#newest, at - RING_SAMPLES); i < at; i++) {
      this.#ring[i % RING_SAMPLES] = 0;
    }
    const pcm = mulawDecode(mulaw);
    for (let i = 0; i < pcm.length; i++) {
      if (at + i >= 0) this.#ring[(at + i) % RING_SAMPLES] = pcm[i];
    }
    this.#newest = Math.max(this.#newest, at + pcm.length);
  }

  /**
   * The microphone frame whose last sample was captured just before sample `end` of the
   * timeline, without the speaker's echo.
   */
  cancel(mulaw: Uint8Array, end: number): Uint8Array {
    const n = this.#frameSize;
    this.#shift += this.#rate;
    // The whole frame is read at one fraction of a sample: one set of weights.
    const start = end - n - this.#shift;
    const first = Math.floor(start);
    const fraction = start - first;
    const weights = fractionalWeights(fraction, this.#weights);
    let energy = 0;
    for (let i = 0; i < n; i++) {
      let x = 0;
      if (fraction === 0) x = this.#sample(first + i);
      else {
        const from = first + i - FRACTIONAL_HALF_WIDTH + 1;
        for (let k = 0; k < weights.length; k++) x += this.#sample(from + k) * weights[k];
      }
      x = Math.max(-32768, Math.min(32767, Math.round(x)));
      this.#reference[i] = x;
      energy += x * x;
    }
    if (energy > LOUD_ENERGY * n) this.#loudFrames++;
    mulawDecode(mulaw, this.#mic);
    this.#canceller.process(this.#mic, this.#reference, this.#out);
    let out = this.#out;
    if (this.#warmup) {
      this.#warmup.process(this.#mic, this.#reference, this.#warmOut);
      const p = (x: Int16Array) => x.reduce((s, v) => s + v * v, 0) / n;
      this.#power.main = 0.9 * this.#power.main + 0.1 * p(this.#out);
      this.#power.warm = 0.9 * this.#power.warm + 0.1 * p(this.#warmOut);
      if (this.#power.warm < 0.5 * this.#power.main) this.#useWarm = true;
      else if (this.#power.main < this.#power.warm) this.#useWarm = false;
      if (energy > LOUD_ENERGY * n) {
        this.#warmFrames++;
        this.#mainBetter = this.#power.main <= this.#power.warm ? this.#mainBetter + 1 : 0;
      }
      if (this.#useWarm) out = this.#warmOut;
      // The long filter has caught up for 2 s of the speaker playing, or has had 10 s (it has
      // converged by then): the short one is done.
      if (this.#mainBetter >= 100 || this.#warmFrames >= 500) {
        this.#warmup.close();
        this.#warmup = null;
      }
    }
    this.frames++;
    if (this.frames % TRACK_FRAMES === 0) this.#track();
    return mulawEncode(out);
  }

  /** Frees the canceller. */
  close(): void {
    this.#canceller.close();
    this.#warmup?.close();
  }

  /**
   * Every 0.5 s with the speaker playing, notes how far the filter's impulse response slid
   * since the last look; every 10 s, the speed it slides at (a robust line fit) is added to the
   * reference's drift rate. Only the speed is corrected, not the place: the filter keeps the
   * echo wherever it has it.
   */
  #track(): void {
    // The filter adapts only while the speaker plays: a silent half second tells nothing new.
    const heard = this.#loudFrames >= TRACK_FRAMES / 5;
    this.#loudFrames = 0;
    if (heard) {
      const h = this.#canceller.impulseResponse();
      const moved = this.#previous ? shift(this.#previous, h) : null;
      if (moved === null || Math.abs(moved) > JUMP_SAMPLES) {
        // A new echo path (the start, a restart, a moved device): start over.
        this.#taps = [];
        this.#tap = 0;
      } else {
        this.#tap += moved;
        this.#taps.push({ frame: this.frames, tap: this.#tap });
      }
      this.#previous = h;
    }
    if (this.frames % (TRACK_FRAMES * FIT_TRACKS) !== 0) return;
    const taps = this.#taps;
    this.#taps = [];
    if (taps.length < FIT_TRACKS / 2) return;
    // Theil-Sen: the median of the pairwise slopes, deaf to a few taps found in the wrong place.
    const slopes: number[] = [];
    for (let a = 0; a < taps.length; a++) {
      for (let b = a + 1; b < taps.length; b++) {
        slopes.push((taps[b].tap - taps[a].tap) / (taps[b].frame - taps[a].frame));
      }
    }
    slopes.sort((x, y) => x - y);
    // The tap slides later by `slope` samples a frame: read the reference that much earlier.
    const slope = slopes[slopes.length >> 1];
    const limit = MAX_DRIFT_PPM * 1e-6 * this.#frameSize;
    this.#rate = Math.max(-limit, Math.min(limit, this.#rate + FIT_GAIN * slope));
  }

  #sample(i: number): number {
    const known = i >= 0 && i < this.#newest && i >= this.#newest - RING_SAMPLES;
    return known ? this.#ring[i % RING_SAMPLES] : 0;
  }
}

/**
 * How many samples `after` lies later than `before` (fractional): the peak of their
 * cross-correlation within ±{@link JUMP_SAMPLES} + 1, refined by a parabola; null if they do
 * not resemble each other (a filter still converging, or a new path).
 */
function shift(before: Int32Array, after: Int32Array): number | null {
  const span = JUMP_SAMPLES + 1;
  const scores: number[] = [];
  let energyBefore = 0;
  let energyAfter = 0;
  for (let i = 0; i < before.length; i++) {
    energyBefore += before[i] * before[i];
    energyAfter += after[i] * after[i];
  }
  for (let lag = -span; lag <= span; lag++) {
    let sum = 0;
    for (let i = Math.max(0, -lag); i < before.length && i + lag < after.length; i++) {
      sum += before[i] * after[i + lag];
    }
    scores.push(sum);
  }
  let best = 1;
  for (let k = 1; k < scores.length - 1; k++) if (scores[k] > scores[best]) best = k;
  if (scores[best] < 0.5 * Math.sqrt(energyBefore * energyAfter)) return null;
  const [a, b, c] = [scores[best - 1], scores[best], scores[best + 1]];
  return best - span + (a - c) / (2 * (a - 2 * b + c) || 1);
}
