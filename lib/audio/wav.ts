/**
 * WAV files in and out, resampling, and the conversion of any readable WAV
 * to call audio (8 kHz mono µ-law).
 *
 * Reads RIFF/WAVE (and RF64) holding PCM 8/16/24/32-bit, IEEE float 32/64,
 * µ-law, A-law, or WAVE_FORMAT_EXTENSIBLE wrapping any of those. Samples come
 * out mixed down to mono floats in [-1, 1].
 *
 * @module
 */
import { floatToMulaw, mulawDecodeSample } from "./mulaw.ts";
import { UserError } from "../user_error.ts";

/** Decoded audio: mono samples in [-1, 1]; `channels` is the file's original count. */
export interface WavAudio {
  sampleRate: number;
  channels: number;
  samples: Float32Array;
}

const FORMAT_PCM = 1;
const FORMAT_FLOAT = 3;
const FORMAT_ALAW = 6;
const FORMAT_MULAW = 7;
const FORMAT_EXTENSIBLE = 0xfffe;

const FORMAT_NAMES: Record<number, string> = {
  0x0002: "Microsoft ADPCM",
  0x0011: "IMA ADPCM",
  0x0031: "GSM 6.10",
  0x0040: "G.721 ADPCM",
  0x0050: "MPEG audio",
  0x0055: "MP3",
  0x0064: "G.726 ADPCM",
  0x0161: "Windows Media Audio",
  0x1610: "AAC",
  0xf1ac: "FLAC",
};

/** A-law code → int16 (G.711 reference `alaw2linear`). */
const ALAW_FLOAT = new Float32Array(256);
/** µ-law code → float. */
const MULAW_FLOAT = new Float32Array(256);
for (let code = 0; code < 256; code++) {
  const a = code ^ 0x55;
  let t = (a & 0x0f) << 4;
  const seg = (a & 0x70) >> 4;
  if (seg === 0) t += 8;
  else if (seg === 1) t += 0x108;
  else t = (t + 0x108) << (seg - 1);
  ALAW_FLOAT[code] = (a & 0x80 ? t : -t) / 32768;
  MULAW_FLOAT[code] = mulawDecodeSample(code) / 32768;
}

function fourcc(bytes: Uint8Array, at: number): string {
  return String.fromCharCode(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]);
}

/** The ffmpeg command that turns `name` (whatever it holds) into a WAV callscribe reads. */
function convertHint(name: string | undefined): string {
  const input = name === undefined ? "in.mp3" : /^[\w./@%+=:,-]+$/.test(name) ? name : `'${name}'`;
  return `convert it with: ffmpeg -i ${input} -ac 1 -c:a pcm_s16le out.wav`;
}

/**
 * Parses a WAV file. `name` (a path, usually) is only used in error messages.
 * Throws {@link UserError} for anything it can't read.
 */
