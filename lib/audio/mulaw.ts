/**
 * ITU-T G.711 µ-law (the codec of Twilio media streams: 8 kHz, one byte a
 * sample). Everything is table-driven: these run per 20 ms frame for every
 * track of every call.
 *
 * The mapping is the classic reference one (Sun `g711.c`): bias 0x84, the
 * magnitude clipped at 32635, 8 segments of 16 steps, and all output bits
 * inverted, so digital silence is 0xFF.
 *
 * @module
 */

/** The µ-law code of a zero sample (positive zero). */
export const MULAW_SILENCE = 0xff;

const BIAS = 0x84;
const CLIP = 32635;

/** code → int16, per the G.711 reference `ulaw2linear`. */
const DECODE = new Int16Array(256);
/** code → float in [-1, 1] (int16 / 32768). */
const DECODE_FLOAT = new Float32Array(256);
/** (int16 & 0xffff) → code. 64 KiB, one lookup per sample. */
const ENCODE = new Uint8Array(65536);

for (let code = 0; code < 256; code++) {
  const u = ~code & 0xff;
  const t = (((u & 0x0f) << 3) + BIAS) << ((u & 0x70) >> 4);
  const value = u & 0x80 ? BIAS - t : t - BIAS;
  DECODE[code] = value;
  DECODE_FLOAT[code] = value / 32768;
}

for (let i = 0; i < 65536; i++) {
  let sample = i < 32768 ? i : i - 65536;
  const sign = sample < 0 ? 0x80 : 0;
  if (sign) sample = -sample;
  if (sample > CLIP) sample = CLIP;
  sample += BIAS;
  // Segment = position of the highest set bit above bit 7 (0..7).
  let exponent = 7;
  for (let mask = 0x4000; (sample & mask) === 0 && exponent > 0; mask >>= 1) exponent--;
  const mantissa = (sample >> (exponent + 3)) & 0x0f;
  ENCODE[i] = ~(sign | (exponent << 4) | mantissa) & 0xff;
}

/** Encodes one 16-bit PCM sample (clamped to int16) to a µ-law code. */
export function mulawEncodeSample(pcm16: number): number {
  const s = pcm16 > 32767 ? 32767 : pcm16 < -32768 ? -32768 : pcm16 | 0;
  return ENCODE[s & 0xffff];
}

/** Decodes one µ-law code (0..255) to a 16-bit PCM sample. */
export function mulawDecodeSample(byte: number): number {
  return DECODE[byte & 0xff];
}

function output<T extends Uint8Array | Int16Array | Float32Array>(
  out: T | undefined,
  length: number,
  make: (n: number) => T,
): T {
  if (!out) return make(length);
  if (out.length < length) {
    throw new RangeError(`output buffer holds ${out.length} samples; ${length} needed`);
  }
  return (out.length === length ? out : out.subarray(0, length)) as T;
}

/**
 * Encodes 16-bit PCM to µ-law. Writes into `out` when given (it must hold at
 * least `pcm.length` bytes) and returns the written part.
 */
export function mulawEncode(pcm: Int16Array, out?: Uint8Array): Uint8Array {
  const n = pcm.length;
  const dst = output(out, n, (len) => new Uint8Array(len));
  for (let i = 0; i < n; i++) dst[i] = ENCODE[pcm[i] & 0xffff];
  return dst;
}

/**
 * Decodes µ-law to 16-bit PCM. Writes into `out` when given (at least
 * `bytes.length` samples) and returns the written part.
 */
export function mulawDecode(bytes: Uint8Array, out?: Int16Array): Int16Array {
  const n = bytes.length;
  const dst = output(out, n, (len) => new Int16Array(len));
  for (let i = 0; i < n; i++) dst[i] = DECODE[bytes[i]];
  return dst;
}

/**
 * Decodes µ-law to float samples in [-1, 1] (int16 / 32768), as speech
 * recognizers want them. Writes into `out` when given (at least
 * `bytes.length` samples) and returns the written part.
 */
export function mulawToFloat32(bytes: Uint8Array, out?: Float32Array): Float32Array {
  const n = bytes.length;
  const dst = output(out, n, (len) => new Float32Array(len));
  for (let i = 0; i < n; i++) dst[i] = DECODE_FLOAT[bytes[i]];
  return dst;
}

/**
 * Encodes float samples in [-1, 1] (scaled by 32768, rounded, clamped) to
 * µ-law. Writes into `out` when given and returns the written part.
 */
export function floatToMulaw(samples: Float32Array, out?: Uint8Array): Uint8Array {
  const n = samples.length;
  const dst = output(out, n, (len) => new Uint8Array(len));
  for (let i = 0; i < n; i++) {
    let s = Math.round(samples[i] * 32768);
    if (s > 32767) s = 32767;
    else if (s < -32768) s = -32768;
    dst[i] = ENCODE[s & 0xffff];
  }
  return dst;
}
