/**
 * Finds sensitive entities in a run of transcript words, spoken ("four one
 * one one", "double four", "forty two", "oh", "john at example dot com") or
 * written ("4111-1111…", "john@example.com"). Works on word tokens so that
 * every entity maps back to the words (and their times) it covers.
 *
 * Rules (low false positives on ordinary speech first):
 * - card: a run of 13–19 digits that passes the Luhn check (a part of a
 *   longer run too), or any run of 8+ digits within a few words after
 *   "card", "visa", "credit", … (a misheard or dropped digit fails Luhn; the
 *   run is still a card).
 * - ssn: written `123-45-6789`; spoken, a run of 7–11 digits within a few
 *   words after "social security", "social" or "SSN".
 * - phone: 10 digits of a North American number (area code and exchange
 *   start 2–9), 11 starting with 1, or 8–15 digits after "plus" / "+".
 * - cvv: 3–4 digits after "security code", "CVV", "CVC", or right after a card.
 * - expiry: after "expires", "expiration", "valid thru" or right after a card:
 *   4 digits whose first two are a month ("oh four twenty eight"), or a
 *   month name and year, or written `04/28`.
 * - dob: a date (month name, day, year, digits, or written) after "born",
 *   "birth", "birthday" or "DOB" (also spelled: "d oh b").
 * - email: written `a@b.c`; spoken `local at domain dot tld` with a known
 *   top-level domain, the local part a word or spelled letters.
 *
 * @module
 */
import type { RedactPolicy } from "./policies.ts";

/** An entity found: tokens `[start, end)` of the input. */
export interface EntitySpan {
  start: number;
  end: number;
  policy: RedactPolicy;
}

const UNITS: Record<string, string> = {
  zero: "0",
  oh: "0",
  o: "0",
  one: "1",
  two: "2",
  three: "3",
  four: "4",
  for: "4",
  five: "5",
  six: "6",
  seven: "7",
  eight: "8",
  nine: "9",
};
const TEENS: Record<string, string> = {
  ten: "10",
  eleven: "11",
  twelve: "12",
  thirteen: "13",
  fourteen: "14",
  fifteen: "15",
  sixteen: "16",
  seventeen: "17",
  eighteen: "18",
  nineteen: "19",
};
const TENS: Record<string, string> = {
  twenty: "2",
  thirty: "3",
  forty: "4",
  fourty: "4",
  fifty: "5",
  sixty: "6",
  seventy: "7",
  eighty: "8",
  ninety: "9",
};
const REPEAT: Record<string, number> = { double: 2, triple: 3 };
/** Words that may sit inside a number run without ending it. */
const RUN_FILLERS = new Set(["dash", "hyphen", "uh", "um", "er", "ah", "-"]);
/** "oh" and "o" (and "for") are digits only beside other digits; alone they are words. */
const WEAK_DIGITS = new Set(["oh", "o", "for"]);

const MONTHS = new Set([
  "january",
  "february",
  "march",
  "april",
  "may",
  "june",
  "july",
  "august",
  "september",
  "october",
  "november",
  "december",
  "jan",
  "feb",
  "mar",
  "apr",
  "jun",
  "jul",
  "aug",
  "sep",
  "sept",
  "oct",
  "nov",
  "dec",
]);
const ORDINALS = new Set([
  "first",
  "second",
  "third",
  "fourth",
  "fifth",
  "sixth",
  "seventh",
  "eighth",
  "ninth",
  "tenth",
  "eleventh",
  "twelfth",
  "thirteenth",
  "fourteenth",
  "fifteenth",
  "sixteenth",
  "seventeenth",
  "eighteenth",
  "nineteenth",
  "twentieth",
  "thirtieth",
]);
const TLDS = new Set([
  "com",
  "org",
  "net",
  "edu",
  "gov",
  "io",
  "co",
  "uk",
  "us",
  "de",
  "fr",
  "ca",
  "au",
  "info",
  "biz",
  "me",
  "ai",
  "dev",
  "app",
]);
/** Words that end up before "at … dot com" in speech without being an address ("look at this"). */
const NOT_LOCAL_PARTS = new Set([
  "this",
  "that",
  "it",
  "the",
  "me",
  "him",
  "her",
  "us",
  "them",
  "you",
  "look",
  "home",
  "least",
  "all",
]);
const EMAIL_JOINERS = new Set(["dot", "underscore", "dash", "hyphen", "period"]);

