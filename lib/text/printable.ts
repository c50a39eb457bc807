/**
 * Text from outside (a caller's From, `X-Forwarded-For`, Twilio custom
 * parameters, transcript text) made safe to write as one line of text: to
 * the console, a log, or a text export. A newline in such a value would
 * forge a line of its own, an ANSI escape would rewrite the terminal.
 *
 * @module
 */

/** ANSI escape sequences: CSI (`ESC [` or U+009B … final byte), OSC (`ESC ]` … BEL or ST), and two-byte ones. */
const ESCAPES = new RegExp(
  String
    .raw`(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?|\x1b[@-_]?`,
  "g",
);
/** Line and paragraph breaks of every kind, and tabs: each run becomes a space. */
const BREAKS = /[\t\n\v\f\r\x85\u2028\u2029]+/g;
/**
 * Other control characters: C0, DEL, C1, and the invisible direction
 * overrides that reorder what a line appears to say.
 */
const CONTROLS = new RegExp(
  String.raw`[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]`,
  "g",
);

/**
 * `value` with every control character gone (C0, DEL, C1, U+2028/U+2029,
 * direction overrides, whole ANSI escape sequences); line breaks and tabs
 * become single spaces. Cut to `maxLength` characters (ending in `…`) when given.
 */
export function printable(value: string, maxLength?: number): string {
  const clean = value.replace(ESCAPES, "").replace(BREAKS, " ").replace(CONTROLS, "");
  if (maxLength === undefined || clean.length <= maxLength) return clean;
  return clean.slice(0, Math.max(0, maxLength - 1)) + "…";
}
