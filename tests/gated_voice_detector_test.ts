/**
 * The loudness gate the local engine puts before Silero: Silero (real, on
 * real speech) hears the speech and the same events come out, but not the
 * silence before it or after its end; a loud click alone opens the gate for
 * a second at most.
 */
import assert from "node:assert/strict";
import { readWavFile, resample } from "../lib/audio/wav.ts";
import { GatedVoiceDetector } from "../lib/transcribe/gated_voice_detector.ts";
import { SileroVoiceDetector } from "../lib/transcribe/silero_voice_detector.ts";
import type { SpeechEvent, VoiceDetector } from "../lib/transcribe/voice_detector.ts";
import { audioSet } from "./helpers.ts";

const RATE = 16000;
const FRAME = RATE / 50;
const options = { sampleRate: RATE, threshold: 0.5, minSilenceMs: 300, minSpeechMs: 100 } as const;

/** Real Silero, counting what it is given. */
class Counted implements VoiceDetector {
  readonly inner = new SileroVoiceDetector(options);
  heard = 0;
  resets = 0;
  readonly sampleRate = RATE;
  get speaking(): boolean {
    return this.inner.speaking;
  }
  push(samples: Float32Array): SpeechEvent[] {
    this.heard += samples.length;
    return this.inner.push(samples);
  }
  reset(): void {
    this.resets++;
    this.inner.reset();
  }
}

function detect(detector: VoiceDetector, samples: Float32Array): SpeechEvent[] {
  const events: SpeechEvent[] = [];
  for (let i = 0; i < samples.length; i += FRAME) {
    events.push(...detector.push(samples.subarray(i, i + FRAME)));
  }
  return events;
}

/** An utterance between `padMs` of digital silence. */
async function padded(padMs: number): Promise<Float32Array> {
  const [u] = await audioSet("librispeech-samples");
  const wav = await readWavFile(u.path);
  const speech = resample(wav.samples, wav.sampleRate, RATE);
  const pad = (padMs * RATE) / 1000;
  const out = new Float32Array(speech.length + 2 * pad);
  out.set(speech, pad);
  return out;
}

Deno.test("behind the gate Silero hears the speech, not the silence around it", async () => {
  const audio = await padded(2000);
  const alone = detect(new SileroVoiceDetector(options), audio).map((e) => e.type);
  const counted = new Counted();
  const gated = new GatedVoiceDetector(counted);
  const events = detect(gated, audio).map((e) => e.type);
  assert.deepEqual(alone, ["speech-start", "speech-end"]);
  assert.deepEqual(events, alone);
  assert.equal(gated.speaking, false);
  // Neither the 2 s before the speech nor what follows its end reached Silero.
  assert.ok(counted.heard < audio.length - 2 * RATE, `heard ${counted.heard} of ${audio.length}`);
  assert.equal(counted.resets, 1, "the speech end closes the gate");
  // The gate opens again for the next speech.
  assert.deepEqual(detect(gated, audio).map((e) => e.type), alone);
});

Deno.test("a loud click opens the gate for a second of silence, then it closes", () => {
  const click = new Float32Array(FRAME).map((_, i) => (i % 2 ? 0.2 : -0.2));
  const audio = new Float32Array(FRAME + 3 * RATE);
  audio.set(click);
  const counted = new Counted();
  assert.deepEqual(detect(new GatedVoiceDetector(counted), audio), []);
  assert.equal(counted.resets, 1);
  assert.equal(counted.heard, RATE, "one second from the click on");
});

Deno.test("quiet audio never reaches the detector", () => {
  const hiss = new Float32Array(3 * RATE).map((_, i) => (i % 2 ? 0.001 : -0.001));
  const counted = new Counted();
  assert.deepEqual(detect(new GatedVoiceDetector(counted), hiss), []);
  assert.equal(counted.heard, 0);
});
