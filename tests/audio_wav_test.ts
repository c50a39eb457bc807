import assert from "node:assert/strict";
import {
  readWav,
  readWavFile,
  resample,
  toCallAudio,
  writeMulawWav,
  writeWav,
} from "../lib/audio/wav.ts";
import { mulawToFloat32 } from "../lib/audio/mulaw.ts";
import alawmulaw from "alawmulaw";
import wavefile from "wavefile";
import { findFfmpeg } from "../lib/laptop_audio/find_ffmpeg.ts";
import { UserError } from "../lib/user_error.ts";

const LIBRISPEECH = "/work/shared/audio/librispeech-samples/2830-3980-0043.wav";
const ALLISON = "/work/shared/audio/asterisk-allison-8k/demo-thanks.wav";

// Independent references that ship with the project: ffmpeg (FFMPEG_PATH, the PATH's, or the
// npm package's build) and the npm codecs wavefile and alawmulaw.
const found = await findFfmpeg(Deno.env.get("FFMPEG_PATH") || undefined);
if (found.path === undefined) throw new Error(found.why);
const FFMPEG = found.path;

/** Runs ffmpeg quietly with `args`; throws with its stderr when it fails. */
async function ffmpeg(...args: string[]): Promise<void> {
  const result = await new Deno.Command(FFMPEG, {
    args: ["-v", "error", ...args],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!result.success) {
    throw new Error(`ffmpeg ${args.join(" ")}: ${new TextDecoder().decode(result.stderr)}`);
  }
}

/** A WAV written by the wavefile package: `channels` 440 Hz tones, louder per channel. */
function wavefileTone(rate: number, channels: number, depth: string, frames = rate / 2) {
  const wav = new wavefile.WaveFile();
  const law = depth === "mulaw" || depth === "alaw";
  const written = law ? "16" : depth;
  const full = { "8": 127, "16": 32767, "24": 8388607, "32": 2147483647 }[written] ?? 1;
  const ints = Array.from({ length: channels }, (_, c) =>
    Array.from({ length: frames }, (_, i) => {
      const x = 0.5 * (c + 1) / channels * Math.sin(2 * Math.PI * 440 * i / rate);
      return depth === "32f" || depth === "64"
        ? x
        : Math.round(x * full) + (depth === "8" ? 128 : 0);
    }));
  wav.fromScratch(channels, rate, written, channels === 1 ? ints[0] : ints);
  if (depth === "mulaw") wav.toMuLaw();
  if (depth === "alaw") wav.toALaw();
  // What each frame should read as (channels averaged), from wavefile's own numbers.
  const codes = law ? wav.getSamples(true) as Float64Array : undefined;
  const value = (c: number, i: number) => {
    if (depth === "mulaw") return alawmulaw.mulaw.decodeSample(codes![i * channels + c]) / 32768;
    if (depth === "alaw") return alawmulaw.alaw.decodeSample(codes![i * channels + c]) / 32768;
    if (depth === "8") return (ints[c][i] - 128) / 128;
    return ints[c][i] / (full === 1 ? 1 : full + 1);
  };
  const expected = Float32Array.from({ length: frames }, (_, i) => {
    let sum = 0;
    for (let c = 0; c < channels; c++) sum += value(c, i);
    return sum / channels;
  });
  return { bytes: wav.toBuffer(), expected };
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "callscribe-wav-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function sine(freq: number, rate: number, seconds: number, amplitude = 0.5): Float32Array {
  const out = new Float32Array(Math.round(rate * seconds));
  for (let i = 0; i < out.length; i++) out[i] = amplitude * Math.sin(2 * Math.PI * freq * i / rate);
  return out;
}

/** RMS over the middle of the signal (skips filter edges). */
function rms(samples: Float32Array): number {
  const from = Math.floor(samples.length / 4);
  const to = Math.floor(samples.length * 3 / 4);
  let sum = 0;
  for (let i = from; i < to; i++) sum += samples[i] * samples[i];
  return Math.sqrt(sum / (to - from));
}

/** Amplitude of one frequency (single-bin DFT over the middle). */
function toneAmplitude(samples: Float32Array, freq: number, rate: number): number {
  const from = Math.floor(samples.length / 4);
  const to = Math.floor(samples.length * 3 / 4);
  let re = 0;
  let im = 0;
  for (let i = from; i < to; i++) {
    re += samples[i] * Math.cos(2 * Math.PI * freq * i / rate);
    im += samples[i] * Math.sin(2 * Math.PI * freq * i / rate);
  }
  return 2 * Math.hypot(re, im) / (to - from);
}

function zeroCrossings(samples: Float32Array): number {
  let n = 0;
  for (let i = 1; i < samples.length; i++) if ((samples[i - 1] < 0) !== (samples[i] < 0)) n++;
  return n;
}

async function expectWavError(promise: Promise<unknown>, ...parts: (string | RegExp)[]) {
  const error = await promise.then(() => null, (e) => e);
  assert.ok(error instanceof UserError, `expected a UserError, got ${error}`);
  for (const part of parts) {
    if (typeof part === "string") assert.ok(error.message.includes(part), error.message);
    else assert.match(error.message, part);
  }
  return error as UserError;
}

Deno.test("writeWav → readWav round-trips 16-bit mono", () => {
  const samples = sine(440, 16000, 0.25);
  const wav = readWav(writeWav(samples, 16000));
  assert.equal(wav.sampleRate, 16000);
  assert.equal(wav.channels, 1);
  assert.equal(wav.samples.length, samples.length);
  for (let i = 0; i < samples.length; i++) {
    assert.ok(Math.abs(wav.samples[i] - samples[i]) <= 1 / 32768, `sample ${i}`);
  }
  const ints = new Int16Array([0, 1, -1, 32767, -32768]);
  const back = readWav(writeWav(ints, 8000)).samples;
  assert.deepEqual([...back].map((s) => s * 32768), [...ints]);
});

Deno.test("writeMulawWav writes format 7 that readWav, ffmpeg and wavefile read back", async () => {
  const codes = Uint8Array.from({ length: 801 }, (_, i) => i & 0xff); // odd: padded
  const file = writeMulawWav(codes);
  assert.equal(file.length % 2, 0);
  const wav = readWav(file);
  assert.equal(wav.sampleRate, 8000);
  assert.equal(wav.samples.length, 801);
  assert.deepEqual(wav.samples, mulawToFloat32(codes));
  const reference = Array.from(codes, (c) => alawmulaw.mulaw.decodeSample(c));
  await withTempDir(async (dir) => {
    await Deno.writeFile(`${dir}/u.wav`, file);
    await ffmpeg("-i", `${dir}/u.wav`, "-f", "s16le", "-c:a", "pcm_s16le", `${dir}/u.s16`);
    const raw = await Deno.readFile(`${dir}/u.s16`);
    assert.deepEqual(new Int16Array(raw.buffer, 0, raw.length / 2), Int16Array.from(reference));
  });
  const parsed = new wavefile.WaveFile(file);
  const fmt = parsed.fmt as { audioFormat: number; sampleRate: number; bitsPerSample: number };
  assert.deepEqual(
    { format: fmt.audioFormat, rate: fmt.sampleRate, bits: fmt.bitsPerSample },
    { format: 7, rate: 8000, bits: 8 },
  );
  parsed.fromMuLaw();
  // wavefile also returns the RIFF pad byte after an odd-sized data chunk as a sample.
  const decoded = Int16Array.from((parsed.getSamples(true) as Float64Array).subarray(0, 801));
  assert.deepEqual(decoded, Int16Array.from(reference));
});

Deno.test("reads WAV files written by wavefile and ffmpeg in every supported encoding", async () => {
  await withTempDir(async (dir) => {
    const cases: { name: string; rate: number; channels: number; frames: number }[] = [];
    const wavefileCases: [string, number, number, string][] = [
      ["s16.wav", 16000, 1, "16"],
      ["s24.wav", 44100, 2, "24"],
      ["s32.wav", 48000, 1, "32"],
      ["u8.wav", 11025, 1, "8"],
      ["f32.wav", 22050, 1, "32f"],
      ["f64.wav", 16000, 1, "64"],
      ["ulaw.wav", 8000, 1, "mulaw"],
      ["alaw.wav", 8000, 1, "alaw"],
      ["stereo.wav", 44100, 2, "16"],
      // wavefile writes WAVE_FORMAT_EXTENSIBLE for more than 2 channels.
      ["six.wav", 48000, 6, "16"],
    ];
    for (const [name, rate, channels, depth] of wavefileCases) {
      const { bytes, expected } = wavefileTone(rate, channels, depth, Math.floor(rate / 2));
      await Deno.writeFile(`${dir}/${name}`, bytes);
      cases.push({ name, rate, channels, frames: expected.length });
      // Sample for sample what wavefile wrote (channels averaged).
      const wav = readWav(bytes);
      const worst = wav.samples.reduce((m, x, i) => Math.max(m, Math.abs(x - expected[i])), 0);
      assert.ok(worst < 1e-6, `${name}: off by ${worst}`);
    }
    const ff = (name: string, args: string[]) =>
      ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "sine=f=440:d=0.5:sample_rate=48000",
        ...args,
        "-y",
        `${dir}/${name}`,
      );
    const ffCases: [string, string[], number, number][] = [
      ["ff_s24_stereo.wav", ["-ac", "2", "-c:a", "pcm_s24le"], 48000, 2],
      ["ff_s16_44k.wav", ["-ar", "44100", "-c:a", "pcm_s16le"], 44100, 1],
      ["ff_f32.wav", ["-c:a", "pcm_f32le"], 48000, 1],
      ["ff_u8.wav", ["-ar", "8000", "-c:a", "pcm_u8"], 8000, 1],
      ["ff_mulaw.wav", ["-ar", "8000", "-c:a", "pcm_mulaw"], 8000, 1],
      ["ff_alaw.wav", ["-ar", "8000", "-c:a", "pcm_alaw"], 8000, 1],
      ["ff_s32.wav", ["-c:a", "pcm_s32le"], 48000, 1],
      // ffmpeg writes WAVE_FORMAT_EXTENSIBLE for >2 channels, and a LIST chunk (metadata).
      ["ff_ext_4ch.wav", ["-ac", "4", "-c:a", "pcm_s16le", "-metadata", "title=x"], 48000, 4],
    ];
    for (const [name, args, rate, channels] of ffCases) {
      await ff(name, args);
      cases.push({ name, rate, channels, frames: rate / 2 });
    }

    for (const c of cases) {
      const wav = await readWavFile(`${dir}/${c.name}`);
      assert.equal(wav.sampleRate, c.rate, c.name);
      assert.equal(wav.channels, c.channels, c.name);
      assert.equal(wav.samples.length, c.frames, c.name);
      // A 440 Hz tone: about 440 cycles a second, sensible level, in range.
      const crossings = zeroCrossings(wav.samples) / 0.5 / 2;
      assert.ok(Math.abs(crossings - 440) < 5, `${c.name}: ${crossings} Hz`);
      const level = rms(wav.samples);
      assert.ok(level > 0.01 && level < 0.75, `${c.name}: rms ${level}`);
      assert.ok(wav.samples.every((s) => s >= -1 && s <= 1), c.name);
    }
  });
});

