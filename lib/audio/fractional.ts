/**
 * A signal's value between its samples: Lanczos (windowed-sinc) interpolation,
 * flat to about 0.9 of the Nyquist frequency, the same at every fraction of a
 * sample. Linear and cubic interpolation low-pass the signal by an amount
 * that changes with the fraction: a signal read at a drifting rate is then
 * filtered by a time-varying filter no echo canceller can follow.
 *
 * @module
 */

/** Lanczos kernel half-width, in samples: 16 taps, from `i − 7` to `i + 8` around `i + f`. */
export const FRACTIONAL_HALF_WIDTH = 8;

/** The 16 weights of samples `i − 7 … i + 8` for the value at `i + f` (0 ≤ f < 1). */
export function fractionalWeights(f: number, out = new Float64Array(2 * FRACTIONAL_HALF_WIDTH)) {
  const a = FRACTIONAL_HALF_WIDTH;
  for (let k = -a + 1; k <= a; k++) {
    const px = Math.PI * (k - f);
    out[k + a - 1] = px === 0 ? 1 : (a * Math.sin(px) * Math.sin(px / a)) / (px * px);
  }
  return out;
}

/** The value at fractional position `t` of the signal whose sample `i` is `sample(i)`. */
export function fractionalSample(sample: (i: number) => number, t: number): number {
  const i = Math.floor(t);
  const f = t - i;
  if (f === 0) return sample(i);
  const weights = fractionalWeights(f);
  let sum = 0;
  for (let k = 0; k < weights.length; k++) {
    sum += sample(i + k - FRACTIONAL_HALF_WIDTH + 1) * weights[k];
  }
  return sum;
}
