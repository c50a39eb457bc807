/**
 * The fast path of a media message: read straight from the UTF-8 bytes of
 * its WebSocket frame, with no string, no JSON objects and no base64 string
 * made. A media message is 50 per second per call, and decoding its text,
 * `JSON.parse`, checking fields and `Uint8Array.fromBase64` were about a
 * fifth of the relay's CPU per frame.
 *
 * It takes only the plain form: one JSON object with exactly the keys of a
 * media message (in any order, with any JSON whitespace), strings of
 * printable ASCII with no escapes, and canonical base64. For anything else
 * it returns null and the caller parses the text with
 * {@link parseTwilioMessage}, which accepts more and names every problem;
 * what both accept, both read the same (tests/media_bytes_test.ts).
 *
 * @module
 */
import type { MediaTrack } from "./protocol.ts";
import type { PayloadSlab } from "./payload_slab.ts";

/** A media message's audio, read by {@link readMediaBytes}. */
export interface MediaBytes {
  sequenceNumber: number;
  track: MediaTrack;
  chunk: number;
  timestamp: number;
  /** The decoded µ-law bytes (the caller's: never written again). */
  payload: Uint8Array;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN = 0x7b;
const CLOSE = 0x7d;

/** Each key of a media message, as bytes, and the bit it sets once seen. */
const KEYS = {
  event: 1,
  sequenceNumber: 2,
  media: 4,
  streamSid: 8,
  track: 16,
  chunk: 32,
  timestamp: 64,
  payload: 128,
} as const;
type Key = keyof typeof KEYS;
const OUTER: Key[] = ["event", "sequenceNumber", "media", "streamSid"];
const INNER: Key[] = ["track", "chunk", "timestamp", "payload"];
const OUTER_BYTES = OUTER.map((key) => new TextEncoder().encode(key));
const INNER_BYTES = INNER.map((key) => new TextEncoder().encode(key));
const MEDIA = new TextEncoder().encode("media");
const INBOUND = new TextEncoder().encode("inbound");
const OUTBOUND = new TextEncoder().encode("outbound");

/** Base64 alphabet value of each byte; -1 for anything else (padding is handled apart). */
const BASE64 = (() => {
  const table = new Int8Array(256).fill(-1);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (let i = 0; i < alphabet.length; i++) table[alphabet.charCodeAt(i)] = i;
  return table;
})();

/** Where one value of the message lies: a string's bytes without its quotes. */
interface Scan {
  at: number;
  seen: number;
  /** Start and end (exclusive) of each string value, by key bit. */
  starts: Int32Array;
  ends: Int32Array;
}

/** Scratch of {@link readMediaBytes} (it runs to its end before another can start). */
const SCAN_STARTS = new Int32Array(8);
const SCAN_ENDS = new Int32Array(8);

/**
 * Reads a media message from the bytes of a text frame, its audio decoded
 * into space from `slab`; null when the bytes are not a media message in
 * its plain form (then parse the text).
 */
export function readMediaBytes(bytes: Uint8Array, slab: PayloadSlab): MediaBytes | null {
  const scan: Scan = { at: 0, seen: 0, starts: SCAN_STARTS, ends: SCAN_ENDS };
  if (!object(bytes, scan, OUTER, true)) return null;
  if (whitespace(bytes, scan.at) !== bytes.length) return null;
  if (scan.seen !== 255) return null;
  if (!equals(bytes, scan, "event", MEDIA)) return null;
  const track = equals(bytes, scan, "track", INBOUND)
    ? "inbound"
    : equals(bytes, scan, "track", OUTBOUND)
    ? "outbound"
    : null;
  if (track === null) return null;
  const sequenceNumber = digits(bytes, scan, "sequenceNumber");
  const chunk = digits(bytes, scan, "chunk");
  const timestamp = digits(bytes, scan, "timestamp");
  if (sequenceNumber < 0 || chunk < 0 || timestamp < 0) return null;
  const payload = base64(bytes, scan.starts[slot("payload")], scan.ends[slot("payload")], slab);
  if (payload === null) return null;
  return { sequenceNumber, track, chunk, timestamp, payload };
}

/** Index of a key's string in the scan. */
function slot(key: Key): number {
  return 31 - Math.clz32(KEYS[key]);
}

/** Scans `{ "key": value, ... }` at `scan.at` with exactly `keys`, each once. */
function object(bytes: Uint8Array, scan: Scan, keys: Key[], outer: boolean): boolean {
  let at = whitespace(bytes, scan.at);
  if (bytes[at] !== OPEN) return false;
  at = whitespace(bytes, at + 1);
  for (let i = 0; i < keys.length; i++) {
    if (i > 0) {
      if (bytes[at] !== COMMA) return false;
      at = whitespace(bytes, at + 1);
    }
    const keyEnd = plainString(bytes, at);
    if (keyEnd < 0) return false;
    const key = keyAt(bytes, at + 1, keyEnd, keys);
    if (key === null) return false;
    // Exactly as many keys as expected, each needed: a key twice would leave another missing.
    scan.seen |= KEYS[key];
    at = whitespace(bytes, keyEnd + 1);
    if (bytes[at] !== COLON) return false;
    at = whitespace(bytes, at + 1);
    if (outer && key === "media") {
      scan.at = at;
      if (!object(bytes, scan, INNER, false)) return false;
      at = scan.at;
    } else {
      // The payload's bytes are checked as it is decoded: only its end is looked for here.
      const end = key === "payload" ? payloadEnd(bytes, at) : plainString(bytes, at);
      if (end < 0) return false;
      const s = slot(key);
      scan.starts[s] = at + 1;
      scan.ends[s] = end;
      at = end + 1;
    }
    at = whitespace(bytes, at);
  }
  if (bytes[at] !== CLOSE) return false;
  scan.at = at + 1;
  return true;
}

/** The index of the closing quote of a string at `at` of printable ASCII without escapes; -1 if not one. */
function plainString(bytes: Uint8Array, at: number): number {
  if (bytes[at] !== QUOTE) return -1;
  for (let i = at + 1; i < bytes.length; i++) {
    const b = bytes[i];
    if (b === QUOTE) return i;
    if (b < 0x20 || b > 0x7e || b === BACKSLASH) return -1;
  }
  return -1;
}

/** The closing quote of the payload string at `at` (its content is checked as base64); -1 if none. */
function payloadEnd(bytes: Uint8Array, at: number): number {
  return bytes[at] === QUOTE ? bytes.indexOf(QUOTE, at + 1) : -1;
}

/** Which of `keys` the bytes `[start, end)` spell; null for none. */
function keyAt(bytes: Uint8Array, start: number, end: number, keys: Key[]): Key | null {
  const spellings = keys === OUTER ? OUTER_BYTES : INNER_BYTES;
  for (let k = 0; k < keys.length; k++) {
    const spelled = spellings[k];
    if (spelled.length !== end - start) continue;
    let i = 0;
    while (i < spelled.length && bytes[start + i] === spelled[i]) i++;
    if (i === spelled.length) return keys[k];
  }
  return null;
}

/** JSON whitespace skipped from `at`. */
function whitespace(bytes: Uint8Array, at: number): number {
  while (at < bytes.length) {
    const b = bytes[at];
    if (b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09) break;
    at++;
  }
  return at;
}

function equals(bytes: Uint8Array, scan: Scan, key: Key, value: Uint8Array): boolean {
  const s = slot(key);
  const start = scan.starts[s];
  if (scan.ends[s] - start !== value.length) return false;
  for (let i = 0; i < value.length; i++) if (bytes[start + i] !== value[i]) return false;
  return true;
}

/** The value of 1 to 15 ASCII digits (as {@link parseTwilioMessage} takes them); -1 otherwise. */
function digits(bytes: Uint8Array, scan: Scan, key: Key): number {
  const s = slot(key);
  const start = scan.starts[s];
  const end = scan.ends[s];
  if (end === start || end - start > 15) return -1;
  let value = 0;
  for (let i = start; i < end; i++) {
    const d = bytes[i] - 48;
    if (d < 0 || d > 9) return -1;
    value = value * 10 + d;
  }
  return value;
}

/** Canonical base64 in `[start, end)` decoded (padded to a multiple of 4); null otherwise. */
function base64(
  bytes: Uint8Array,
  start: number,
  end: number,
  slab: PayloadSlab,
): Uint8Array | null {
  const length = end - start;
  if (length % 4 !== 0) return null;
  let padding = 0;
  if (length > 0 && bytes[end - 1] === 0x3d) padding = bytes[end - 2] === 0x3d ? 2 : 1;
  const out = slab.take((length / 4) * 3 - padding);
  let o = 0;
  const whole = end - (padding > 0 ? 4 : 0);
  for (let i = start; i < whole; i += 4) {
    const a = BASE64[bytes[i]], b = BASE64[bytes[i + 1]];
    const c = BASE64[bytes[i + 2]], d = BASE64[bytes[i + 3]];
    if ((a | b | c | d) < 0) return null;
    const n = (a << 18) | (b << 12) | (c << 6) | d;
    out[o++] = n >> 16;
    out[o++] = (n >> 8) & 0xff;
    out[o++] = n & 0xff;
  }
  if (padding > 0) {
    const a = BASE64[bytes[whole]], b = BASE64[bytes[whole + 1]];
    const c = padding === 1 ? BASE64[bytes[whole + 2]] : 0;
    if ((a | b | c) < 0) return null;
    const n = (a << 18) | (b << 12) | (c << 6);
    out[o++] = n >> 16;
    if (padding === 1) out[o++] = (n >> 8) & 0xff;
  }
  return out;
}
