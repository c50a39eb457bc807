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

/** One step of a word alignment: a word kept, substituted, deleted or inserted. */
export interface AlignedWord {
  /** The reference's word (undefined: inserted). */
  reference?: string;
  /** The hypothesis's word (undefined: deleted). */
  hypothesis?: string;
  /** Index of the reference word (for an insertion, of the next reference word). */
  at: number;
}

/**
 * The minimum-edit alignment of a hypothesis to a reference (both free text), word by word:
 * which words were lost, changed or added, for reading a WER's errors.
 */
export function alignWords(reference: string, hypothesis: string): AlignedWord[] {
  const ref = normalizeWords(reference);
  const hyp = normalizeWords(hypothesis);
  const cost = Array.from({ length: ref.length + 1 }, () => new Int32Array(hyp.length + 1));
  for (let j = 0; j <= hyp.length; j++) cost[0][j] = j;
  for (let i = 1; i <= ref.length; i++) {
    cost[i][0] = i;
    for (let j = 1; j <= hyp.length; j++) {
      cost[i][j] = Math.min(
        cost[i - 1][j - 1] + (ref[i - 1] === hyp[j - 1] ? 0 : 1),
        cost[i - 1][j] + 1,
        cost[i][j - 1] + 1,
      );
    }
  }
  const steps: AlignedWord[] = [];
  let i = ref.length;
  let j = hyp.length;
  // Ties go to a kept word, then to a word lost or added, then to a changed one: "a b c" heard
  // as "a c d" reads as b lost and d added, not as two words changed.
  while (i > 0 || j > 0) {
    if (i > 0 && j > 0 && ref[i - 1] === hyp[j - 1] && cost[i][j] === cost[i - 1][j - 1]) {
      steps.push({ reference: ref[i - 1], hypothesis: hyp[j - 1], at: i - 1 });
      i--;
      j--;
    } else if (i > 0 && cost[i][j] === cost[i - 1][j] + 1) {
      steps.push({ reference: ref[i - 1], at: i - 1 });
      i--;
    } else if (j > 0 && cost[i][j] === cost[i][j - 1] + 1) {
      steps.push({ hypothesis: hyp[j - 1], at: i });
      j--;
    } else {
      steps.push({ reference: ref[i - 1], hypothesis: hyp[j - 1], at: i - 1 });
      i--;
      j--;
    }
  }
  return steps.reverse();
}