/** Keywords that put digits after them in a policy's context; each a list of words in a row. */
const CONTEXT: Record<"card" | "ssn" | "cvv" | "expiry" | "dob" | "phone", string[][]> = {
  card: [["card"], ["visa"], ["mastercard"], ["amex"], ["american", "express"], ["discover"], [
    "credit",
  ], ["debit"]],
  ssn: [["social", "security"], ["social"], ["ssn"], ["s", "s", "n"]],
  cvv: [["security", "code"], ["cvv"], ["cvc"], ["cvv2"], ["verification", "code"], [
    "code",
    "on",
    "the",
    "back",
  ], ["three", "digit", "code"]],
  expiry: [
    ["expires"],
    ["expiry"],
    ["expiration"],
    ["expire"],
    ["exp"],
    ["valid", "thru"],
    [
      "valid",
      "through",
    ],
    ["good", "thru"],
    ["good", "through"],
  ],
  // "d o b" spelled: the local engine heard it as "D Oh B", and after a sentence "The Oh B".
  dob: [["born"], ["birth"], ["birthday"], ["dob"], ["d", "o", "b"], ["the", "o", "b"], [
    "birthdate",
  ]],
  phone: [["plus"], ["+"]],
};
/** How many words before an entity its keyword may be. */
const CONTEXT_WORDS = 10;
/**
 * Digits a run needs after a card keyword to be a card without passing Luhn:
 * the local engine drops a digit said twice in a row ("one one" → "One"), so
 * a card read aloud often comes out short.
 */
const MIN_CARD_CONTEXT_DIGITS = 8;
/** How many words after a card a CVV or expiry may come without its own keyword. */
const AFTER_CARD_WORDS = 12;

/** A token in lower case without surrounding punctuation (inner `@ . - / +` kept). */
export function normalizeToken(token: string): string {
  return token.toLowerCase().replace(/^[^a-z0-9@+]+/, "").replace(/[^a-z0-9]+$/, "");
}

/** Digits of a written number token (`4111`, `4111-1111`, `(415)`, `04/28`), or null. */
function writtenDigits(token: string): string | null {
  return /^\+?\(?\d[\d\-./)]*$/.test(token) ? token.replace(/\D/g, "") : null;
}

/** How a card already redacted appears among earlier words (a CVV or expiry may follow it). */
export const CARD_MARK = "[card]";

/** True when a (normalized) token can be part of a number run. */
export function isNumberToken(token: string): boolean {
  return isNumberWord(token);
}

function isNumberWord(token: string): boolean {
  return token in UNITS || token in TEENS || token in TENS || token in REPEAT ||
    token === "hundred" || token === "thousand" || writtenDigits(token) !== null;
}

/** One piece of a number run: the digits of tokens `[start, end)`. */
interface Piece {
  digits: string;
  start: number;
  end: number;
}

/** A maximal run of number words, as pieces, and the tokens it spans. */
interface NumberRun {
  pieces: Piece[];
  start: number;
  end: number;
  digits: string;
}