Deno.test("reads WAVE_FORMAT_EXTENSIBLE (ffmpeg 24-bit stereo) and skips LIST chunks", async () => {
  await withTempDir(async (dir) => {
    await ffmpeg(
      ..."-f lavfi -i sine=f=440:d=0.5:sample_rate=44100 -ac 2 -c:a pcm_s24le -y".split(" "),
      `${dir}/x.wav`,
    );
    const bytes = await Deno.readFile(`${dir}/x.wav`);
    const format = new DataView(bytes.buffer).getUint16(20, true);
    assert.equal(format, 0xfffe, "ffmpeg writes 24-bit as WAVE_FORMAT_EXTENSIBLE");
    assert.equal(readWav(bytes).samples.length, 22050);

    await ffmpeg(
      ..."-f lavfi -i sine=f=440:d=0.5 -metadata artist=someone -y".split(" "),
      `${dir}/l.wav`,
    );
    const listed = await Deno.readFile(`${dir}/l.wav`);
    assert.ok(new TextDecoder().decode(listed.subarray(0, 200)).includes("LIST"));
    assert.equal(readWav(listed).samples.length, 22050);
  });
});

Deno.test("handles odd-sized chunks (padding) before the data", () => {
  const base = writeWav(new Int16Array([1000, -1000, 2000]), 8000);
  // Insert an odd 3-byte "junk" chunk (+1 pad byte) after fmt.
  const junk = new Uint8Array([0x6a, 0x75, 0x6e, 0x6b, 3, 0, 0, 0, 1, 2, 3, 0]);
  const bytes = new Uint8Array(base.length + junk.length);
  bytes.set(base.subarray(0, 36));
  bytes.set(junk, 36);
  bytes.set(base.subarray(36), 36 + junk.length);
  new DataView(bytes.buffer).setUint32(4, bytes.length - 8, true);
  const wav = readWav(bytes);
  assert.deepEqual([...wav.samples].map((s) => Math.round(s * 32768)), [1000, -1000, 2000]);
});

