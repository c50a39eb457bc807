import assert from "node:assert/strict";
import { normalizeWords, numberToWords, wordErrorRate } from "../lib/metrics/wer.ts";

Deno.test("normalisation ignores case and punctuation and reads numbers", () => {
  assert.deepEqual(normalizeWords("Press 1, or Press 42!"), [
    "press",
    "one",
    "or",
    "press",
    "forty",
    "two",
  ]);
  assert.deepEqual(normalizeWords("Don't 'quote' me"), ["don't", "quote", "me"]);
  assert.equal(numberToWords("105"), "one hundred five");
  assert.equal(numberToWords("5551234"), "five five five one two three four");
});

Deno.test("word error rate counts substitutions, deletions and insertions", () => {
  assert.equal(wordErrorRate("the cat sat", "the cat sat").wer, 0);
  assert.equal(wordErrorRate("the cat sat", "the hat sat").errors, 1);
  assert.equal(wordErrorRate("the cat sat", "the sat").errors, 1);
  assert.equal(wordErrorRate("the cat sat", "the cat sat down here").errors, 2);
  assert.equal(wordErrorRate("a b c d", "").wer, 1);
  assert.equal(wordErrorRate("", "").wer, 0);
});
