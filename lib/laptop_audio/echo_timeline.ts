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
 * it, and, once the echo's bulk delay is estimated (EchoDelayEstimator, about a
 * second of the phone party talking), a short one placed on the echo; whichever
 * leaves less echo is heard, and once it has done best for 2 s of the speaker
 * playing, or after 10 s, the others are dropped. Until the canceller has
 * converged, a start gate attenuates frames no louder than the predicted echo,
 * so the call's first words are not heard back nor transcribed twice.
 *
 * @module
 */
import { mulawDecode, mulawEncode } from "../audio/mulaw.ts";
import type { EchoCanceller } from "./echo_canceller.ts";
import { FRACTIONAL_HALF_WIDTH, fractionalWeights } from "../audio/fractional.ts";
import { EchoDelayEstimator } from "./echo_delay.ts";

/**
 * The warm-up filter's length (256 ms): speexdsp's filter needs about four times its length of
 * the speaker playing before it adapts at full speed, so a short one is useful sooner (in the
 * bench, Outbound WER 17 % instead of 21 % in the call's first seconds, one duplicated word less).
 */
export const WARMUP_FILTER_LENGTH = 2048;
/**
 * The aligned filter's length (256 ms): placed on the echo by its estimated delay, it spans the
 * room's tail rather than the device delay, and converges like the warm-up filter.
 */
export const ALIGNED_FILTER_LENGTH = 2048;
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

/**
 * Where the reference is placed for the aligned filter: this much before the echo's delay as
 * estimated (the estimate runs 15-20 ms late, ±10 ms; the filter must not start after the echo).
 */
const ALIGN_MARGIN_SAMPLES = 480;
/** The start gate's attenuation of a frame it judges to be echo only (−30 dB). */
const GATE_GAIN = 0.03;
/** A frame is the laptop user speaking when the output is this many times the echo's power. */
const GATE_SPEECH_RATIO = 2;
/** The gate stays on until the canceller removes this much of the echo (mic/out power, 15 dB). */
const GATE_CONVERGED_RATIO = 10 ** 1.5;
/** …or until the speaker has played this many frames (10 s). */
const GATE_MAX_FRAMES = 500;
/** Reverberation the gate's echo estimate spans after the delay, in envelope blocks (100 ms). */
const GATE_TAIL_BLOCKS = 20;
/** Before the delay is known, the echo is taken as loud as the loudest reference this far back. */
const GATE_UNKNOWN_BLOCKS = 120;

/** An echo canceller fed the reference `bulk` + `step` samples earlier than the microphone's place. */
interface Candidate {
  canceller: EchoCanceller;
  bulk: number;
  /** Stepped back from the newest speaker sample written (EchoTimeline's #keepWritten). */
  step: number;
  reference: Int16Array;
  out: Int16Array;
  /** Smoothed output power. */
  power: number;
  /** Output power smoothed over the frames with the speaker playing only (about 2 s of them). */
  loudPower: number;
  /** The short warm-up filter: heard while it does best, never kept as the main one. */
  warmup: boolean;
}

function candidate(
  canceller: EchoCanceller,
  bulk: number,
  frameSize: number,
  warmup: boolean,
): Candidate {
  const reference = new Int16Array(frameSize);
  const out = new Int16Array(frameSize);
  return { canceller, bulk, step: 0, reference, out, power: 0, loudPower: 0, warmup };
}

/** What runs beside the main canceller of an {@link EchoTimeline}. */
export interface EchoTimelineOptions {
  /** A shorter filter that converges sooner, heard while it leaves less echo (first seconds). */
  warmup?: EchoCanceller | null;
  /** Makes a short filter placed on the echo once its delay is known (heard likewise). */
  aligned?: (() => EchoCanceller) | null;
  /** Attenuate frames no louder than the predicted echo until the canceller converges (default on). */
  startGate?: boolean;
}

