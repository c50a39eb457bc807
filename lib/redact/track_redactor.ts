/**
 * Redacts one track's transcripts before anyone sees them: it sits between
 * the engine and the call's listeners (store, search index, printer, live
 * events, webhooks, exports), so they only ever get redacted text.
 *
 * A card read digit by digit comes out of the local engine as many short
 * finals ("Four", "Five two", …). A final that ends in a run of digits (or
 * in the middle of a spelled e-mail address) is held back until the run can
 * be judged: the next final that does not end in one, a whole card (16
 * digits passing Luhn, 15 for American Express), or {@link HOLD_MS} without
 * a new digit (partials with digits count: the next group is being read)
 * and the engine caught up with the audio.
 * The held finals and the one that closes the run go out as one final, where
 * a number read in {@link CARD_GROUPS} groups or more is a card if nothing
 * else took it. Finals without digits are never held while nothing is held.
 *
 * Partials never show what their final may redact: digit words, letters
 * said alone, and a spelled e-mail address in progress (while finals are
 * held, the words of letters too: "see", "oh") are left out of them.
 *
 * Each entity becomes its tag (`[CARD]`) as one word spanning the times of
 * the words it replaces; the other words keep their times.
 *
 * @module
 */
import type { Transcript, TranscriptSink, Word } from "../transcribe/engine.ts";
import {
  CARD_MARK,
  endsInCard,
  type EntitySpan,
  findEntities,
  isNumberToken,
  isSpellingToken,
  normalizeToken,
  numberRunMask,
} from "./find_entities.ts";
import { REDACT_POLICIES, REDACT_TAGS, type RedactPolicy } from "./policies.ts";
import { policyOfAssemblyAI } from "./assemblyai_policies.ts";

/**
 * How long a held run of digits waits for its next digit (wall clock, ms).
 * Read briskly, a group of repeated digits ("one one one one") comes out of
 * the local engine as one word at the group's end, 3.0 s after the previous
 * group's final, with no partial between: with 3 s the bench once judged
 * 4111 1111 1111 1111 group by group and let its digits out.
 */
export const HOLD_MS = 4000;
/** Finals in a row of nothing but a number's words that make a card, when no other rule took them. */
const CARD_GROUPS = 4;
/** Words of earlier finals kept as context ("my card number is" before the digits). */
const CONTEXT_TOKENS = 24;
/** A run held this long (in words) is judged anyway. */
const MAX_HELD_TOKENS = 120;

/** Where a redacted entity was, in ms of its track (for silencing the recording). */
export interface RedactedSpan {
  policy: RedactPolicy;
  startMs: number;
  endMs: number;
}

/** Options of a {@link TrackRedactor}. */
export interface TrackRedactorOptions {
  policies: readonly RedactPolicy[];
  /** Each entity redacted from a final, with its words' times. */
  onRedacted?: (span: RedactedSpan) => void;
  holdMs?: number;
  /**
   * Resolves once the engine has decoded the audio it was given (its
   * `whenCaughtUp`): a held run is judged only after that too, so an engine
   * running late on a loaded machine does not split a number whose next
   * digit it has not decoded yet.
   */
  caughtUp?: () => Promise<void>;
  /**
   * The margin `onRedacted`'s receiver silences after a span, ms: a number's
   * tag, reaching on to the next word, stops this much before it.
   */
  marginMs?: number;
}

/** A word as displayed (the transcript's own spelling) and as matched. */
interface Token {
  display: string;
  norm: string;
  word: Word;
  /** A tag put in here (not one the engine wrote). */
  tag?: boolean;
}

const TAG_POLICIES = new Map(REDACT_POLICIES.map((p) => [REDACT_TAGS[p], p]));