export function readWav(bytes: Uint8Array, name?: string): WavAudio {
  const hint = convertHint(name);
  const fail = (problem: string, fix = hint): never => {
    throw new UserError(`${name ?? "WAV data"}: ${problem}; ${fix}`);
  };
  if (bytes.length === 0) fail("file is empty (0 bytes)", "record or convert the audio again");
  const riff = bytes.length >= 4 ? fourcc(bytes, 0) : "";
  if ((riff !== "RIFF" && riff !== "RF64") || bytes.length < 12) {
    if (riff === "RIFX") fail("big-endian WAV (RIFX) is not supported", hint);
    if (riff === "RIFF" || riff === "RF64") {
      fail(
        `truncated WAV header (${bytes.length} bytes)`,
        "the file is incomplete; " + hint,
      );
    }
    fail("not a WAV file (no RIFF header)");
  }
  if (fourcc(bytes, 8) !== "WAVE") {
    fail(`not a WAV file (RIFF type "${fourcc(bytes, 8)}", not "WAVE")`);
  }

  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let format = -1;
  let channels = 0;
  let sampleRate = 0;
  let blockAlign = 0;
  let bits = 0;
  let rf64DataSize = -1;
  let dataStart = -1;
  let dataSize = 0;

  let at = 12;
  while (at + 8 <= bytes.length) {
    const id = fourcc(bytes, at);
    let size = view.getUint32(at + 4, true);
    const body = at + 8;
    if (id === "data") {
      if (rf64DataSize >= 0 && size === 0xffffffff) size = rf64DataSize;
      // Streamed/truncated files: take what is there.
      dataStart = body;
      dataSize = Math.min(size, bytes.length - body);
      break;
    }
    if (body + size > bytes.length) {
      fail(
        `truncated WAV header (the "${id}" chunk runs past the end of the file)`,
        "the file is cut short; export or download it again",
      );
    }
    if (id === "ds64" && size >= 16) {
      rf64DataSize = view.getUint32(body + 8, true) + view.getUint32(body + 12, true) * 2 ** 32;
    } else if (id === "fmt ") {
      if (size < 16) fail(`truncated WAV header (fmt chunk is ${size} bytes, 16 needed)`);
      format = view.getUint16(body, true);
      channels = view.getUint16(body + 2, true);
      sampleRate = view.getUint32(body + 4, true);
      blockAlign = view.getUint16(body + 12, true);
      bits = view.getUint16(body + 14, true);
      if (format === FORMAT_EXTENSIBLE) {
        if (size < 40) fail("truncated WAV header (WAVE_FORMAT_EXTENSIBLE fmt chunk too short)");
        format = view.getUint16(body + 24, true); // first two bytes of the SubFormat GUID
      }
    }
    at = body + size + (size & 1); // chunks are padded to even sizes
  }

  if (format < 0) {
    fail(
      dataStart >= 0
        ? "broken WAV file (no fmt chunk before the audio data)"
        : "truncated WAV header (no fmt chunk)",
    );
  }
  if (dataStart < 0) fail("WAV file has no audio (no data chunk); the file may be truncated");
  if (channels < 1) fail("WAV header says 0 channels");
  if (sampleRate < 1) fail("WAV header says sample rate 0");

  let bytesPerSample: number;
  let decode: (at: number) => number;
  switch (format) {
    case FORMAT_PCM:
      if (bits <= 8) {
        bytesPerSample = 1;
        decode = (i) => (bytes[i] - 128) / 128;
      } else if (bits <= 16) {
        bytesPerSample = 2;
        decode = (i) => view.getInt16(i, true) / 32768;
      } else if (bits <= 24) {
        bytesPerSample = 3;
        decode = (i) =>
          ((bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16)) << 8 >> 8) / 8388608;
      } else if (bits <= 32) {
        bytesPerSample = 4;
        decode = (i) => view.getInt32(i, true) / 2147483648;
      } else {
        return fail(`${bits}-bit PCM is not supported`, hint);
      }
      break;
    case FORMAT_FLOAT:
      if (bits === 32) {
        bytesPerSample = 4;
        decode = (i) => view.getFloat32(i, true);
      } else if (bits === 64) {
        bytesPerSample = 8;
        decode = (i) => view.getFloat64(i, true);
      } else {
        return fail(`${bits}-bit float is not supported`, hint);
      }
      break;
    case FORMAT_MULAW:
      bytesPerSample = 1;
      decode = (i) => MULAW_FLOAT[bytes[i]];
      break;
    case FORMAT_ALAW:
      bytesPerSample = 1;
      decode = (i) => ALAW_FLOAT[bytes[i]];
      break;
    default: {
      const known = FORMAT_NAMES[format];
      const label = `${known ? known + " " : ""}(format 0x${format.toString(16).padStart(4, "0")})`;
      return fail(
        `unsupported WAV encoding ${label}; callscribe reads PCM, float, µ-law and A-law`,
        hint,
      );
    }
  }

  const frameBytes = Math.max(blockAlign, bytesPerSample * channels);
  const frames = Math.floor(dataSize / frameBytes);
  const samples = new Float32Array(frames);
  let p = dataStart;
  if (channels === 1 && bytesPerSample === 2 && frameBytes === 2) {
    for (let i = 0; i < frames; i++, p += 2) samples[i] = view.getInt16(p, true) / 32768;
  } else if (channels === 1) {
    for (let i = 0; i < frames; i++, p += frameBytes) samples[i] = decode(p);
  } else {
    const scale = 1 / channels;
    for (let i = 0; i < frames; i++, p += frameBytes) {
      let sum = 0;
      for (let c = 0, q = p; c < channels; c++, q += bytesPerSample) sum += decode(q);
      samples[i] = sum * scale;
    }
  }
  return { sampleRate, channels, samples };
}

