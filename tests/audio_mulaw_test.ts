import assert from "node:assert/strict";
import alawmulaw from "alawmulaw";
import {
  floatToMulaw,
  MULAW_SILENCE,
  mulawDecode,
  mulawDecodeSample,
  mulawEncode,
  mulawEncodeSample,
  mulawToFloat32,
} from "../lib/audio/mulaw.ts";
import { findFfmpeg } from "../lib/laptop_audio/find_ffmpeg.ts";

// Independent references that ship with the project: the npm codec alawmulaw, and ffmpeg
// (FFMPEG_PATH, the PATH's, or the build in the npm package @ffmpeg-installer/ffmpeg).
const found = await findFfmpeg(Deno.env.get("FFMPEG_PATH") || undefined);
if (found.path === undefined) throw new Error(found.why);
const FFMPEG = found.path;

/** G.711 reference decoder (Sun g711.c `ulaw2linear`), written out plainly. */
function referenceDecode(code: number): number {
  const u = ~code & 0xff;
  const segment = (u & 0x70) >> 4;
  const t = (((u & 0x0f) << 3) + 0x84) << segment;
  return u & 0x80 ? 0x84 - t : t - 0x84;
}

/** G.711 reference encoder (bias 0x84, clip 32635, bits inverted), with a segment search. */
function referenceEncode(pcm: number): number {
  const segmentEnds = [0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff, 0x1fff, 0x3fff, 0x7fff];
  let mask = 0xff;
  let value = pcm;
  if (value < 0) {
    value = -value;
    mask = 0x7f;
  }
  if (value > 32635) value = 32635;
  value += 0x84;
  const segment = segmentEnds.findIndex((end) => value <= end);
  return ((segment << 4) | ((value >> (segment + 3)) & 0x0f)) ^ mask;
}

Deno.test("µ-law silence is 0xFF, which decodes to 0", () => {
  assert.equal(MULAW_SILENCE, 0xff);
  assert.equal(mulawDecodeSample(MULAW_SILENCE), 0);
});

Deno.test("decoding matches the G.711 table at known codes", () => {
  const known: [number, number][] = [
    [0xff, 0], // positive zero
    [0x7f, 0], // negative zero
    [0xfe, 8], // first step of segment 0
    [0x7e, -8],
    [0xf0, 120], // top of segment 0
    [0xef, 132], // bottom of segment 1
    [0xdf, 396], // bottom of segment 2
    [0x90, 15996], // top of segment 6
    [0x8f, 16764], // bottom of segment 7
    [0x80, 32124], // largest positive
    [0x00, -32124], // largest negative
  ];
  for (const [code, value] of known) {
    assert.equal(mulawDecodeSample(code), value, `decode(0x${code.toString(16)})`);
  }
});

Deno.test("all 256 codes decode as the reference formula", () => {
  const codes = Uint8Array.from({ length: 256 }, (_, i) => i);
  const pcm = mulawDecode(codes);
  const floats = mulawToFloat32(codes);
  for (let code = 0; code < 256; code++) {
    assert.equal(pcm[code], referenceDecode(code), `code 0x${code.toString(16)}`);
    assert.equal(mulawDecodeSample(code), referenceDecode(code));
    assert.equal(floats[code], Math.fround(referenceDecode(code) / 32768));
    assert.ok(floats[code] >= -1 && floats[code] <= 1);
  }
});

Deno.test("every int16 encodes as the reference encoder", () => {
  const pcm = new Int16Array(65536);
  for (let i = 0; i < pcm.length; i++) pcm[i] = i - 32768;
  const codes = mulawEncode(pcm);
  for (let i = 0; i < pcm.length; i++) {
    if (codes[i] !== referenceEncode(pcm[i])) {
      assert.fail(`encode(${pcm[i]}) = ${codes[i]}, reference ${referenceEncode(pcm[i])}`);
    }
  }
});

Deno.test("encode(decode(code)) gives the code back, except 0x7F (-0 → +0)", () => {
  for (let code = 0; code < 256; code++) {
    const expected = code === 0x7f ? 0xff : code;
    assert.equal(
      mulawEncodeSample(mulawDecodeSample(code)),
      expected,
      `code 0x${code.toString(16)}`,
    );
  }
});

Deno.test("encoding at zero, segment boundaries and the clip level", () => {
  assert.equal(mulawEncodeSample(0), 0xff);
  assert.equal(mulawEncodeSample(-1), 0x7f);
  assert.equal(mulawEncodeSample(3), 0xff);
  assert.equal(mulawEncodeSample(4), 0xfe);
  assert.equal(mulawEncodeSample(123), 0xf0); // last value of segment 0
  assert.equal(mulawEncodeSample(124), 0xef); // first value of segment 1
  assert.equal(mulawEncodeSample(-124), 0x6f);
  assert.equal(mulawEncodeSample(32635), 0x80);
  assert.equal(mulawEncodeSample(32767), 0x80);
  assert.equal(mulawEncodeSample(-32768), 0x00);
  assert.equal(mulawEncodeSample(100000), 0x80); // clamped
  assert.equal(mulawEncodeSample(-100000), 0x00);
});