/** Splits a spoken or written number run into pieces of digits ("forty two" → "42"). */
function parseRun(tokens: string[], start: number, end: number): Piece[] {
  const pieces: Piece[] = [];
  let i = start;
  while (i < end) {
    const t = tokens[i];
    const written = writtenDigits(t);
    if (written !== null) {
      pieces.push({ digits: written, start: i, end: i + 1 });
      i++;
    } else if (t in REPEAT && i + 1 < end && tokens[i + 1] in UNITS) {
      pieces.push({ digits: UNITS[tokens[i + 1]].repeat(REPEAT[t]), start: i, end: i + 2 });
      i += 2;
    } else if (t in UNITS || t in TEENS || t in TENS) {
      let digits: string;
      let next = i + 1;
      if (t in TENS) {
        const unit = tokens[next];
        if (unit in UNITS && UNITS[unit] !== "0" && !WEAK_DIGITS.has(unit)) {
          digits = TENS[t] + UNITS[unit];
          next++;
        } else digits = TENS[t] + "0";
      } else digits = t in UNITS ? UNITS[t] : TEENS[t];
      // "four hundred (and) twelve": the hundreds take the next two digits' places.
      if (tokens[next] === "hundred" && digits.length === 1) {
        next++;
        let rest = "00";
        let after = next;
        if (tokens[after] === "and") after++;
        const tail = after < end ? parseRun(tokens, after, Math.min(end, after + 2))[0] : undefined;
        if (tail && tail.digits.length <= 2 && !(tokens[after] in REPEAT)) {
          rest = tail.digits.padStart(2, "0");
          next = tail.end;
        }
        digits += rest;
      } else if (tokens[next] === "thousand") {
        next++;
        let rest = "000";
        let after = next;
        if (tokens[after] === "and") after++;
        const tail = after < end ? parseRun(tokens, after, end)[0] : undefined;
        if (tail && tail.digits.length <= 3) {
          rest = tail.digits.padStart(3, "0");
          next = tail.end;
        }
        digits += rest;
      }
      pieces.push({ digits, start: i, end: next });
      i = next;
    } else i++; // a filler inside the run, or "hundred" with nothing before it
  }
  return pieces;
}

/** For each token, whether it is part of a run of number words ("oh" only beside digits). */
export function numberRunMask(tokens: string[]): boolean[] {
  const mask = tokens.map(() => false);
  for (const run of numberRuns(tokens)) mask.fill(true, run.start, run.end);
  return mask;
}

/** The number runs of a token list. */
function numberRuns(tokens: string[]): NumberRun[] {
  const runs: NumberRun[] = [];
  const numeric = tokens.map((t, i) => {
    if (!isNumberWord(t)) return false;
    if (!WEAK_DIGITS.has(t)) return true;
    // "oh" counts only beside a strong digit word (skipping other weak ones).
    const strong = (j: number) => j >= 0 && j < tokens.length && isNumberWord(tokens[j]);
    let l = i - 1;
    while (l >= 0 && WEAK_DIGITS.has(tokens[l])) l--;
    let r = i + 1;
    while (r < tokens.length && WEAK_DIGITS.has(tokens[r])) r++;
    return strong(l) || strong(r);
  });
  let i = 0;
  while (i < tokens.length) {
    if (!numeric[i]) {
      i++;
      continue;
    }
    let end = i + 1;
    for (;;) {
      if (end < tokens.length && numeric[end]) end++;
      else if (
        end + 1 < tokens.length && RUN_FILLERS.has(tokens[end]) && numeric[end + 1]
      ) end += 2;
      else break;
    }
    const pieces = parseRun(tokens, i, end);
    runs.push({ pieces, start: i, end, digits: pieces.map((p) => p.digits).join("") });
    i = end;
  }
  return runs;
}

/** True when the digits pass the Luhn check. */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return digits.length > 0 && sum % 10 === 0;
}

/** True when a keyword of `kind` ends within {@link CONTEXT_WORDS} before `at`. */
function hasContext(tokens: string[], at: number, kind: keyof typeof CONTEXT): boolean {
  return contextDistance(tokens, at, kind) <= CONTEXT_WORDS;
}