/** Reads and parses a WAV file; every failure (including not found) is a {@link UserError} naming it. */
export async function readWavFile(path: string): Promise<WavAudio> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new UserError(
        `${path}: file not found; check the path (relative paths start at ${Deno.cwd()})`,
      );
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new UserError(
        `${path}: permission denied; make the file readable or run with --allow-read`,
      );
    }
    if (error instanceof Deno.errors.IsADirectory) {
      throw new UserError(`${path}: is a directory, not a WAV file; pass the path of a .wav file`);
    }
    throw new UserError(`${path}: cannot read the file (${(error as Error).message})`);
  }
  return readWav(bytes, path);
}

function header(
  format: number,
  sampleRate: number,
  bits: number,
  dataBytes: number,
  extra: boolean,
): { out: Uint8Array; view: DataView; dataAt: number } {
  const fmtSize = extra ? 18 : 16;
  const factSize = extra ? 12 : 0;
  const pad = dataBytes & 1;
  const dataAt = 12 + 8 + fmtSize + factSize + 8;
  const out = new Uint8Array(dataAt + dataBytes + pad);
  const view = new DataView(out.buffer);
  const text = (at: number, s: string) => {
    for (let i = 0; i < 4; i++) out[at + i] = s.charCodeAt(i);
  };
  const bytesPerSample = bits / 8;
  text(0, "RIFF");
  view.setUint32(4, out.length - 8, true);
  text(8, "WAVE");
  text(12, "fmt ");
  view.setUint32(16, fmtSize, true);
  view.setUint16(20, format, true);
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * bytesPerSample, true);
  view.setUint16(32, bytesPerSample, true);
  view.setUint16(34, bits, true);
  let at = 36;
  if (extra) {
    view.setUint16(at, 0, true); // cbSize
    at += 2;
    text(at, "fact");
    view.setUint32(at + 4, 4, true);
    view.setUint32(at + 8, dataBytes / bytesPerSample, true);
    at += 12;
  }
  text(at, "data");
  view.setUint32(at + 4, dataBytes, true);
  return { out, view, dataAt };
}

/** Encodes mono samples (floats in [-1, 1], or int16) as a 16-bit PCM WAV file. */
export function writeWav(samples: Float32Array | Int16Array, sampleRate: number): Uint8Array {
  const { out, view, dataAt } = header(FORMAT_PCM, sampleRate, 16, samples.length * 2, false);
  if (samples instanceof Int16Array) {
    for (let i = 0, p = dataAt; i < samples.length; i++, p += 2) view.setInt16(p, samples[i], true);
  } else {
    for (let i = 0, p = dataAt; i < samples.length; i++, p += 2) {
      let s = Math.round(samples[i] * 32768);
      if (s > 32767) s = 32767;
      else if (s < -32768) s = -32768;
      view.setInt16(p, s, true);
    }
  }
  return out;
}

/** Wraps µ-law bytes in a mono µ-law WAV file (format 7): compact, and plays anywhere. */
export function writeMulawWav(mulaw: Uint8Array, sampleRate = 8000): Uint8Array {
  const { out, dataAt } = header(FORMAT_MULAW, sampleRate, 8, mulaw.length, true);
  out.set(mulaw, dataAt);
  return out;
}

// ---------------------------------------------------------------------------
// Resampling: Kaiser-windowed sinc, polyphase.

/** Zero crossings of the sinc on each side (at the lower of the two rates). */
const ZERO_CROSSINGS = 16;
/** Pass band as a fraction of the lower Nyquist frequency. */
const ROLLOFF = 0.9;
const KAISER_BETA = 8;
/** Above this many phases, phases are quantized to this many instead of exact. */
const MAX_PHASES = 1024;

function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  const q = (x * x) / 4;
  for (let k = 1; k < 50; k++) {
    term *= q / (k * k);
    sum += term;
    if (term < sum * 1e-12) break;
  }
  return sum;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

interface Filter {
  /** Phases (output positions between input samples). */
  phases: number;
  /** Taps per phase. */
  taps: number;
  /** Input samples before the current one the first tap touches. */
  half: number;
  coefficients: Float32Array;
}

