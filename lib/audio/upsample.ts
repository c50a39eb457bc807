/**
 * Streaming 2× upsampler (8 kHz → 16 kHz): a windowed-sinc polyphase
 * low-pass that keeps its history between calls, so 100 ms batches join
 * without seams. The local engine feeds the model's 16 kHz features with
 * it (sherpa-onnx would resample too, but logs a line for every stream).
 *
 * @module
 */

/** Half the filter length, in input samples. */
const HALF = 16;
/** Cut-off as a fraction of the output rate (just under the input's Nyquist, 0.25). */
const CUTOFF = 0.23;

function makeTaps(): Float32Array {
  const length = 4 * HALF + 1;
  const center = 2 * HALF;
  const taps = new Float32Array(length);
  for (let k = 0; k < length; k++) {
    const t = k - center;
    const sinc = t === 0 ? 2 * CUTOFF : Math.sin(2 * Math.PI * CUTOFF * t) / (Math.PI * t);
    const blackman = 0.42 - 0.5 * Math.cos((2 * Math.PI * k) / (length - 1)) +
      0.08 * Math.cos((4 * Math.PI * k) / (length - 1));
    // ×2 restores the level lost to the inserted zeros.
    taps[k] = 2 * sinc * blackman;
  }
  return taps;
}

const TAPS = makeTaps();
/**
 * The two phases of the filter: an even output sample only meets the even
 * taps, an odd one only the odd taps (the zero-stuffed samples drop out).
 */
const EVEN_TAPS = TAPS.filter((_, k) => k % 2 === 0);
const ODD_TAPS = TAPS.filter((_, k) => k % 2 === 1);

/** Doubles the sample rate of a stream of float samples. */
export class Upsampler2x {
  /** The last 2·HALF input samples, then room for the next batch. */
  #buffer = new Float32Array(2 * HALF);

  /** Upsamples one batch; output has twice the input's length, delayed by HALF input samples. */
  process(input: Float32Array): Float32Array {
    const history = 2 * HALF;
    if (this.#buffer.length < history + input.length) {
      const grown = new Float32Array(history + input.length);
      grown.set(this.#buffer.subarray(0, history));
      this.#buffer = grown;
    }
    const x = this.#buffer;
    x.set(input, history);
    const out = new Float32Array(input.length * 2);
    const even = EVEN_TAPS, odd = ODD_TAPS;
    for (let i = 0; i < input.length; i++) {
      // Outputs 2i and 2i+1 sit at zero-stuffed index m = 2·(history + i) (+1); the even phase
      // reaches back over 2·HALF+1 inputs ending at history + i, the odd phase over 2·HALF.
      const end = history + i;
      let sumEven = 0;
      for (let j = 0; j < even.length; j++) sumEven += even[j] * x[end - j];
      let sumOdd = 0;
      for (let j = 0; j < odd.length; j++) sumOdd += odd[j] * x[end - j];
      out[2 * i] = sumEven;
      out[2 * i + 1] = sumOdd;
    }
    x.copyWithin(0, input.length, input.length + history);
    return out;
  }
}
