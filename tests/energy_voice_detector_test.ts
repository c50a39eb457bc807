/**
 * The energy voice detector on real speech: the end of an utterance seen
 * `minSilenceMs` after it, on a clean line and over steady noise; no end
 * inside a short pause; none heard in noise alone.
 */
import assert from "node:assert/strict";
import { readWavFile, resample } from "../lib/audio/wav.ts";
import {
  ENERGY_DETECTOR_DEFAULTS,
  EnergyVoiceDetector,
} from "../lib/transcribe/energy_voice_detector.ts";
import type { SpeechEvent } from "../lib/transcribe/voice_detector.ts";
import { createVoiceDetector } from "../lib/transcribe/create_voice_detector.ts";
import { audioSet, energyBounds } from "./helpers.ts";

const RATE = 8000;
const options = { ...ENERGY_DETECTOR_DEFAULTS, sampleRate: RATE, minSilenceMs: 300 };

/** A real utterance, cut to its speech (the file's own silence off). */
async function utterance(): Promise<Float32Array> {
  const [u] = await audioSet("librispeech-samples");
  const wav = await readWavFile(u.path);
  const samples = resample(wav.samples, wav.sampleRate, RATE);
  const { startMs, endMs } = energyBounds(samples, RATE);
  return samples.subarray((startMs * RATE) / 1000, (endMs * RATE) / 1000);
}

/** `parts` one after the other: audio, or a number of ms of silence. */
function join(...parts: Array<Float32Array | number>): Float32Array {
  const arrays = parts.map((p) => typeof p === "number" ? new Float32Array((p * RATE) / 1000) : p);
  const out = new Float32Array(arrays.reduce((n, a) => n + a.length, 0));
  let offset = 0;
  for (const a of arrays) {
    out.set(a, offset);
    offset += a.length;
  }
  return out;
}

/** Adds white noise at `dbfs` (RMS), from a fixed seed. */
function withNoise(samples: Float32Array, dbfs: number): Float32Array {
  let seed = 12345;
  const uniform = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
  // Uniform noise in ±a has RMS a/√3.
  const amplitude = 10 ** (dbfs / 20) * Math.sqrt(3);
  return samples.map((x) => x + amplitude * uniform());
}

function detect(detector: { push(s: Float32Array): SpeechEvent[] }, audio: Float32Array) {
  const events: SpeechEvent[] = [];
  for (let i = 0; i < audio.length; i += 160) {
    events.push(...detector.push(audio.subarray(i, i + 160)));
  }
  return events;
}

Deno.test("an utterance ends minSilenceMs after its last word, on a clean line and over steady noise", async () => {
  const speech = await utterance();
  for (const noiseDbfs of [null, -45, -35]) {
    const clean = join(1000, speech, 1500);
    const audio = noiseDbfs === null ? clean : withNoise(clean, noiseDbfs);
    const end = 1000 + (speech.length * 1000) / RATE;
    const events = detect(new EnergyVoiceDetector(options), audio);
    const said = `noise ${noiseDbfs} dBFS: ${JSON.stringify(events)}, speech ends at ${end} ms`;
    assert.deepEqual(events.map((e) => e.type), ["speech-start", "speech-end"], said);
    const ended = events[1] as Extract<SpeechEvent, { type: "speech-end" }>;
    // Seen once 300 ms of silence have passed (20 ms frames), where the speech is; noise hides
    // the quietest end of the last word, so the end may be heard up to 150 ms sooner.
    assert.ok(ended.atMs >= end + 150 && ended.atMs <= end + 340, said);
    assert.ok(Math.abs(ended.endMs - end) <= 150, said);
    assert.ok(ended.startMs >= 950 && ended.startMs <= 1200, said);
  }
});

Deno.test("a pause shorter than minSilenceMs does not end the speech; a longer one does", async () => {
  const speech = await utterance();
  const short = detect(new EnergyVoiceDetector(options), join(500, speech, 200, speech, 1000));
  assert.deepEqual(short.map((e) => e.type), ["speech-start", "speech-end"]);
  const long = detect(new EnergyVoiceDetector(options), join(500, speech, 600, speech, 1000));
  assert.deepEqual(long.map((e) => e.type), [
    "speech-start",
    "speech-end",
    "speech-start",
    "speech-end",
  ]);
});

Deno.test("noise alone is never speech: the floor follows the line", () => {
  for (const dbfs of [-60, -40, -20]) {
    const events = detect(new EnergyVoiceDetector(options), withNoise(join(5000), dbfs));
    assert.deepEqual(events, [], `white noise at ${dbfs} dBFS`);
  }
});

Deno.test("reset starts a new stream: the same audio gives the same events", async () => {
  const audio = join(500, await utterance(), 1000);
  const fresh = detect(new EnergyVoiceDetector(options), audio);
  const reused = new EnergyVoiceDetector(options);
  detect(reused, withNoise(join(3000), -30));
  reused.reset();
  assert.equal(reused.positionMs, 0);
  assert.deepEqual(detect(reused, audio), fresh);
});

Deno.test("createVoiceDetector makes either kind; a bad rate is a clear error", async () => {
  const audio = join(500, await utterance(), 1000);
  for (const kind of ["energy", "silero"] as const) {
    const detector = createVoiceDetector({
      kind,
      sampleRate: 8000,
      minSilenceMs: 300,
      threshold: 0.5,
    });
    assert.deepEqual(
      detect(detector, audio).map((e) => e.type),
      ["speech-start", "speech-end"],
      kind,
    );
  }
  assert.throws(
    () => new EnergyVoiceDetector({ ...options, sampleRate: 0 }),
    /sampleRate must be positive, got 0/,
  );
});
