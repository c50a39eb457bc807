/** Payload views from a slab are the caller's for good: never shared, never written again. */
import assert from "node:assert/strict";
import { PayloadSlab } from "../lib/twilio/payload_slab.ts";

Deno.test("views never overlap, and one filled stays as it was while later ones are taken", () => {
  const slab = new PayloadSlab();
  const taken: Uint8Array[] = [];
  for (let i = 0; i < 200; i++) {
    const view = slab.take(160 + (i % 3));
    assert.equal(view.length, 160 + (i % 3));
    assert.ok(view.every((b) => b === 0), "a fresh view is zero");
    view.fill(i);
    taken.push(view);
  }
  taken.forEach((view, i) => assert.ok(view.every((b) => b === i), `view ${i} was overwritten`));
});

Deno.test("a payload larger than a block gets an array of its own", () => {
  const slab = new PayloadSlab();
  const small = slab.take(10);
  const large = slab.take(100_000);
  assert.equal(large.length, 100_000);
  assert.notEqual(large.buffer, small.buffer);
  assert.equal(slab.take(10).buffer, small.buffer);
});
