import assert from "node:assert/strict";
import {
  readWav,
  readWavFile,
  resample,
  toCallAudio,
  writeMulawWav,
  writeWav,
} from "../lib/audio/wav.ts";
import { mulawDecodeSample, mulawToFloat32 } from "../lib/audio/mulaw.ts";
import { UserError } from "../lib/user_error.ts";

const LIBRISPEECH = "/work/shared/audio/librispeech-samples/2830-3980-0043.wav";
const ALLISON = "/work/shared/audio/asterisk-allison-8k/demo-thanks.wav";

async function run(command: string, args: string[]): Promise<void> {
  const result = await new Deno.Command(command, { args, stdout: "null", stderr: "piped" })
    .output();
  if (!result.success) {
    throw new Error(`${command} ${args.join(" ")}: ${new TextDecoder().decode(result.stderr)}`);
  }
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

Deno.test("writeMulawWav writes format 7 that readWav and sox read back", async () => {
  const codes = Uint8Array.from({ length: 801 }, (_, i) => i & 0xff); // odd: padded
  const file = writeMulawWav(codes);
  assert.equal(file.length % 2, 0);
  const wav = readWav(file);
  assert.equal(wav.sampleRate, 8000);
  assert.equal(wav.samples.length, 801);
  assert.deepEqual(wav.samples, mulawToFloat32(codes));
  await withTempDir(async (dir) => {
    await Deno.writeFile(`${dir}/u.wav`, file);
    await run("sox", [`${dir}/u.wav`, "-t", "raw", "-e", "signed", "-b", "16", `${dir}/u.s16`]);
    const raw = await Deno.readFile(`${dir}/u.s16`);
    const pcm = new Int16Array(raw.buffer, 0, raw.length / 2);
    assert.equal(pcm.length, 801);
    for (let i = 0; i < 801; i++) assert.equal(pcm[i], mulawDecodeSample(codes[i]));
  });
});

Deno.test("reads WAV files written by sox and ffmpeg in every supported encoding", async () => {
  await withTempDir(async (dir) => {
    const cases: {
      name: string;
      cmd: string;
      args: string[];
      rate: number;
      channels: number;
      frames: number;
    }[] = [
      {
        name: "s16.wav",
        cmd: "sox",
        args: ["-n", "-r", "16000", "-b", "16"],
        rate: 16000,
        channels: 1,
        frames: 8000,
      },
      {
        name: "s24.wav",
        cmd: "sox",
        args: ["-n", "-r", "44100", "-c", "2", "-b", "24"],
        rate: 44100,
        channels: 2,
        frames: 22050,
      },
      {
        name: "s32.wav",
        cmd: "sox",
        args: ["-n", "-r", "48000", "-b", "32", "-e", "signed"],
        rate: 48000,
        channels: 1,
        frames: 24000,
      },
      {
        name: "u8.wav",
        cmd: "sox",
        args: ["-n", "-r", "11025", "-b", "8", "-e", "unsigned"],
        rate: 11025,
        channels: 1,
        frames: 5512,
      },
      {
        name: "f32.wav",
        cmd: "sox",
        args: ["-n", "-r", "22050", "-e", "float", "-b", "32"],
        rate: 22050,
        channels: 1,
        frames: 11025,
      },
      {
        name: "f64.wav",
        cmd: "sox",
        args: ["-n", "-r", "16000", "-e", "float", "-b", "64"],
        rate: 16000,
        channels: 1,
        frames: 8000,
      },
      {
        name: "ulaw.wav",
        cmd: "sox",
        args: ["-n", "-r", "8000", "-e", "mu-law"],
        rate: 8000,
        channels: 1,
        frames: 4000,
      },
      {
        name: "alaw.wav",
        cmd: "sox",
        args: ["-n", "-r", "8000", "-e", "a-law"],
        rate: 8000,
        channels: 1,
        frames: 4000,
      },
      {
        name: "stereo.wav",
        cmd: "sox",
        args: ["-n", "-r", "44100", "-c", "2", "-b", "16"],
        rate: 44100,
        channels: 2,
        frames: 22050,
      },
      {
        name: "six.wav",
        cmd: "sox",
        args: ["-n", "-r", "48000", "-c", "6", "-b", "16"],
        rate: 48000,
        channels: 6,
        frames: 24000,
      },
    ];
    for (const c of cases) {
      await run("sox", [...c.args, `${dir}/${c.name}`, "synth", "0.5", "sine", "440"]);
    }
    const ff = (name: string, args: string[]) =>
      run("ffmpeg", [
        "-v",
        "error",
        "-f",
        "lavfi",
        "-i",
        "sine=f=440:d=0.5:sample_rate=48000",
        ...args,
        "-y",
        `${dir}/${name}`,
      ]);
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
      cases.push({ name, cmd: "ffmpeg", args, rate, channels, frames: rate / 2 });
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

Deno.test("reads WAVE_FORMAT_EXTENSIBLE (sox 24-bit stereo) and skips LIST chunks", async () => {
  await withTempDir(async (dir) => {
    await run("sox", [
      "-n",
      "-r",
      "44100",
      "-c",
      "2",
      "-b",
      "24",
      `${dir}/x.wav`,
      "synth",
      "0.5",
      "sine",
      "440",
    ]);
    const bytes = await Deno.readFile(`${dir}/x.wav`);
    const format = new DataView(bytes.buffer).getUint16(20, true);
    assert.equal(format, 0xfffe, "sox writes 24-bit as WAVE_FORMAT_EXTENSIBLE");
    assert.equal(readWav(bytes).samples.length, 22050);

    await run("ffmpeg", [
      "-v",
      "error",
      "-f",
      "lavfi",
      "-i",
      "sine=f=440:d=0.5",
      "-metadata",
      "artist=someone",
      "-y",
      `${dir}/l.wav`,
    ]);
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

    await run("sox", [
      "-n",
      "-r",
      "8000",
      "-e",
      "ima-adpcm",
      `${dir}/adpcm.wav`,
      "synth",
      "0.2",
      "sine",
      "440",
    ]);
    await expectWavError(
      readWavFile(`${dir}/adpcm.wav`),
      `${dir}/adpcm.wav: `,
      "IMA ADPCM",
      "0x0011",
      "pcm_s16le",
    );

    await run("sox", [
      "-n",
      "-r",
      "8000",
      "-e",
      "gsm-full-rate",
      `${dir}/gsm.wav`,
      "synth",
      "0.2",
      "sine",
      "440",
    ]);
    await expectWavError(readWavFile(`${dir}/gsm.wav`), `${dir}/gsm.wav: `, "unsupported");

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