/** Redacts one track's transcripts on their way to `sink`. */
export class TrackRedactor implements TranscriptSink {
  #sink: TranscriptSink;
  #policies: ReadonlySet<RedactPolicy>;
  #numeric: boolean;
  #email: boolean;
  #onRedacted?: (span: RedactedSpan) => void;
  #holdMs: number;
  #caughtUp?: () => Promise<void>;
  #marginMs: number;
  #held: Transcript[] = [];
  #context: string[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  constructor(sink: TranscriptSink, options: TrackRedactorOptions) {
    this.#sink = sink;
    this.#policies = new Set(options.policies);
    this.#numeric = options.policies.some((p) => p !== "email");
    this.#email = this.#policies.has("email");
    this.#onRedacted = options.onRedacted;
    this.#holdMs = options.holdMs ?? HOLD_MS;
    this.#caughtUp = options.caughtUp;
    this.#marginMs = options.marginMs ?? 0;
  }

  /** Finals held back right now (waiting for their run to be judged). */
  get held(): number {
    return this.#held.length;
  }

  onTranscript(transcript: Transcript): void {
    if (this.#closed) return;
    if (transcript.type === "partial") return this.#partial(transcript);
    const tokens = tokensOf(transcript);
    this.#held.push(transcript);
    const heldTokens = this.#held.reduce((n, t) => n + tokensOf(t).length, 0);
    const norms = tokens.map((t) => t.norm);
    // A whole card heard needs no more waiting: what is read after it is judged with it as context.
    const card = this.#policies.has("card") &&
      endsInCard(this.#held.flatMap(tokensOf).map((t) => t.norm));
    if (this.#pending(norms) && !card && heldTokens < MAX_HELD_TOKENS) {
      this.#restartTimer();
      return;
    }
    this.#release();
  }

  onError(error: Error): void {
    this.#sink.onError?.(error);
  }

  /** Judges and emits whatever is held (the track ended). */
  flush(): void {
    this.#release();
    this.#closed = true;
  }

  /** True when the words end where more digits (or letters of an address) may follow. */
  #pending(norms: string[]): boolean {
    const last = norms.at(-1);
    if (last === undefined) return false;
    if (this.#numeric && isNumberToken(last)) return true;
    if (!this.#email) return false;
    // "j o h n at e x dot …": an address spelled over several finals; once one is held, a
    // final of letters alone goes on spelling it ("J", "Oh", "Age", "M", "Add", …).
    return last === "at" || last === "dot" || /^[a-z]$/.test(last) ||
      norms.slice(-2).includes("at") || (this.#held.length > 1 && norms.every(isSpellingToken));
  }

  #restartTimer(): void {
    clearTimeout(this.#timer);
    const timer = setTimeout(async () => {
      await this.#caughtUp?.();
      // Unless a final or a partial with digits came meanwhile (or the run went out).
      if (this.#timer === timer) this.#release();
    }, this.#holdMs);
    this.#timer = timer;
  }

  /** Judges the held finals as one run and emits them as one redacted final. */
  #release(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#held.length === 0) return;
    const held = this.#held;
    this.#held = [];
    const tokens = held.flatMap(tokensOf);
    if (tokens.length === 0) return;
    const out = this.#redact(tokens, true, this.#policies.has("card") ? readInGroups(held) : []);
    const last = held.at(-1)!;
    this.#sink.onTranscript({
      ...last,
      text: out.map((t) => t.display).join(" "),
      words: out.map((t) => t.word),
      startMs: Math.min(...held.map((t) => t.startMs)),
      endMs: Math.max(...held.map((t) => t.endMs)),
    });
  }

  /** Partials leave out digits and addresses in progress; entities found are tagged. */
  #partial(transcript: Transcript): void {
    const tokens = tokensOf(transcript);
    if (this.#held.length > 0 && tokens.some((t) => isNumberToken(t.norm))) this.#restartTimer();
    let out = this.#redact(tokens, false);
    if (this.#numeric) {
      const mask = numberRunMask(out.map((t) => t.norm));
      out = out.filter((_, i) => !mask[i]);
    }
    if (this.#email) {
      // From the address's first word (or first spelled letter) on.
      let cut = out.findIndex((t) => t.norm === "at" || t.norm.includes("@"));
      if (cut > 0) cut--;
      while (cut > 0 && /^[a-z0-9]$/.test(out[cut - 1].norm)) cut--;
      if (cut >= 0) out = out.slice(0, cut);
      // Letters said alone (not the words "a" and "I"), and while an address may be being
      // spelled over held finals, the words of letters too.
      const spelling = this.#held.length > 0;
      out = out.filter((t) =>
        !(/^[a-z]$/.test(t.norm) && t.norm !== "a" && t.norm !== "i") &&
        !(spelling && isSpellingToken(t.norm))
      );
    }
    if (out.length === 0) return;
    this.#sink.onTranscript({
      ...transcript,
      text: out.map((t) => t.display).join(" "),
      words: out.map((t) => t.word),
    });
  }

  /**
   * Replaces each entity in `tokens` by its tag; a final's also become
   * context. `groups` (token ranges of numbers read in groups) become cards
   * where nothing else was found in them.
   */
  #redact(tokens: Token[], final: boolean, groups: EntitySpan[] = []): Token[] {
    const context = this.#context;
    // An engine that redacts itself (AssemblyAI's `[CREDIT_CARD_NUMBER]`): its tags become ours.
    const theirs = tokens.flatMap((t, i) => {
      const name = /^\[([A-Z_]+)\][.,!?;:]*$/.exec(t.display)?.[1];
      const policy = name && policyOfAssemblyAI(name);
      return policy ? [{ start: i, end: i + 1, policy }] : [];
    });
    // Matched as ours would be: a card already tagged ends the card keyword's reach.
    const norms = tokens.map((t, i) => {
      const tag = theirs.find((s) => s.start === i);
      return tag
        ? (tag.policy === "card" ? CARD_MARK : REDACT_TAGS[tag.policy].toLowerCase())
        : t.norm;
    });
    const ours = findEntities([...context, ...norms], this.#policies)
      .map((s) => ({ ...s, start: s.start - context.length, end: s.end - context.length }))
      .filter((s) => s.end > 0)
      .map((s) => ({ ...s, start: Math.max(0, s.start) }))
      .filter((s) => !theirs.some((t) => t.start < s.end && s.start < t.end));
    const found = [...ours, ...theirs];
    const spans = [
      ...found,
      ...groups.filter((g) => !found.some((s) => s.start < g.end && g.start < s.end)),
    ].sort((a, b) => a.start - b.start);
    const out = applySpans(tokens, spans, this.#marginMs);
    if (final) {
      for (const t of out) {
        const policy = TAG_POLICIES.get(t.word.text);
        if (policy && t.tag) {
          this.#onRedacted?.({ policy, startMs: t.word.startMs, endMs: t.word.endMs });
        }
      }
      this.#context = [...context, ...out.map((t) => t.norm)].slice(-CONTEXT_TOKENS);
    }
    return out;
  }
}

/**
 * The token ranges (of the finals' tokens joined) where a number was read in
 * {@link CARD_GROUPS} or more groups: finals in a row of nothing but number
 * words. Read briskly, a group of repeated digits comes out of the local
 * engine as one word ("one one one one" → "One"): 4111 1111 1111 1111 read
 * in groups was heard as "Four one", "One", "One", "One", five digits, too
 * few for any rule on digits alone.
 */
function readInGroups(finals: Transcript[]): EntitySpan[] {
  const spans: EntitySpan[] = [];
  let at = 0;
  let start = 0;
  let count = 0;
  const close = () => {
    if (count >= CARD_GROUPS) spans.push({ start, end: at, policy: "card" });
    count = 0;
  };
  for (const final of finals) {
    const norms = tokensOf(final).map((t) => t.norm);
    const mask = numberRunMask(norms);
    if (norms.length > 0 && mask.every(Boolean)) {
      if (count === 0) start = at;
      count++;
    } else {
      close();
      // "My card is four one": the first group ends a final of other words.
      let first = norms.length;
      while (first > 0 && mask[first - 1]) first--;
      if (first < norms.length) {
        start = at + first;
        count = 1;
      }
    }
    at += norms.length;
  }
  close();
  return spans;
}

/** The tokens with each span replaced by one tag word spanning its words' times. */
function applySpans(tokens: Token[], spans: EntitySpan[], marginMs: number): Token[] {
  const out: Token[] = [];
  let i = 0;
  for (const span of spans) {
    out.push(...tokens.slice(i, span.start));
    const first = tokens[span.start].word;
    const last = tokens[span.end - 1];
    const tag = REDACT_TAGS[span.policy];
    // Punctuation after the last word stays ("…1111." → "[CARD].").
    const trailing = /[.,!?;:]+$/.exec(last.display)?.[0] ?? "";
    // A number's tag reaches to the next word heard (less the silencing margin), at most
    // HOLD_MS on: digits the engine did not write are in that gap ("one one one one" said
    // as "One": three ones after its time).
    let endMs = last.word.endMs;
    const next = tokens[span.end];
    if (span.policy !== "email" && next) {
      endMs = Math.max(endMs, Math.min(endMs + HOLD_MS, next.word.startMs - marginMs));
    }
    out.push({
      display: tag + trailing,
      norm: span.policy === "card" ? CARD_MARK : tag.toLowerCase(),
      word: { text: tag, startMs: first.startMs, endMs },
      tag: true,
    });
    i = span.end;
  }
  out.push(...tokens.slice(i));
  return out;
}

/**
 * A transcript's words as tokens: the text's own words (with their
 * punctuation and case) when they match the timed words one to one, else the
 * timed words; without timed words, the text's words share its time span.
 */
function tokensOf(transcript: Transcript): Token[] {
  const shown = transcript.text.split(/\s+/).filter(Boolean);
  const words = transcript.words;
  if (words.length === 0) {
    const step = (transcript.endMs - transcript.startMs) / Math.max(1, shown.length);
    return shown.map((display, i) => ({
      display,
      norm: normalizeToken(display),
      word: {
        text: display,
        startMs: Math.round(transcript.startMs + i * step),
        endMs: Math.round(transcript.startMs + (i + 1) * step),
      },
    }));
  }
  const same = shown.length === words.length;
  return words.map((word, i) => {
    const display = same ? shown[i] : word.text;
    return { display, norm: normalizeToken(display), word };
  });
}