/** µ-law frames in, µ-law frames out, the reference read from the speaker's timeline. */
export class EchoTimeline {
  #canceller: EchoCanceller;
  readonly #frameSize: number;
  #ring = new Float32Array(RING_SAMPLES);
  /** One past the newest speaker sample written. */
  #newest = 0;
  #mic: Int16Array;
  #weights = new Float64Array(2 * FRACTIONAL_HALF_WIDTH);
  /** Samples the reference is read earlier than the microphone's place says (drift so far). */
  #shift = 0;
  /** Samples added to #shift per frame: the drift rate. */
  #rate = 0;
  /**
   * The least the speaker had been written past the microphone's place when a frame came, in
   * samples, while it played on: reading later than that would read silence.
   */
  #headroom = Infinity;
  /** The place of the last microphone frame (`end`). */
  #lastEnd = -Infinity;
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

  /**
   * The cancellers running, the main one first. While the main one converges (the call's first
   * seconds) others run beside it: a short filter that converges faster, and once the echo's
   * delay is known a short filter placed on it; whichever leaves less echo is heard.
   */
  #candidates: Candidate[];
  #heard = 0;
  /** The filter to keep as the race stands (index), and for how many loud frames it has been. */
  #keep = 0;
  #keepBetter = 0;
  /** Loud frames while several cancellers ran. */
  #raceFrames = 0;
  readonly #aligned: (() => EchoCanceller) | null;
  /** The delay was found (and the aligned filter started, unless the echo is that close). */
  #alignedStarted = false;
  readonly #delay = new EchoDelayEstimator();
  /** The start gate: on until the canceller has converged. */
  #gate: boolean;
  readonly #gateWanted: boolean;
  #gateGain = 1;
  #gatePower = { mic: 0, out: 0 };
  #gateFrames = 0;

  /** `canceller` spans the longest delay plus the room's tail. */
  constructor(canceller: EchoCanceller, options: EchoTimelineOptions = {}) {
    const { warmup = null, aligned = null, startGate = true } = options;
    this.#gate = startGate;
    this.#gateWanted = startGate;
    this.#canceller = canceller;
    this.#aligned = aligned;
    this.#frameSize = canceller.options.frameSize;
    this.#candidates = [candidate(canceller, 0, this.#frameSize, false)];
    if (warmup) this.#candidates.push(candidate(warmup, 0, this.#frameSize, true));
    this.#mic = new Int16Array(this.#frameSize);
  }

  /** The drift the timeline corrects, ppm (speaker clock fast: positive). */
  get driftPpm(): number {
    return -this.#rate / this.#frameSize * 1e6;
  }

  /** The echo's delay behind the reference as estimated, in samples, once known. */
  get delaySamples(): number | null {
    return this.#delay.delay?.samples ?? null;
  }

