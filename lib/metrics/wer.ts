/**
 * Word error rate, for tests and benchmarks: (substitutions + deletions +
 * insertions) / reference words, after normalising case, punctuation and
 * numbers.
 *
 * @module
 */

/** The number words from zero to nineteen, each at its value's index. */
export const ONES: readonly string[] = [
  "zero",
  "one",
  "two",
  "three",
  "four",
  "five",
  "six",
  "seven",
  "eight",
  "nine",
  "ten",
  "eleven",
  "twelve",
  "thirteen",
  "fourteen",
  "fifteen",
  "sixteen",
  "seventeen",
  "eighteen",
  "nineteen",
];
const TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];

/** 0–999 as words (`42` → `forty two`); longer numbers are read digit by digit, as on a phone. */
export function numberToWords(digits: string): string {
  const n = Number(digits);
  if (digits.length > 3 || (digits.length > 1 && digits.startsWith("0"))) {
    return [...digits].map((d) => ONES[Number(d)]).join(" ");
  }
  if (n < 20) return ONES[n];
  if (n < 100) return TENS[Math.floor(n / 10)] + (n % 10 ? " " + ONES[n % 10] : "");
  const rest = n % 100;
  return ONES[Math.floor(n / 100)] + " hundred" + (rest ? " " + numberToWords(String(rest)) : "");
}

/** Lower case, numbers as words, no punctuation (apostrophes inside words kept). */
export function normalizeWords(text: string): string[] {
  return text
    .toLowerCase()
    .replace(/\d+/g, (d) => ` ${numberToWords(d)} `)
    .replace(/[^a-z' ]+/g, " ")
    .replace(/(^|\s)'+|'+(?=\s|$)/g, " ")
    .split(/\s+/)
    .filter(Boolean);
}

/** Edit counts between a reference and a hypothesis. */
export interface WerResult {
  wer: number;
  errors: number;
  referenceWords: number;
}

/** Word error rate of `hypothesis` against `reference` (both free text). */
export function wordErrorRate(reference: string, hypothesis: string): WerResult {
  const ref = normalizeWords(reference);
  const hyp = normalizeWords(hypothesis);
  let previous = Array.from({ length: hyp.length + 1 }, (_, j) => j);
  for (let i = 1; i <= ref.length; i++) {
    const current = [i];
    for (let j = 1; j <= hyp.length; j++) {
      const substitution = previous[j - 1] + (ref[i - 1] === hyp[j - 1] ? 0 : 1);
      current[j] = Math.min(substitution, previous[j] + 1, current[j - 1] + 1);
    }
    previous = current;
  }
  const errors = previous[hyp.length];
  return {
    wer: ref.length ? errors / ref.length : hyp.length ? 1 : 0,
    errors,
    referenceWords: ref.length,
  };
}
