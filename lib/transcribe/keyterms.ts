/**
 * Key terms for the local engine: words and phrases its decoder is biased
 * towards (sherpa-onnx hotwords, `modified_beam_search`). A term is spelled
 * with the model's own tokens (`tokens.txt`: BPE pieces, `▁` marking a word's
 * start), as the decoder will spell it; a term the model has no tokens for
 * (a digit, an accented letter) is refused, since the decoder would skip it
 * silently.
 *
 * @module
 */
import { UserError } from "../user_error.ts";

/** The word-start marker of SentencePiece BPE pieces. */
const WORD_START = "▁";

/**
 * Each term as the model spells it (its pieces, greedy longest match from
 * each word's start), in the model's case. Throws a {@link UserError} naming
 * the first term the model cannot spell and the character it lacks.
 */
export function spellKeyterms(tokens: readonly string[], terms: readonly string[]): string[][] {
  const pieces = new Set(tokens);
  // Models trained on upper-case text (GigaSpeech, LibriSpeech) have no lower-case tokens.
  // (`<blk>`, `<unk>` and the like are not text.)
  const upper = !tokens.some((t) => !t.startsWith("<") && /\p{Ll}/u.test(t));
  return terms.map((term) => {
    const spelled: string[] = [];
    for (const word of (upper ? term.toUpperCase() : term).trim().split(/\s+/)) {
      let rest = WORD_START + word;
      while (rest) {
        let length = rest.length;
        while (length > 0 && !pieces.has(rest.slice(0, length))) length--;
        if (length === 0) {
          const missing = rest.startsWith(WORD_START) ? rest.slice(1, 2) : rest[0];
          throw new UserError(
            `Cannot use key term ${JSON.stringify(term)}: the local model has no token for ` +
              `${JSON.stringify(missing)}. Spell it as it is said (e.g. "forty two" for 42), ` +
              `or leave it to AssemblyAI.`,
          );
        }
        spelled.push(rest.slice(0, length));
        rest = rest.slice(length);
      }
    }
    return spelled;
  });
}

/**
 * A comma-separated list of key terms (`KEYTERMS`, `--keyterms`, a stream's
 * `keyterms` parameter), trimmed; undefined when it names none.
 */
export function parseKeytermList(list: string | undefined): string[] | undefined {
  const terms = list?.split(",").map((t) => t.trim()).filter(Boolean) ?? [];
  return terms.length ? terms : undefined;
}

/** The tokens of a `tokens.txt` (`piece id` per line), in id order. */
export function readTokens(text: string): string[] {
  return text.split("\n").filter(Boolean).map((line) => line.slice(0, line.lastIndexOf(" ")));
}
