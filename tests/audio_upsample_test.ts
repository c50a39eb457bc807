import assert from "node:assert/strict";
import { Upsampler2x } from "../lib/audio/upsample.ts";

function sine(hz: number, rate: number, seconds: number): Float32Array {
  return Float32Array.from(
    { length: rate * seconds },
    (_, i) => 0.5 * Math.sin(2 * Math.PI * hz * i / rate),
  );
}

/** Amplitude of `hz` in `samples` (a single-bin DFT). */
function level(samples: Float32Array, hz: number, rate: number): number {
  let re = 0, im = 0;
  for (let i = 0; i < samples.length; i++) {
    re += samples[i] * Math.cos(2 * Math.PI * hz * i / rate);
    im += samples[i] * Math.sin(2 * Math.PI * hz * i / rate);
  }
  return 2 * Math.hypot(re, im) / samples.length;
}

Deno.test("2× upsampling keeps a 1 kHz tone and adds no image at 7 kHz", () => {
  const up = new Upsampler2x();
  const input = sine(1000, 8000, 1);
  // Fed in 100 ms batches, as the engine does: the joins must not show.
  const parts = [];
  for (let i = 0; i < input.length; i += 800) parts.push(up.process(input.subarray(i, i + 800)));
  const out = new Float32Array(16000);
  parts.forEach((p, i) => out.set(p, i * 1600));
  const steady = out.subarray(1600);
  assert.ok(Math.abs(level(steady, 1000, 16000) - 0.5) < 0.01);
  // The zero-stuffing image of 1 kHz lands at 7 kHz; the low-pass removes it.
  assert.ok(level(steady, 7000, 16000) < 0.005);
});

Deno.test("batches of any size give the same output as one batch", () => {
  const input = sine(440, 8000, 0.2);
  const whole = new Upsampler2x().process(input);
  const up = new Upsampler2x();
  const pieces = [
    up.process(input.subarray(0, 7)),
    up.process(input.subarray(7, 900)),
    up.process(input.subarray(900)),
  ];
  const joined = new Float32Array(whole.length);
  let offset = 0;
  for (const p of pieces) {
    joined.set(p, offset);
    offset += p.length;
  }
  for (let i = 0; i < whole.length; i++) assert.ok(Math.abs(whole[i] - joined[i]) < 1e-6);
});