const filterCache = new Map<string, Filter>();

function designFilter(fromRate: number, toRate: number, phases: number): Filter {
  const key = `${fromRate}:${toRate}:${phases}`;
  const cached = filterCache.get(key);
  if (cached) return cached;
  // Cut-off in cycles per input sample.
  const fc = 0.5 * Math.min(1, toRate / fromRate) * ROLLOFF;
  const half = Math.ceil(ZERO_CROSSINGS / (2 * fc));
  // Rounded up to a multiple of 4 (trailing zero taps) for the unrolled loop.
  const taps = (2 * half + 3) & ~3;
  const coefficients = new Float32Array(phases * taps);
  const i0Beta = besselI0(KAISER_BETA);
  for (let p = 0; p < phases; p++) {
    const frac = p / phases;
    let sum = 0;
    const row = p * taps;
    for (let j = 0; j < 2 * half; j++) {
      // Input sample k0 - half + 1 + j, at distance d from the output position.
      const d = frac - (j - half + 1);
      const x = 2 * fc * d;
      const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
      const r = d / half;
      const w = Math.abs(r) >= 1 ? 0 : besselI0(KAISER_BETA * Math.sqrt(1 - r * r)) / i0Beta;
      const h = 2 * fc * sinc * w;
      coefficients[row + j] = h;
      sum += h;
    }
    for (let j = 0; j < taps; j++) coefficients[row + j] /= sum; // unity gain at DC
  }
  const filter = { phases, taps, half, coefficients };
  filterCache.set(key, filter);
  return filter;
}

/**
 * Resamples mono audio with a Kaiser-windowed sinc (stop band ≈ -80 dB), so
 * downsampling low-passes below the new Nyquist frequency first and does not
 * alias. Returns a new array (a copy when the rates are equal).
 */
export function resample(samples: Float32Array, fromRate: number, toRate: number): Float32Array {
  if (!(fromRate > 0) || !(toRate > 0)) {
    throw new RangeError(`resample: bad rates ${fromRate} → ${toRate}`);
  }
  if (fromRate === toRate) return samples.slice();
  const n = samples.length;
  if (n === 0) return new Float32Array(0);
  const g = gcd(Math.round(fromRate), Math.round(toRate));
  const up = Math.round(toRate) / g; // L
  const down = Math.round(fromRate) / g; // M
  const exact = up <= MAX_PHASES;
  const filter = designFilter(fromRate, toRate, exact ? up : MAX_PHASES);
  const { taps, half, coefficients, phases } = filter;

  // Zero-padded copy: the inner loop needs no bounds checks.
  const padded = new Float32Array(n + taps + 1);
  padded.set(samples, half);
  const outLength = Math.ceil((n * up) / down);
  const out = new Float32Array(outLength);
  for (let i = 0; i < outLength; i++) {
    let k0: number;
    let phase: number;
    if (exact) {
      const pos = i * down;
      k0 = Math.floor(pos / up);
      phase = pos - k0 * up;
    } else {
      const t = (i * fromRate) / toRate;
      k0 = Math.floor(t);
      phase = Math.round((t - k0) * phases);
      if (phase === phases) {
        phase = 0;
        k0++;
      }
    }
    // Input k0 - half + 1 + j is padded[k0 + 1 + j].
    const base = k0 + 1;
    const row = phase * taps;
    // taps is a multiple of 4; four accumulators let the multiplies overlap.
    let acc0 = 0;
    let acc1 = 0;
    let acc2 = 0;
    let acc3 = 0;
    for (let j = 0; j < taps; j += 4) {
      const p = base + j;
      const c = row + j;
      acc0 += padded[p] * coefficients[c];
      acc1 += padded[p + 1] * coefficients[c + 1];
      acc2 += padded[p + 2] * coefficients[c + 2];
      acc3 += padded[p + 3] * coefficients[c + 3];
    }
    out[i] = acc0 + acc1 + (acc2 + acc3);
  }
  return out;
}

/** Converts decoded audio to call audio: 8 kHz mono µ-law. */
export function toCallAudio(wav: WavAudio): Uint8Array {
  const at8k = wav.sampleRate === 8000 ? wav.samples : resample(wav.samples, wav.sampleRate, 8000);
  return floatToMulaw(at8k);
}
