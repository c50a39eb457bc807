import assert from "node:assert/strict";
import { fractionalSample, fractionalWeights } from "../lib/audio/fractional.ts";

Deno.test("a phone-band sine read between its samples is the sine there, at every fraction", () => {
  for (const hz of [300, 1000, 3000]) {
    const w = (2 * Math.PI * hz) / 8000;
    const sample = (i: number) => Math.sin(w * i);
    for (const t of [100, 100.1, 100.25, 100.5, 100.9, 100.999]) {
      assert.ok(Math.abs(fractionalSample(sample, t) - Math.sin(w * t)) < 0.02, `${hz} Hz at ${t}`);
    }
  }
});

Deno.test("the weights at fraction 0 pick the sample itself; at any fraction they sum to about 1", () => {
  const at0 = fractionalWeights(0);
  assert.equal(at0[7], 1);
  assert.ok(at0.every((x, k) => k === 7 || Math.abs(x) < 1e-12));
  const sum = fractionalWeights(0.37).reduce((s, x) => s + x, 0);
  assert.ok(Math.abs(sum - 1) < 0.01, `sum ${sum}`);
});
