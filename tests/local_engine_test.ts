/**
 * The local engine on its own: real sherpa-onnx decoding of real speech,
 * fed µ-law at 8 kHz the way a call delivers it.
 */
import assert from "node:assert/strict";
import { readWavFile } from "../lib/audio/wav.ts";
import type { Transcript } from "../lib/transcribe/engine.ts";
import { sentenceCase, tokensToWords } from "../lib/transcribe/local.ts";
import { audioSet, conversation, sharedEngine, toMulaw } from "./helpers.ts";

/** Where speech starts and ends in a file, by energy (10 ms windows above −34 dBFS). */
async function speechSpan(path: string): Promise<{ startMs: number; endMs: number; ms: number }> {
  const wav = await readWavFile(path);
  const window = wav.sampleRate / 100;
  let first = -1, last = -1;
  for (let i = 0; i + window <= wav.samples.length; i += window) {
    let energy = 0;
    for (let j = i; j < i + window; j++) energy += wav.samples[j] ** 2;
    if (Math.sqrt(energy / window) > 0.02) {
      if (first < 0) first = i;
      last = i + window;
    }
  }
  const ms = (n: number) => (n / wav.sampleRate) * 1000;
  return { startMs: ms(first), endMs: ms(last), ms: ms(wav.samples.length) };
}

Deno.test("each utterance's [start - end] matches where its speech is in the track", async () => {
  const utterances = await audioSet("librispeech-samples");
  const gapMs = 1000;
  const call = await conversation(utterances, gapMs);
  const finals: Transcript[] = [];
  const track = (await sharedEngine()).open("inbound", {
    onTranscript: (t) => t.type === "final" && finals.push(t),
  });
  const audio = toMulaw(call.samples);
  for (let i = 0; i < audio.length; i += 160) track.write(audio.subarray(i, i + 160));
  await track.close();

  assert.equal(finals.length, utterances.length, finals.map((f) => f.text).join(" | "));
  let offset = 0;
  for (const [i, u] of utterances.entries()) {
    const span = await speechSpan(u.path);
    const expected = { startMs: offset + span.startMs, endMs: offset + span.endMs };
    const got = finals[i];
    // The model emits tokens late; SHERPA_TOKEN_DELAY_MS corrects for it.
    assert.ok(
      Math.abs(got.startMs - expected.startMs) <= 250 &&
        Math.abs(got.endMs - expected.endMs) <= 300,
      `"${got.text}" [${got.startMs} - ${got.endMs}], speech at [${expected.startMs} - ${expected.endMs}]`,
    );
    offset += span.ms + gapMs;
  }
});

Deno.test("tracks decoded together give the same transcripts as a lone track; a waiting chunk is decoded within the window", async () => {
  const engine = await sharedEngine();
  const audio = toMulaw(
    (await conversation((await audioSet("librispeech-samples")).slice(0, 2))).samples,
  );
  const feed = async (track: ReturnType<typeof engine.open>, pauseEvery = 0) => {
    for (let i = 0; i < audio.length; i += 160) {
      track.write(audio.subarray(i, i + 160));
      // Now and then, real time: the gathering timer fires between batches.
      if (pauseEvery && (i / 160) % pauseEvery === 0) await new Promise((r) => setTimeout(r, 60));
    }
    await track.close();
  };
  const run = async (tracks: number, pauseEvery: number) => {
    const out: Transcript[][] = Array.from({ length: tracks }, () => []);
    await Promise.all(
      out.map((transcripts) =>
        feed(engine.open("inbound", { onTranscript: (t) => transcripts.push(t) }), pauseEvery)
      ),
    );
    return out;
  };
  const [lone] = await run(1, 0);
  assert.ok(lone.filter((t) => t.type === "final").length >= 2, "the lone track heard both");
  for (const [tracks, pauseEvery] of [[3, 0], [3, 37]]) {
    for (const together of await run(tracks, pauseEvery)) {
      // Partials too: the same chunks are decoded in the same order, only later.
      assert.deepEqual(together, lone, `${tracks} tracks, pause every ${pauseEvery} frames`);
    }
  }

  // Alone, a track decodes as soon as a chunk is ready: note where the third partial came out.
  let written = 0;
  let cut = 0;
  const alone: Transcript[] = [];
  const lone3 = engine.open("inbound", {
    onTranscript: (t) => alone.push(t) === 3 && (cut = written),
  });
  for (; written < audio.length && !cut;) lone3.write(audio.subarray(written, written += 160));
  await lone3.close();
  assert.ok(cut > 0, "no third partial");
  // With another track open, the same chunk waits for the gathering window, then is decoded.
  const gathered: Transcript[] = [];
  const waiting = engine.open("inbound", { onTranscript: (t) => gathered.push(t) });
  const other = engine.open("outbound", { onTranscript: () => {} });
  for (let i = 0; i < cut; i += 160) waiting.write(audio.subarray(i, i + 160));
  assert.equal(gathered.length, 2, "the ready chunk was decoded at once");
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(gathered, alone.slice(0, 3), "the ready chunk was not decoded in the window");
  await Promise.all([waiting.close(), other.close()]);
});

Deno.test("tokens become words with times; text is sentence case", () => {
  const words = tokensToWords({
    text: "YET THESE",
    tokens: [" ", "Y", "ET", " THESE"],
    timestamps: [0.64, 0.68, 0.72, 0.88],
    ys_probs: [-0.5, -0.1, -0.1, -0.6],
    start_time: 2,
  }, 200);
  assert.deepEqual(words.map((w) => w.text), ["yet", "these"]);
  // A lone " " token (the word boundary) starts the word it precedes.
  assert.equal(words[0].startMs, 2000 + 640 - 200);
  assert.ok(words[0].endMs <= words[1].startMs);
  assert.equal(words[1].startMs, 2000 + 880 - 200);
  assert.ok(words.every((w) => w.confidence! > 0 && w.confidence! <= 1));
  assert.equal(sentenceCase("WHY SHOULD I GO I'M HERE"), "Why should I go I'm here");
});
