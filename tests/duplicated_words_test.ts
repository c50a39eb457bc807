import assert from "node:assert/strict";
import { duplicatedWords } from "../lib/metrics/duplicated_words.ts";
import type { Transcript } from "../lib/transcribe/engine.ts";

const final = (track: "inbound" | "outbound", text: string, startMs: number, endMs: number) =>
  ({ type: "final", track, text, startMs, endMs, words: [] }) satisfies Transcript;

Deno.test("duplicated words: an inbound final's words in an outbound final within 1 s, each used once", () => {
  const inbound = [final("inbound", "How can I help you today?", 2000, 3700)];
  assert.deepEqual(
    duplicatedWords(inbound, [final("outbound", "how can I help", 3900, 4600)]),
    ["how", "can", "i", "help"],
  );
  // 1.2 s after the inbound final ends: not its echo.
  assert.deepEqual(duplicatedWords(inbound, [final("outbound", "how can I", 4900, 5600)]), []);
  // One outbound "you" matches one inbound "you", not two.
  assert.deepEqual(
    duplicatedWords([final("inbound", "you and you", 0, 1000)], [final("outbound", "you", 0, 500)]),
    ["you"],
  );
});
