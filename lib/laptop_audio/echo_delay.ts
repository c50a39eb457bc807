/**
 * Where the speaker's echo sits in the microphone signal: the bulk delay
 * between the reference and the microphone, found by cross-correlating their
 * coarse envelopes (5 ms blocks) over the last 2 s, and how loud the echo is
 * against the reference there. Known within about a second of the phone
 * party talking, long before an adaptive filter has converged, so a short
 * filter can be placed on the echo and the echo predicted while it adapts.
 *
 * @module
 */

/** Samples per envelope block (5 ms at 8 kHz). */
const BLOCK = 40;
/** Envelope blocks correlated: 2 s. */
const WINDOW_BLOCKS = 400;
/** Longest delay looked for: 600 ms (device buffers put it anywhere from 20 to 500 ms). */
const MAX_LAG_BLOCKS = 120;
/** Fewest blocks correlated (0.5 s): the first estimates use what there is. */
const MIN_WINDOW_BLOCKS = 100;
/** Blocks between estimates (0.25 s). */
const EVERY_BLOCKS = 50;
/** A reference block louder than this (RMS, 16-bit; about −45 dBFS) has the speaker playing. */
const LOUD_RMS = 180;
/** The window needs this many loud reference blocks (0.4 s of the speaker playing). */
const MIN_LOUD_BLOCKS = 80;
/** A correlation peak below this is not trusted. */
const MIN_CORRELATION = 0.5;
/** Two estimates in a row within this many blocks (10 ms) lock the delay. */
const AGREE_BLOCKS = 2;

/** A delay the estimator is sure of. */
export interface EchoDelay {
  /** Samples from the reference to the start of its echo in the microphone signal. */
  samples: number;
  /** Echo envelope per reference envelope at that delay (the echo path's gain, amplitude). */
  gain: number;
  /** The envelopes' correlation there (0-1). */
  correlation: number;
}

/** Feeds on each frame's reference and microphone samples; says the delay once sure of it. */
export class EchoDelayEstimator {
  readonly #ref = new Float64Array(WINDOW_BLOCKS + MAX_LAG_BLOCKS);
  /** Log envelopes, as correlated. */
  readonly #refLog = new Float64Array(WINDOW_BLOCKS + MAX_LAG_BLOCKS);
  readonly #micLog = new Float64Array(WINDOW_BLOCKS + MAX_LAG_BLOCKS);
  readonly #mic = new Float64Array(WINDOW_BLOCKS + MAX_LAG_BLOCKS);
  /** Blocks written so far (their place in the rings is modulo the ring length). */
  #blocks = 0;
  #pending = { ref: 0, mic: 0, n: 0 };
  #last: EchoDelay | null = null;
  /** The delay last locked (two estimates in a row agreeing), or null. */
  delay: EchoDelay | null = null;

  /** Adds samples (any count) of the reference and of the microphone at the same moments. */
  feed(reference: Int16Array, mic: Int16Array): void {
    for (let i = 0; i < reference.length; i++) {
      const p = this.#pending;
      p.ref += reference[i] * reference[i];
      p.mic += mic[i] * mic[i];
      if (++p.n < BLOCK) continue;
      const at = this.#blocks % this.#ref.length;
      this.#ref[at] = Math.sqrt(p.ref / BLOCK);
      this.#mic[at] = Math.sqrt(p.mic / BLOCK);
      // Log envelopes: the echo's level follows the reference's by a constant in dB, and a few
      // loud blocks (or the laptop user's voice) weigh no more than many quiet ones.
      this.#refLog[at] = Math.log(this.#ref[at] + 30);
      this.#micLog[at] = Math.log(this.#mic[at] + 30);
      this.#pending = { ref: 0, mic: 0, n: 0 };
      if (++this.#blocks % EVERY_BLOCKS === 0) this.#estimate();
    }
  }

  /** The reference envelope (RMS, 16-bit) of the block `blocksAgo` blocks before the newest. */
  referenceRms(blocksAgo: number): number {
    if (blocksAgo < 0 || blocksAgo >= this.#ref.length || blocksAgo >= this.#blocks) return 0;
    return this.#ref[(this.#blocks - 1 - blocksAgo) % this.#ref.length];
  }

  /** Samples per envelope block. */
  static readonly BLOCK = BLOCK;

  #estimate(): void {
    const window = Math.min(WINDOW_BLOCKS, this.#blocks);
    if (window < MIN_WINDOW_BLOCKS) return;
    const n = this.#ref.length;
    const newest = this.#blocks - 1;
    const mic = (b: number) => this.#mic[(newest - b) % n];
    // Before the first block the speaker played nothing.
    const ref = (b: number) => b <= newest ? this.#ref[(newest - b) % n] : 0;
    let loud = 0;
    for (let b = 0; b < window; b++) if (ref(b) > LOUD_RMS) loud++;
    if (loud < MIN_LOUD_BLOCKS) return;
    const silent = Math.log(30);
    const micLog = new Float64Array(window);
    const refLog = new Float64Array(window + MAX_LAG_BLOCKS);
    for (let b = 0; b < window; b++) micLog[b] = this.#micLog[(newest - b) % n];
    for (let b = 0; b < refLog.length; b++) {
      refLog[b] = b <= newest ? this.#refLog[(newest - b) % n] : silent;
    }
    let mMean = 0;
    for (let b = 0; b < window; b++) mMean += micLog[b];
    mMean /= window;
    let mVar = 0;
    for (let b = 0; b < window; b++) {
      micLog[b] -= mMean;
      mVar += micLog[b] * micLog[b];
    }
    // Sums of the reference over the window at each lag, slid one block at a time.
    let rSum = 0;
    let rSquares = 0;
    for (let b = 0; b < window; b++) {
      rSum += refLog[b];
      rSquares += refLog[b] * refLog[b];
    }
    let best = { lag: -1, r: -1 };
    for (let lag = 0; lag < MAX_LAG_BLOCKS; lag++) {
      if (lag > 0) {
        const out = refLog[lag - 1];
        const enter = refLog[lag + window - 1];
        rSum += enter - out;
        rSquares += enter * enter - out * out;
      }
      // The mic's deviations sum to zero: the reference's mean drops out of the covariance.
      let cov = 0;
      for (let b = 0; b < window; b++) cov += micLog[b] * refLog[b + lag];
      const rVar = rSquares - (rSum * rSum) / window;
      const r = cov / Math.sqrt(mVar * rVar || 1);
      if (r > best.r) best = { lag, r };
    }
    if (best.r < MIN_CORRELATION) {
      this.#last = null;
      return;
    }
    // The echo's gain: the median, over loud reference blocks, of mic / reference at the lag.
    const ratios: number[] = [];
    for (let b = 0; b < window; b++) {
      if (ref(b + best.lag) > LOUD_RMS) ratios.push(mic(b) / ref(b + best.lag));
    }
    ratios.sort((a, b) => a - b);
    const found: EchoDelay = {
      samples: best.lag * BLOCK,
      gain: ratios[ratios.length >> 1] ?? 0,
      correlation: best.r,
    };
    const last = this.#last;
    this.#last = found;
    if (last && Math.abs(last.samples - found.samples) <= AGREE_BLOCKS * BLOCK) {
      this.delay = found;
    }
  }
}