/** Words from the end of the nearest keyword of `kind` before `at` to `at` (Infinity: none near). */
function contextDistance(tokens: string[], at: number, kind: keyof typeof CONTEXT): number {
  let best = Infinity;
  for (const phrase of CONTEXT[kind]) {
    for (let i = Math.max(0, at - CONTEXT_WORDS - phrase.length); i + phrase.length <= at; i++) {
      if (phrase.every((w, k) => tokens[i + k] === w || isSpelled(tokens[i + k], w))) {
        best = Math.min(best, at - i - phrase.length);
      }
    }
  }
  return best;
}

/** True when `token` says the one letter `letter` ("oh" for o in "d oh b"). */
function isSpelled(token: string | undefined, letter: string): boolean {
  return letter.length === 1 && spelledLetter(token) === letter;
}

/** The part of a run (whole pieces) of 13–19 digits passing Luhn, if any. */
function luhnPart(run: NumberRun): { start: number; end: number } | null {
  // The usual lengths first (16, then 15 for Amex), then the longest: a longer part that
  // passes by chance would take the expiry read after the card.
  const rank = (length: number) => (length === 16 ? 30 : length === 15 ? 20 : length);
  let best: { start: number; end: number; rank: number } | null = null;
  for (let a = 0; a < run.pieces.length; a++) {
    let digits = "";
    for (let b = a; b < run.pieces.length; b++) {
      digits += run.pieces[b].digits;
      if (digits.length > 19) break;
      if (digits.length >= 13 && luhnValid(digits) && (!best || rank(digits.length) > best.rank)) {
        best = { start: run.pieces[a].start, end: run.pieces[b].end, rank: rank(digits.length) };
      }
    }
  }
  return best && { start: best.start, end: best.end };
}

/**
 * True when the tokens end in a whole card: a run whose last 16 digits (15
 * for American Express, 34… or 37…) pass Luhn and end at the last token.
 * More digits after it would be an expiry or a CVV, not more of the card.
 */
export function endsInCard(tokens: string[]): boolean {
  const run = numberRuns(tokens).at(-1);
  if (!run || run.end !== tokens.length) return false;
  let digits = "";
  for (let p = run.pieces.length - 1; p >= 0 && digits.length < 16; p--) {
    digits = run.pieces[p].digits + digits;
    const amex = digits.length === 15 && /^3[47]/.test(digits);
    if ((digits.length === 16 || amex) && luhnValid(digits)) return true;
  }
  return false;
}

/**
 * The last piece of an expiry when the pieces are an expiry (4 digits, a
 * month first) then a CVV (3–4 digits), else -1.
 */
function expiryCvvSplit(pieces: Piece[]): number {
  let head = "";
  for (let k = 0; k < pieces.length - 1 && head.length < 4; k++) {
    head += pieces[k].digits;
    if (head.length !== 4) continue;
    const tail = pieces.slice(k + 1).reduce((n, p) => n + p.digits.length, 0);
    return looksLikeExpiry(head) && (tail === 3 || tail === 4) ? k : -1;
  }
  return -1;
}

/** True when digits look like a month then a year: `0428`, `428`, `042028`. */
function looksLikeExpiry(digits: string): boolean {
  const month = digits.length === 3 || digits.length === 5
    ? Number(digits.slice(0, 1))
    : Number(digits.slice(0, 2));
  return [3, 4, 5, 6].includes(digits.length) && month >= 1 && month <= 12;
}

/**
 * The entities in `tokens` (normalized with {@link normalizeToken}) for the
 * given policies, in order and without overlaps.
 */