Deno.test("reads the real sample files with the right durations", async () => {
  const speech = await readWavFile(LIBRISPEECH);
  assert.equal(speech.sampleRate, 16000);
  assert.equal(speech.channels, 1);
  assert.equal(speech.samples.length, 31600); // 1.975 s
  assert.ok(rms(speech.samples) > 0.005);

  const thanks = await readWavFile(ALLISON);
  assert.equal(thanks.sampleRate, 8000);
  assert.equal(thanks.samples.length, 44140); // 5.5175 s

  const call = toCallAudio(speech);
  assert.equal(call.length, 15800); // 8 kHz, same duration
  assert.equal(toCallAudio(thanks).length, 44140);
});

Deno.test("errors name the file, the problem and the fix", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeFile(`${dir}/empty.wav`, new Uint8Array(0));
    await expectWavError(readWavFile(`${dir}/empty.wav`), `${dir}/empty.wav: `, "empty");

    await Deno.writeTextFile(`${dir}/notes.wav`, "hello, this is not audio\n");
    const text = await expectWavError(
      readWavFile(`${dir}/notes.wav`),
      `${dir}/notes.wav: `,
      "no RIFF header",
      "ffmpeg -i",
    );
    assert.ok(text.message.includes("convert it with"));

    const good = writeWav(sine(440, 8000, 0.1), 8000);
    await Deno.writeFile(`${dir}/cut.wav`, good.subarray(0, 30));
    await expectWavError(readWavFile(`${dir}/cut.wav`), `${dir}/cut.wav: `, "truncated");
    await Deno.writeFile(`${dir}/cut8.wav`, good.subarray(0, 8));
    await expectWavError(readWavFile(`${dir}/cut8.wav`), `${dir}/cut8.wav: `, "truncated");

    // IMA ADPCM from wavefile, Microsoft ADPCM from ffmpeg: real files we do not decode.
    const adpcm = new wavefile.WaveFile();
    adpcm.fromScratch(
      1,
      8000,
      "16",
      Array.from(sine(440, 8000, 0.2), (x) => Math.round(x * 32767)),
    );
    adpcm.toIMAADPCM();
    await Deno.writeFile(`${dir}/adpcm.wav`, adpcm.toBuffer());
    await expectWavError(
      readWavFile(`${dir}/adpcm.wav`),
      `${dir}/adpcm.wav: `,
      "IMA ADPCM",
      "0x0011",
      "pcm_s16le",
    );

    await ffmpeg(
      ..."-f lavfi -i sine=f=440:d=0.2:sample_rate=8000 -c:a adpcm_ms -y".split(" "),
      `${dir}/ms.wav`,
    );
    await expectWavError(
      readWavFile(`${dir}/ms.wav`),
      `${dir}/ms.wav: `,
      "unsupported",
      "Microsoft ADPCM",
    );

    await expectWavError(readWavFile(`${dir}/missing.wav`), `${dir}/missing.wav: `, "not found");
    await expectWavError(readWavFile(dir), `${dir}: `);
  });
  assert.throws(
    () => readWav(new Uint8Array(0), "demo/x.wav"),
    /^UserError: demo\/x\.wav: file is empty/,
  );
  assert.throws(
    () => readWav(new TextEncoder().encode("ID3 not a wav")),
    (e: Error) => e instanceof UserError,
  );
});

