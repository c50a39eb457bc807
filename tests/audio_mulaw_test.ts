import assert from "node:assert/strict";
import {
  floatToMulaw,
  MULAW_SILENCE,
  mulawDecode,
  mulawDecodeSample,
  mulawEncode,
  mulawEncodeSample,
  mulawToFloat32,
} from "../lib/audio/mulaw.ts";
import { writeWav } from "../lib/audio/wav.ts";

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

Deno.test("agrees with sox: decoding exactly, encoding within one step at decision levels", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // Decode: all 256 codes through sox.
    await Deno.writeFile(`${dir}/codes.ul`, Uint8Array.from({ length: 256 }, (_, i) => i));
    await sox([
      "-t",
      "raw",
      "-e",
      "mu-law",
      "-r",
      "8000",
      "-c",
      "1",
      `${dir}/codes.ul`,
      "-t",
      "raw",
      "-e",
      "signed",
      "-b",
      "16",
      `${dir}/codes.s16`,
    ]);
    const raw = await Deno.readFile(`${dir}/codes.s16`);
    const soxPcm = new Int16Array(raw.buffer, raw.byteOffset, 256);
    for (let code = 0; code < 256; code++) assert.equal(mulawDecodeSample(code), soxPcm[code]);

    // Encode: every int16 value; -D turns off sox's dither.
    const pcm = new Int16Array(65536);
    for (let i = 0; i < pcm.length; i++) pcm[i] = i - 32768;
    await Deno.writeFile(`${dir}/all.wav`, writeWav(pcm, 8000));
    await sox(["-D", `${dir}/all.wav`, "-e", "mu-law", "-t", "raw", `${dir}/all.ul`]);
    const soxCodes = await Deno.readFile(`${dir}/all.ul`);
    const ours = mulawEncode(pcm);
    let differ = 0;
    for (let i = 0; i < pcm.length; i++) {
      if (ours[i] === soxCodes[i]) continue;
      differ++;
      const a = ours[i];
      const b = soxCodes[i];
      // Both zeros (sox prefers +0 for -1, -2), or one step apart, same sign.
      const bothZero = mulawDecodeSample(a) === 0 && mulawDecodeSample(b) === 0;
      const oneStep = (a & 0x80) === (b & 0x80) && Math.abs(a - b) === 1;
      assert.ok(
        bothZero || oneStep,
        `pcm ${pcm[i]}: ours 0x${a.toString(16)}, sox 0x${b.toString(16)}`,
      );
      // sox rounds to 14 bits first; ours (the G.711 reference) is never further from the input.
      const ourError = Math.abs(mulawDecodeSample(a) - pcm[i]);
      const soxError = Math.abs(mulawDecodeSample(b) - pcm[i]);
      assert.ok(ourError <= soxError, `pcm ${pcm[i]}: ours off by ${ourError}, sox by ${soxError}`);
    }
    assert.ok(differ < pcm.length / 100, `${differ} of 65536 codes differ from sox`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function sox(args: string[]): Promise<void> {
  const result = await new Deno.Command("sox", { args, stderr: "piped" }).output();
  if (!result.success) {
    throw new Error(`sox ${args.join(" ")}: ${new TextDecoder().decode(result.stderr)}`);
  }
}