  /** The speaker played `mulaw` starting at sample `at` of the timeline. */
  played(mulaw: Uint8Array, at: number): void {
    // Written on from where it was (not after an idle gap): the frames since were this far ahead.
    if (at <= this.#newest) this.#headroom = Math.min(this.#headroom, this.#newest - this.#lastEnd);
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
    this.#lastEnd = end;
    mulawDecode(mulaw, this.#mic);
    // The speaker is playing (for the filters) if the main filter's reference is loud.
    let energy = 0;
    for (const c of this.#candidates) {
      this.#keepWritten(c);
      const e = this.#read(end - c.bulk - c.step, c.reference);
      if (c === this.#candidates[0]) energy = e;
    }
    const loud = energy > LOUD_ENERGY * n;
    if (loud) this.#loudFrames++;
    // The delay is estimated against the reference in place (until a canceller is aligned).
    const unaligned = this.#candidates.find((c) => c.bulk === 0);
    if (unaligned) this.#delay.feed(unaligned.reference, this.#mic);
    const delay = this.#delay.delay;
    if (delay && this.#aligned && !this.#alignedStarted) {
      this.#alignedStarted = true;
      const bulk = delay.samples - ALIGN_MARGIN_SAMPLES;
      // An echo that close is where the warm-up filter has it already.
      if (bulk > 0) {
        const aligned = candidate(this.#aligned(), bulk, n, false);
        // The delay was found against the unaligned reference, wherever that was stepped to.
        aligned.step = unaligned?.step ?? 0;
        this.#keepWritten(aligned);
        this.#read(end - bulk - aligned.step, aligned.reference);
        this.#candidates.push(aligned);
      }
    }
    const p = (x: Int16Array) => x.reduce((s, v) => s + v * v, 0) / n;
    for (const c of this.#candidates) {
      c.canceller.process(this.#mic, c.reference, c.out);
      const power = p(c.out);
      c.power = 0.9 * c.power + 0.1 * power;
      if (loud) c.loudPower = 0.99 * c.loudPower + 0.01 * power;
    }
    if (this.#candidates.length > 1) this.#race(loud);
    const out = this.#candidates[this.#heard].out;
    if (this.#gate) this.#startGate(out, loud);
    this.frames++;
    if (this.frames % TRACK_FRAMES === 0) this.#track();
    return mulawEncode(out);
  }

  /** Frees the cancellers. */
  close(): void {
    for (const c of this.#candidates) c.canceller.close();
  }

  /**
   * Never reads past the newest speaker sample written (by the least the speaker has been ahead
   * of the microphone so far; a speaker later than ever is known when it writes, and stepped from
   * then). Read there as silence, it stays silence in the canceller's reference, and the echo is
   * lost: a fast speaker clock, read ever later, gets there after headroom ÷ drift (with 10 ms,
   * 12 dB of echo removed after 160 s at 100 ppm instead of 48). At that bound the filter's read
   * steps a frame earlier: the echo moves 20 ms along the filter, re-learnt with the start gate
   * on again (one second under 25 dB, 17 at worst), good for another frame ÷ drift (200 s at
   * 100 ppm). A filter placed on the echo reads far enough back never to get there. Stopping the
   * drift correction there instead, the filter followed the drift too poorly (9 dB at 100 ppm,
   * 16 at 50); holding the microphone frame would add the drift to the call's latency, without
   * bound (a drained speaker restarts, the correction does not).
   */
  #keepWritten(c: Candidate): void {
    // The interpolation reads FRACTIONAL_HALF_WIDTH samples past the frame's end.
    const least = FRACTIONAL_HALF_WIDTH - this.#headroom - this.#shift;
    if (c.bulk + c.step >= least) return;
    c.step = least - c.bulk + this.#frameSize;
    if (c === this.#candidates[this.#heard]) this.#rearmGate();
  }

  /** Reads the reference for the microphone frame ending at `end` into `into`; its energy. */
  #read(end: number, into: Int16Array): number {
    const n = this.#frameSize;
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
      into[i] = x;
      energy += x * x;
    }
    return energy;
  }

  /**
   * Several cancellers run: the one with the least smoothed output power is heard (a converging
   * one does not take over until it leaves half the echo). The one kept is the filter spanning
   * the echo (the long one or the aligned one, never the warm-up one, whose 256 ms miss the
   * tail of a room with a longer delay) that leaves the least output over the speaker's last
   * 2 s: once it has for 2 s of the speaker playing and is heard, or after 10 s, the others are
   * dropped. Judged while the speaker plays only: in double talk the laptop user's speech, the
   * same in every output, made them look alike (in the bench, the warm-up filter was kept in
   * the default room, and the tail it missed put 39 phone-party words in the transcript).
   */
  #race(loud: boolean): void {
    const all = this.#candidates;
    let best = 0;
    for (let i = 1; i < all.length; i++) if (all[i].power < all[best].power) best = i;
    if (best !== this.#heard && all[best].power < 0.5 * all[this.#heard].power) this.#heard = best;
    if (!loud) return;
    this.#raceFrames++;
    let keep = -1;
    for (let i = 0; i < all.length; i++) {
      if (!all[i].warmup && (keep < 0 || all[i].loudPower < all[keep].loudPower)) keep = i;
    }
    this.#keepBetter = keep === this.#keep ? this.#keepBetter + 1 : 0;
    this.#keep = keep;
    // An aligned filter still to come (the delay not yet known) may do better: keep racing.
    const waiting = this.#aligned !== null && !this.#alignedStarted;
    if (
      (this.#keepBetter >= 100 && keep === this.#heard && !waiting) || this.#raceFrames >= 500
    ) {
      const kept = all[keep];
      for (const c of all) if (c !== kept) c.canceller.close();
      this.#candidates = [kept];
      this.#heard = 0;
      if (kept.canceller !== this.#canceller) {
        // A new main filter: its response is tracked afresh (the drift rate found is kept).
        this.#canceller = kept.canceller;
        this.#previous = null;
        this.#taps = [];
        this.#tap = 0;
      }
    }
  }

  /**
   * Until the canceller has converged (its first seconds of the speaker playing), it leaves
   * much of the echo, loud enough to be transcribed as the laptop user's words: frames no louder
   * than the echo would be are attenuated by 30 dB. The echo is predicted from the reference's
   * envelope at the estimated delay and gain (before the delay is known: as loud as the loudest
   * reference in the last 600 ms); a frame louder than that is the laptop user, and kept.
   */
  #startGate(out: Int16Array, loud: boolean): void {
    const n = this.#frameSize;
    let outPower = 0;
    let micPower = 0;
    for (let i = 0; i < n; i++) {
      outPower += out[i] * out[i];
      micPower += this.#mic[i] * this.#mic[i];
    }
    if (loud) {
      this.#gateFrames++;
      this.#gatePower.mic = 0.95 * this.#gatePower.mic + 0.05 * micPower;
      this.#gatePower.out = 0.95 * this.#gatePower.out + 0.05 * outPower;
      if (
        this.#gateFrames >= GATE_MAX_FRAMES ||
        (this.#gateFrames >= 50 &&
          this.#gatePower.mic >= GATE_CONVERGED_RATIO * this.#gatePower.out)
      ) {
        this.#gate = false;
        return;
      }
    }
    const delay = this.#delay.delay;
    const blocks = n / EchoDelayEstimator.BLOCK;
    let echo = 0;
    if (delay) {
      // The frame's newest block is 0 blocks ago; its echo comes from the reference `lag` before.
      const lag = Math.round(delay.samples / EchoDelayEstimator.BLOCK);
      for (let b = 0; b < blocks; b++) {
        let rms = 0;
        for (let t = 0; t <= GATE_TAIL_BLOCKS; t++) {
          rms = Math.max(rms, this.#delay.referenceRms(b + lag + t));
        }
        echo += (delay.gain * rms) ** 2;
      }
    } else {
      let rms = 0;
      for (let b = 0; b < GATE_UNKNOWN_BLOCKS; b++) {
        rms = Math.max(rms, this.#delay.referenceRms(b));
      }
      echo = blocks * rms * rms;
    }
    // Mean squares per sample, over the frame.
    const echoPower = (echo / blocks) * n;
    const gain = outPower > GATE_SPEECH_RATIO * echoPower ? 1 : GATE_GAIN;
    // A ramp across the frame from the last gain to this one: no click.
    for (let i = 0; i < n; i++) {
      const g = this.#gateGain + ((gain - this.#gateGain) * (i + 1)) / n;
      out[i] = Math.round(out[i] * g);
    }
    this.#gateGain = gain;
  }

  /** The canceller re-learns a moved echo: the start gate holds its echo back meanwhile. */
  #rearmGate(): void {
    if (!this.#gateWanted) return;
    this.#gate = true;
    this.#gateFrames = 0;
    this.#gatePower = { mic: 0, out: 0 };
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