export function findEntities(tokens: string[], policies: ReadonlySet<RedactPolicy>): EntitySpan[] {
  const spans: EntitySpan[] = [];
  const taken = new Uint8Array(tokens.length);
  const add = (start: number, end: number, policy: RedactPolicy) => {
    if (!policies.has(policy) || end <= start) return false;
    for (let i = start; i < end; i++) if (taken[i]) return false;
    taken.fill(1, start, end);
    spans.push({ start, end, policy });
    return true;
  };
  const runs = numberRuns(tokens);
  /** End of each card found (for CVV and expiry after it). */
  const cardEnds: number[] = [];
  tokens.forEach((t, i) => t === CARD_MARK && cardEnds.push(i + 1));
  const afterCard = (at: number) =>
    cardEnds.some((end) => at >= end && at - end <= AFTER_CARD_WORDS);

  // "plus four four …": an international number, before anything else claims its digits.
  for (const run of runs) {
    const n = run.digits.length;
    const plus = run.start > 0 &&
      (tokens[run.start - 1] === "plus" || tokens[run.start - 1] === "+");
    if ((plus || tokens[run.start].startsWith("+")) && n >= 8 && n <= 15) {
      add(plus ? run.start - 1 : run.start, run.end, "phone");
    }
  }
  // Cards: a Luhn-valid part (with the digits before it: a card misheard at its start).
  for (const run of runs) {
    if (taken[run.start]) continue;
    const part = luhnPart(run);
    if (part) {
      add(run.start, part.end, "card");
      cardEnds.push(part.end);
    }
  }
  // Written SSNs need no keyword; their shape says it.
  tokens.forEach((t, i) => {
    if (/^\d{3}-\d{2}-\d{4}$/.test(t)) add(i, i + 1, "ssn");
  });
  for (const run of runs) {
    if (taken[run.start]) continue;
    const n = run.digits.length;
    if (n >= 7 && n <= 11 && hasContext(tokens, run.start, "ssn")) {
      add(run.start, run.end, "ssn");
    } else if (
      n >= MIN_CARD_CONTEXT_DIGITS && hasContext(tokens, run.start, "card") &&
      !afterCard(run.start) // the keyword was the card's before it, not this run's
    ) {
      add(run.start, run.end, "card");
      cardEnds.push(run.end);
    } else if (
      n >= 7 && !hasContext(tokens, run.start, "dob") &&
      !tokens.slice(run.start, run.end).some((t) => /\d[/.]\d/.test(t)) &&
      // An expiry and a CVV read after a card (judged below), not an identifier.
      !(afterCard(run.start) && expiryCvvSplit(run.pieces) >= 0)
    ) {
      // No keyword: a long run read out is an identifier; its length says which is likeliest
      // (the engine may have dropped a digit or two). Runs of years ("nineteen eighty
      // nineteen ninety") are not read digit by digit, so they need 12 digits.
      const byDigit = run.pieces.some((p) => writtenDigits(tokens[p.start]) !== null) ||
        run.pieces.filter((p) => p.digits.length === 1).length >= run.pieces.length * 0.6;
      const nanp = (d: string) => d.length === 10 && d[0] >= "2" && d[3] >= "2";
      if (n >= 12) {
        if (add(run.start, run.end, "card")) cardEnds.push(run.end);
      } else if (nanp(run.digits) || (n === 11 && nanp(run.digits.slice(1)))) {
        add(run.start, run.end, "phone");
      } else if (byDigit) add(run.start, run.end, n === 9 ? "ssn" : "phone");
    }
  }
  // CVV and expiry: after their keyword, or right after a card.
  const classify = (digits: string, start: number): RedactPolicy | null => {
    const expiry = contextDistance(tokens, start, "expiry");
    const cvv = contextDistance(tokens, start, "cvv");
    const short = digits.length === 3 || digits.length === 4;
    // The nearer keyword decides ("expires … security code one two three" is a CVV).
    if (expiry < cvv && looksLikeExpiry(digits)) return "expiry";
    if (cvv < expiry && short) return "cvv";
    if (afterCard(start) && short) {
      return digits.length === 4 && looksLikeExpiry(digits) ? "expiry" : "cvv";
    }
    return null;
  };
  for (const run of runs) {
    const withCard = cardEnds.some((end) => end > run.start && end <= run.end);
    for (const group of leftover(run, taken)) {
      const digits = group.map((p) => p.digits).join("");
      const start = group[0].start;
      const end = group.at(-1)!.end;
      const policy = classify(digits, start);
      if (policy) {
        add(start, end, policy);
        continue;
      }
      // Expiry and CVV read on after the card without a pause: "… oh four two eight seven two four".
      const split = expiryCvvSplit(group);
      if (afterCard(start) && split >= 0) {
        add(start, group[split].end, "expiry");
        add(group[split + 1].start, end, "cvv");
        continue;
      }
      // Anything else read in the same breath as a card is the card's.
      if (withCard) add(start, end, "card");
    }
  }
  // Dates: an expiry in words ("april twenty twenty eight") and dates of birth.
  for (let i = 0; i < tokens.length; i++) {
    if (taken[i] || !isDateWord(tokens[i])) continue;
    let end = i;
    while (
      end < tokens.length && !taken[end] && (isDateWord(tokens[end]) || isDateJoiner(tokens, end))
    ) {
      end++;
    }
    while (end > i && isDateJoiner(tokens, end - 1)) end--;
    const span = tokens.slice(i, end);
    const hasMonth = span.some((t) => MONTHS.has(t));
    const digits = numberRuns(span).reduce((n, r) => n + r.digits.length, 0) +
      span.filter((t) => ORDINALS.has(t)).length;
    if (!(hasMonth ? span.length >= 2 : digits >= 4 || span.some((t) => /\d[/.-]\d/.test(t)))) {
      i = end;
      continue;
    }
    if (hasContext(tokens, i, "dob")) add(i, end, "dob");
    else if (hasContext(tokens, i, "expiry") || afterCard(i)) add(i, end, "expiry");
    i = end;
  }
  findEmails(tokens, add);
  return spans.sort((a, b) => a.start - b.start);
}

