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

/** Fractions are looked up in steps of 1/1024 sample (a phase error under −55 dB at 3.4 kHz). */
const STEPS = 1024;
let table: Float64Array | null = null;

/** The value at fractional position `t` of the signal whose sample `i` is `sample(i)`. */
export function fractionalSample(sample: (i: number) => number, t: number): number {
  const taps = 2 * FRACTIONAL_HALF_WIDTH;
  if (!table) {
    table = new Float64Array(STEPS * taps);
    for (let step = 0; step < STEPS; step++) {
      table.set(fractionalWeights(step / STEPS), step * taps);
    }
  }
  let i = Math.floor(t);
  let step = Math.round((t - i) * STEPS);
  if (step === STEPS) [i, step] = [i + 1, 0];
  if (step === 0) return sample(i);
  let sum = 0;
  const from = i - FRACTIONAL_HALF_WIDTH + 1;
  for (let k = 0, w = step * taps; k < taps; k++, w++) sum += sample(from + k) * table[w];
  return sum;
}
