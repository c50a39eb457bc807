import assert from "node:assert/strict";
import { alignWords, wordErrorRate } from "../lib/metrics/wer.ts";

Deno.test("word alignment: the words lost, changed and added, as many as the WER's errors", () => {
  const reference = "Press 1 to accept this recording";
  const hypothesis = "press one to except recording please";
  const steps = alignWords(reference, hypothesis);
  const errors = steps.filter((s) => s.reference !== s.hypothesis);
  assert.deepEqual(errors, [
    { reference: "accept", hypothesis: "except", at: 3 },
    { reference: "this", at: 4 },
    { hypothesis: "please", at: 6 },
  ]);
  assert.equal(errors.length, wordErrorRate(reference, hypothesis).errors);
  // Every reference word appears once, in order.
  assert.deepEqual(
    steps.filter((s) => s.reference !== undefined).map((s) => s.reference),
    ["press", "one", "to", "accept", "this", "recording"],
  );
  assert.deepEqual(alignWords("", "hello"), [{ hypothesis: "hello", at: 0 }]);
});