/** The pieces of a run no entity has taken, in groups of adjacent ones. */
function leftover(run: NumberRun, taken: Uint8Array): Piece[][] {
  const out: Piece[][] = [];
  for (const piece of run.pieces) {
    if (taken[piece.start]) continue;
    const last = out.at(-1);
    if (last && last.at(-1)!.end >= piece.start - 1) last.push(piece);
    else out.push([piece]);
  }
  return out;
}

function isDateWord(token: string): boolean {
  return MONTHS.has(token) || ORDINALS.has(token) || isNumberWord(token) ||
    /^\d{1,4}([/.-]\d{1,4}){1,2}$/.test(token);
}

function isDateJoiner(tokens: string[], i: number): boolean {
  const t = tokens[i];
  return (t === "of" || t === "the" || t === "slash" || t === "and") &&
    i + 1 < tokens.length && isDateWord(tokens[i + 1]);
}

/**
 * Words a recognizer writes for a letter said alone ("see" for c, "age" for
 * h, "em" for m): in a spelled address they are its letters. The local engine
 * heard "j o h n at e x dot c o m" read letter by letter as "J Oh Age M Add E
 * X Dot See Oh M".
 */
const LETTER_WORDS: Record<string, string> = {
  ay: "a",
  bee: "b",
  be: "b",
  see: "c",
  sea: "c",
  dee: "d",
  ef: "f",
  eff: "f",
  gee: "g",
  age: "h",
  aitch: "h",
  eye: "i",
  jay: "j",
  kay: "k",
  el: "l",
  em: "m",
  en: "n",
  oh: "o",
  pee: "p",
  pea: "p",
  queue: "q",
  cue: "q",
  are: "r",
  es: "s",
  ess: "s",
  tee: "t",
  tea: "t",
  you: "u",
  vee: "v",
  ex: "x",
  why: "y",
  zee: "z",
  zed: "z",
};
/** "at" as the engine may hear it between spelled letters ("j o h n add e x dot …"). */
const SPELLED_AT = new Set(["at", "@", "add"]);