Deno.test("resample 16k → 8k keeps a 1 kHz tone's frequency and amplitude", () => {
  const out = resample(sine(1000, 16000, 1, 0.5), 16000, 8000);
  assert.equal(out.length, 8000);
  const amplitude = toneAmplitude(out, 1000, 8000);
  assert.ok(Math.abs(amplitude - 0.5) < 0.005, `amplitude ${amplitude}`);
  assert.ok(Math.abs(zeroCrossings(out.subarray(100, 7900)) / 2 / 0.975 - 1000) < 5);
  assert.ok(Math.abs(rms(out) - 0.5 / Math.SQRT2) < 0.005);
});

Deno.test("resample 16k → 8k removes a 6 kHz tone instead of aliasing it to 2 kHz", () => {
  const out = resample(sine(6000, 16000, 1, 0.5), 16000, 8000);
  const alias = toneAmplitude(out, 2000, 8000);
  assert.ok(
    alias < 0.5 / 1000,
    `2 kHz alias at ${alias} (−${(20 * Math.log10(0.5 / alias)).toFixed(0)} dB)`,
  );
  assert.ok(rms(out) < 0.5 / 1000, `rms ${rms(out)}`);
});

Deno.test("resample handles 44.1k → 8k, 8k → 16k and equal rates", () => {
  const down = resample(sine(440, 44100, 1), 44100, 8000);
  assert.equal(down.length, 8000);
  assert.ok(Math.abs(toneAmplitude(down, 440, 8000) - 0.5) < 0.005);
  const up = resample(sine(440, 8000, 1), 8000, 16000);
  assert.equal(up.length, 16000);
  assert.ok(Math.abs(toneAmplitude(up, 440, 16000) - 0.5) < 0.005);
  const odd = resample(sine(440, 44101, 1), 44101, 8000); // no small ratio: quantized phases
  assert.equal(odd.length, 8000);
  assert.ok(Math.abs(toneAmplitude(odd, 440, 8000) - 0.5) < 0.01);
  const same = new Float32Array([0.1, 0.2]);
  const copy = resample(same, 8000, 8000);
  assert.deepEqual(copy, same);
  assert.notEqual(copy, same);
  assert.equal(resample(new Float32Array(0), 16000, 8000).length, 0);
});

Deno.test("resampling three minutes of 44.1 kHz audio gives the right length", () => {
  const out = resample(sine(300, 44100, 180, 0.3), 44100, 8000);
  assert.equal(out.length, 8000 * 180);
});

Deno.test("toCallAudio gives 8 kHz µ-law of the same duration", () => {
  const call = toCallAudio({ sampleRate: 16000, channels: 1, samples: sine(1000, 16000, 0.5) });
  assert.equal(call.length, 4000);
  const back = mulawToFloat32(call);
  assert.ok(Math.abs(toneAmplitude(back, 1000, 8000) - 0.5) < 0.01);
});
