/**
 * Token-to-word conversion: the recognizer's BPE tokens and their times
 * become words with times on the track's clock, and text in sentence case.
 *
 * @module
 */
import type { Word } from "./engine.ts";
import type { RecognizerResult } from "./recognizer.ts";

/** Assumed length of a word's last token, in ms, for the word's end time. */
const LAST_TOKEN_MS = 160;

/**
 * Groups BPE tokens into words (a token starting with a space starts a word)
 * and turns token times (seconds from the segment start) into ms from the
 * start of the track.
 */
export function tokensToWords(result: RecognizerResult, tokenDelayMs: number): Word[] {
  const words: Word[] = [];
  const base = result.start_time * 1000 - tokenDelayMs;
  let current: { text: string; first: number; last: number; logProb: number; n: number } | null =
    null;
  const finish = () => {
    if (!current || !current.text) return;
    words.push({
      text: current.text.toLowerCase(),
      startMs: Math.max(0, Math.round(base + current.first * 1000)),
      endMs: Math.max(0, Math.round(base + current.last * 1000 + LAST_TOKEN_MS)),
      confidence: Math.round(Math.exp(current.logProb / current.n) * 1000) / 1000,
    });
  };
  result.tokens.forEach((token, i) => {
    const time = result.timestamps[i] ?? 0;
    const logProb = result.ys_probs?.[i] ?? 0;
    if (current === null || token.startsWith(" ")) {
      finish();
      current = { text: token.trim(), first: time, last: time, logProb, n: 1 };
    } else {
      current.text += token;
      current.last = time;
      current.logProb += logProb;
      current.n += 1;
    }
  });
  finish();
  // A word ends no later than the next one starts; times never go backwards.
  for (let i = 0; i < words.length; i++) {
    if (i > 0 && words[i].startMs < words[i - 1].startMs) words[i].startMs = words[i - 1].startMs;
    const next = words[i + 1];
    if (next && words[i].endMs > next.startMs) {
      words[i].endMs = Math.max(words[i].startMs, next.startMs);
    }
  }
  return words;
}

/** `WHY SHOULD I` -> `Why should I`: the model has no case or punctuation. */
export function sentenceCase(text: string): string {
  const lower = text.toLowerCase().replace(/\bi\b/g, "I").replace(/\bi'/g, "I'");
  return lower.charAt(0).toUpperCase() + lower.slice(1);
}