/** The letter a (normalized) token says when spelling: itself if one character, or a letter word's. */
function spelledLetter(token: string | undefined): string | undefined {
  if (token === undefined) return undefined;
  return /^[a-z0-9]$/.test(token) ? token : LETTER_WORDS[token];
}

/** True when a token may be part of an address being spelled (a letter, "at", "dot"…). */
export function isSpellingToken(token: string): boolean {
  return spelledLetter(token) !== undefined || SPELLED_AT.has(token) ||
    EMAIL_JOINERS.has(token);
}

/** Finds written and spoken e-mail addresses. */
function findEmails(
  tokens: string[],
  add: (start: number, end: number, policy: RedactPolicy) => boolean,
): void {
  const isLabel = (t: string | undefined) => t !== undefined && /^[a-z0-9][a-z0-9.-]*$/.test(t);
  const single = (j: number) => j >= 0 && j < tokens.length && /^[a-z0-9]$/.test(tokens[j]);
  const letter = (j: number) => j >= 0 && spelledLetter(tokens[j]) !== undefined;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (/^[^@\s]+@[^@\s]+\.[a-z]{2,}$/.test(t)) {
      add(i, i + 1, "email");
      continue;
    }
    if (!SPELLED_AT.has(t)) continue;
    // The domain: labels (words, or letters spelled one by one) joined by "dot", the last
    // one a known top-level domain.
    let end = i + 1;
    let k = i + 1;
    for (let labels = 0;; labels++) {
      let label = "";
      // Spelled: letter words count only beside a letter said alone, or spelling a
      // top-level domain ("see oh em"), so that "at home dot …" stays a word.
      let spelled = "";
      let j = k;
      let singles = 0;
      while (letter(j)) {
        if (single(j)) singles++;
        spelled += spelledLetter(tokens[j++]);
      }
      // A spelled top-level domain may run into the words after it ("c o m you know").
      let tldEnd = -1;
      for (let p = j; p > k && tldEnd < 0; p--) {
        if (TLDS.has(spelled.slice(0, p - k))) tldEnd = p;
      }
      if (spelled && (singles > 0 || tldEnd === j) && (j - k > 1 || singles > 0)) {
        label = spelled;
        k = j;
      } else if (isLabel(tokens[k]) && !EMAIL_JOINERS.has(tokens[k])) {
        label = tokens[k++];
        tldEnd = -1;
      } else break;
      const tld = label.split(".").at(-1)!;
      if (TLDS.has(tld) && (labels > 0 || label.includes("."))) end = k;
      else if (tldEnd > 0 && labels > 0) end = tldEnd;
      if (tokens[k] !== "dot") break;
      k++;
    }
    if (end === i + 1) continue;
    // The local part: spelled letters (and digits, dots) or a word, back from "at".
    let start = i - 1;
    if (start < 0 || !isLabel(tokens[start])) continue;
    // Spelled: at least two letters said alone (not "a" or "i", words of their own), so
    // that "see you at …" is not taken for letters.
    let from = i;
    let alone = 0;
    while (letter(from - 1) || (EMAIL_JOINERS.has(tokens[from - 1]) && letter(from - 2))) {
      from--;
      if (single(from) && tokens[from] !== "a" && tokens[from] !== "i") alone++;
    }
    if (alone >= 2) {
      start = from;
      // Letter words before the first letter said alone are words ("thank you j o h n").
      while (!single(start)) start++;
    } else if (t === "add") continue;
    else if (single(start)) {
      while (single(start - 1) || (EMAIL_JOINERS.has(tokens[start - 1]) && single(start - 2))) {
        start--;
      }
    } else {
      if (NOT_LOCAL_PARTS.has(tokens[start])) continue;
      while (tokens[start - 1] === "dot" && isLabel(tokens[start - 2])) start -= 2;
    }
    add(start, end, "email");
    i = end - 1;
  }
}
