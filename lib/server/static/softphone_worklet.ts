/**
 * The softphone's capture worklet (served as
 * `/assets/server/static/softphone_worklet.ts`: under the CSP, an
 * AudioWorklet module must be a file of this server). It runs on the audio
 * thread at the device's rate (`sampleRate`, often 48 kHz), low-passes below
 * 3.6 kHz (two biquads, so nothing above the phone band folds back),
 * resamples to 8 kHz by linear interpolation, and posts 20 ms frames of
 * 16-bit PCM (160 samples) with their RMS level to the page.
 *
 * @module
 */

/** The AudioWorkletGlobalScope (not in the DOM typings `deno check` uses). */
// deno-lint-ignore no-explicit-any
const scope = globalThis as any;

const CALL_RATE = 8000;
const FRAME_SAMPLES = 160;

/** A second-order low-pass (RBJ cookbook), direct form I. */
class LowPass {
  b0: number;
  b1: number;
  b2: number;
  a1: number;
  a2: number;
  x1 = 0;
  x2 = 0;
  y1 = 0;
  y2 = 0;

  constructor(rate: number, cutoff: number) {
    const w = 2 * Math.PI * cutoff / rate;
    const alpha = Math.sin(w) / (2 * Math.SQRT1_2);
    const a0 = 1 + alpha;
    this.b0 = (1 - Math.cos(w)) / 2 / a0;
    this.b1 = (1 - Math.cos(w)) / a0;
    this.b2 = this.b0;
    this.a1 = -2 * Math.cos(w) / a0;
    this.a2 = (1 - alpha) / a0;
  }

  step(x: number): number {
    const y = this.b0 * x + this.b1 * this.x1 + this.b2 * this.x2 - this.a1 * this.y1 -
      this.a2 * this.y2;
    this.x2 = this.x1;
    this.x1 = x;
    this.y2 = this.y1;
    this.y1 = y;
    return y;
  }
}

class SoftphoneCapture extends scope.AudioWorkletProcessor {
  /** Input samples per output sample. */
  step: number = scope.sampleRate / CALL_RATE;
  filters: LowPass[];
  /** Where the next output sample falls, in input samples after `previous`. */
  position = 0;
  previous = 0;
  frame = new Int16Array(FRAME_SAMPLES);
  filled = 0;
  energy = 0;

  constructor() {
    super();
    const cutoff = Math.min(3600, scope.sampleRate * 0.45);
    this.filters = [new LowPass(scope.sampleRate, cutoff), new LowPass(scope.sampleRate, cutoff)];
  }

  process(inputs: Float32Array[][]): boolean {
    const input = inputs[0]?.[0];
    if (!input) return true;
    for (let i = 0; i < input.length; i++) {
      const x = this.filters[1].step(this.filters[0].step(input[i]));
      // Output samples that fall between the previous input sample and this one.
      while (this.position <= 1) {
        const y = this.previous + (x - this.previous) * this.position;
        this.#push(y);
        this.position += this.step;
      }
      this.position -= 1;
      this.previous = x;
    }
    return true;
  }

  #push(y: number): void {
    const clamped = Math.max(-1, Math.min(1, y));
    this.frame[this.filled++] = Math.round(clamped * 32767);
    this.energy += clamped * clamped;
    if (this.filled < FRAME_SAMPLES) return;
    const level = Math.sqrt(this.energy / FRAME_SAMPLES);
    this.port.postMessage({ frame: this.frame, level }, [this.frame.buffer]);
    this.frame = new Int16Array(FRAME_SAMPLES);
    this.filled = 0;
    this.energy = 0;
  }
}

scope.registerProcessor("softphone-capture", SoftphoneCapture);