Deno.test("output buffers are reused and length-checked", () => {
  const bytes = new Uint8Array([0x00, 0x80, 0xff]);
  const floats = new Float32Array(3);
  assert.equal(mulawToFloat32(bytes, floats), floats);
  assert.deepEqual([...floats], [-32124 / 32768, 32124 / 32768, 0].map(Math.fround));
  const bigger = new Float32Array(10);
  const part = mulawToFloat32(bytes, bigger);
  assert.equal(part.length, 3);
  assert.equal(part.buffer, bigger.buffer);
  const pcm = new Int16Array(3);
  assert.equal(mulawDecode(bytes, pcm), pcm);
  const out = new Uint8Array(3);
  assert.equal(mulawEncode(pcm, out), out);
  assert.deepEqual([...out], [0x00, 0x80, 0xff]);
  assert.throws(() => mulawDecode(bytes, new Int16Array(2)), RangeError);
});

Deno.test("floatToMulaw scales by 32768 and clamps", () => {
  const codes = floatToMulaw(new Float32Array([0, 1, -1, 2, -2, 132 / 32768]));
  assert.deepEqual([...codes], [0xff, 0x80, 0x00, 0x80, 0x00, 0xef]);
});

Deno.test("agrees with alawmulaw (the G.711 reference, another author) on every code and sample", () => {
  for (let code = 0; code < 256; code++) {
    // `+ 0`: alawmulaw gives -0 for code 0x7f.
    assert.equal(mulawDecodeSample(code), alawmulaw.mulaw.decodeSample(code) + 0, `code ${code}`);
  }
  for (let pcm = -32768; pcm < 32768; pcm++) {
    // `& 0xff`: alawmulaw returns the inverted code as a negative number.
    assert.equal(mulawEncodeSample(pcm), alawmulaw.mulaw.encodeSample(pcm) & 0xff, `pcm ${pcm}`);
  }
});

Deno.test("agrees with ffmpeg: decoding exactly, encoding within one step at decision levels", async () => {
  // Decode: all 256 codes through ffmpeg's pcm_mulaw decoder.
  const codes = Uint8Array.from({ length: 256 }, (_, i) => i);
  const raw = await ffmpeg(
    codes,
    "-f",
    "mulaw",
    "-ar",
    "8000",
    "-ac",
    "1",
    "-i",
    "-",
    "-f",
    "s16le",
  );
  const ffmpegPcm = new Int16Array(raw.buffer, raw.byteOffset, 256);
  for (let code = 0; code < 256; code++) assert.equal(mulawDecodeSample(code), ffmpegPcm[code]);

  // Encode: every int16 value.
  const pcm = new Int16Array(65536);
  for (let i = 0; i < pcm.length; i++) pcm[i] = i - 32768;
  const ffmpegCodes = await ffmpeg(
    new Uint8Array(pcm.buffer),
    ..."-f s16le -ar 8000 -ac 1 -i - -c:a pcm_mulaw -f mulaw".split(" "),
  );
  assert.equal(ffmpegCodes.length, pcm.length);
  const ours = mulawEncode(pcm);
  let differ = 0;
  for (let i = 0; i < pcm.length; i++) {
    if (ours[i] === ffmpegCodes[i]) continue;
    differ++;
    const a = ours[i];
    const b = ffmpegCodes[i];
    // ffmpeg rounds to the nearest level on a 14-bit grid, G.711 truncates within the step:
    // they may differ by one step of the same sign, with the input between the two levels.
    const oneStep = (a & 0x80) === (b & 0x80) && Math.abs(a - b) === 1;
    const [low, high] = [mulawDecodeSample(a), mulawDecodeSample(b)].sort((x, y) => x - y);
    assert.ok(
      oneStep && low <= pcm[i] && pcm[i] <= high,
      `pcm ${pcm[i]}: ours 0x${a.toString(16)}, ffmpeg 0x${b.toString(16)}`,
    );
  }
  assert.ok(differ < pcm.length / 50, `${differ} of 65536 codes differ from ffmpeg`);
});

/** Pipes `input` through ffmpeg (`args` up to the output format) and returns its stdout. */
async function ffmpeg(input: Uint8Array, ...args: string[]): Promise<Uint8Array> {
  const child = new Deno.Command(FFMPEG, {
    args: ["-v", "error", ...args, "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(input);
  await writer.close();
  const result = await child.output();
  if (!result.success) {
    throw new Error(`ffmpeg ${args.join(" ")}: ${new TextDecoder().decode(result.stderr)}`);
  }
  return result.stdout;
}
