/**
 * The local engine on its own: real sherpa-onnx decoding of real speech,
 * fed µ-law at 8 kHz the way a call delivers it.
 */
import assert from "node:assert/strict";
import { readWavFile } from "../lib/audio/wav.ts";
import { loadConfig } from "../app/config.ts";
import { findModel } from "../app/engine.ts";
import type {
  Track,
  TrackTranscriber,
  TranscriberEngine,
  Transcript,
} from "../lib/transcribe/engine.ts";
import { LocalEngine } from "../lib/transcribe/local.ts";
import { LocalDecoder } from "../lib/transcribe/local_decoder.ts";
import { sentenceCase, tokensToWords } from "../lib/transcribe/tokens_to_words.ts";
import type { VoiceDetectorKind } from "../lib/transcribe/voice_detector.ts";
import { inspectOnnxModel } from "../lib/transcribe/onnx_model.ts";
import {
  decodeCommand,
  type DecoderCommand,
  encodeCommand,
} from "../lib/transcribe/decoder_channel.ts";
import { wordErrorRate } from "../lib/metrics/wer.ts";
import { audioSet, conversation, sharedEngine, toMulaw } from "./helpers.ts";
import { waitAtMost } from "../lib/async/wait_at_most.ts";

const model = () => findModel(loadConfig({}));

/** Feeds µ-law to `track` in 20 ms frames, then closes it. */
async function feed(track: TrackTranscriber, audio: Uint8Array): Promise<void> {
  for (let i = 0; i < audio.length; i += 160) track.write(audio.subarray(i, i + 160));
  await track.close();
}

/** Every transcript of one track per audio, fed at once: 20 ms frames in turn, then all closed. */
async function transcribeTogether(
  engine: TranscriberEngine,
  audios: Uint8Array[],
): Promise<Transcript[][]> {
  const out: Transcript[][] = audios.map(() => []);
  const tracks = audios.map((_, i) =>
    engine.open("inbound", { onTranscript: (t) => out[i].push(t) })
  );
  const longest = Math.max(...audios.map((a) => a.length));
  for (let at = 0; at < longest; at += 160) {
    audios.forEach((audio, i) =>
      at < audio.length && tracks[i].write(audio.subarray(at, at + 160))
    );
  }
  await Promise.all(tracks.map((track) => track.close()));
  return out;
}

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

Deno.test("tracks decoded together give the same transcripts as a lone track; a ready chunk is decoded right after the writes in hand", async () => {
  // The decoder itself, on this thread: gathering is seen synchronously.
  const engine = new LocalDecoder(await model());
  const audio = toMulaw(
    (await conversation((await audioSet("librispeech-samples")).slice(0, 2))).samples,
  );
  const feedPausing = async (track: TrackTranscriber, pauseEvery = 0) => {
    for (let i = 0; i < audio.length; i += 160) {
      track.write(audio.subarray(i, i + 160));
      // Now and then, real time: ready chunks are decoded between batches.
      if (pauseEvery && (i / 160) % pauseEvery === 0) await new Promise((r) => setTimeout(r, 60));
    }
    await track.close();
  };
  const run = async (tracks: number, pauseEvery: number) => {
    const out: Transcript[][] = Array.from({ length: tracks }, () => []);
    await Promise.all(
      out.map((transcripts) =>
        feedPausing(
          engine.open("inbound", { onTranscript: (t) => transcripts.push(t) }),
          pauseEvery,
        )
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

  // Note where the third transcript came out (a chunk waiting is decoded before more audio goes in).
  let written = 0;
  let cut = 0;
  const alone: Transcript[] = [];
  const lone3 = engine.open("inbound", {
    onTranscript: (t) => alone.push(t) === 3 && (cut = written),
  });
  for (; written < audio.length && !cut;) lone3.write(audio.subarray(written, written += 160));
  await lone3.close();
  assert.ok(cut > 0, "no third transcript");
  // With another track open, a chunk made ready is decoded once the writes in hand are done (a
  // worker's message: every track's last 20 ms), a microtask later; no timer holds it.
  const gathered: Transcript[] = [];
  const waiting = engine.open("inbound", { onTranscript: (t) => gathered.push(t) });
  const other = engine.open("outbound", { onTranscript: () => {} });
  for (let i = 0; i < cut - 160; i += 160) waiting.write(audio.subarray(i, i + 160));
  assert.equal(gathered.length, 2, "decoded before the writes in hand were done");
  await Promise.resolve();
  assert.deepEqual(gathered, alone.slice(0, 3), "the ready chunk was not decoded right after");
  await Promise.all([waiting.close(), other.close()]);
  await engine.dispose();
});

Deno.test("decoder workers: tracks spread over them give exactly what one thread gives, decoding as many chunks", async () => {
  const set = await audioSet("librispeech-samples");
  const a = toMulaw((await conversation(set.slice(0, 3))).samples);
  const b = toMulaw((await conversation(set.slice(3, 5))).samples);
  const onThread = new LocalDecoder(await model());
  const expected = await transcribeTogether(onThread, [a, b]);
  const chunks = onThread.chunksDecoded;
  await onThread.dispose();
  assert.ok(expected[0].filter((t) => t.type === "final").length >= 3, "the decoder heard a");
  assert.ok(expected[1].filter((t) => t.type === "final").length >= 2, "the decoder heard b");

  const engine = await LocalEngine.start(await model(), { workers: 2 });
  try {
    // Tracks alternate between the workers, so each worker decodes an `a` and a `b` track
    // whose audio travels in the same messages.
    const got = await transcribeTogether(engine, [a, a, b, b]);
    assert.deepEqual(got, [expected[0], expected[0], expected[1], expected[1]]);
    // Each track once per ~320 ms of its audio (fewer: silence is skipped), twice over here.
    assert.ok(chunks > 0 && chunks < (a.length + b.length) / 8 / 320, `${chunks} chunks`);
    assert.equal(await engine.chunksDecoded(), 2 * chunks);
  } finally {
    await engine.dispose();
  }
});

Deno.test("decoder workers: a model that fails to load rejects start", async () => {
  const good = await model();
  await assert.rejects(
    LocalEngine.start({ ...good, tokens: `${good.tokens}.missing` }, { workers: 2 }),
    /could not load the speech model .*tokens\.txt\.missing.*SHERPA_MODEL_DIR/,
  );
});

Deno.test("decoder workers: audio far ahead of decoding is dropped with one clear error; close still ends the track", async () => {
  const audio = toMulaw(
    (await conversation((await audioSet("librispeech-samples")).slice(0, 3))).samples,
  );
  // Written all at once, the audio is seconds ahead of the worker at once.
  const engine = await LocalEngine.start(await model(), { workers: 1, maxLagSeconds: 1 });
  try {
    const errors: Error[] = [];
    const transcripts: Transcript[] = [];
    await feed(
      engine.open("outbound", {
        onTranscript: (t) => transcripts.push(t),
        onError: (e) => errors.push(e),
      }),
      audio,
    );
    assert.equal(errors.length, 1, errors.map((e) => e.message).join(" | "));
    assert.match(
      errors[0].message,
      /queued and not yet decoded on the outbound track.*SHERPA_WORKERS/,
    );
    // What reached the worker was decoded, and its last words came out as a final.
    assert.ok(transcripts.some((t) => t.type === "final"), "no final");
  } finally {
    await engine.dispose();
  }
});

Deno.test("decoder workers: audio beyond the room in a worker's ring waits and goes in as it drains; nothing is lost", async () => {
  const [first, second] = (await audioSet("librispeech-samples")).slice(0, 2);
  // 150 s of silence between two utterances: more than a worker's ring holds (about 120 s of
  // one track's frames), all written at once. The detector skips the silence, so it is cheap.
  const audio = toMulaw((await conversation([first, second], 150_000)).samples);
  const expected: Transcript[] = [];
  const onThread = new LocalDecoder(await model());
  await feed(onThread.open("inbound", { onTranscript: (t) => expected.push(t) }), audio);
  await onThread.dispose();
  assert.equal(expected.filter((t) => t.type === "final").length, 2, "the decoder heard both");

  const engine = await LocalEngine.start(await model(), { workers: 1, maxLagSeconds: 1000 });
  try {
    const errors: Error[] = [];
    const got: Transcript[] = [];
    const closed = feed(
      engine.open("inbound", { onTranscript: (t) => got.push(t), onError: (e) => errors.push(e) }),
      audio,
    );
    let done = false;
    await waitAtMost(closed.then(() => (done = true)), 30_000);
    assert.ok(done, "the track's close never ended: the audio that waited for room was not sent");
    assert.deepEqual(errors, []);
    assert.deepEqual(got, expected);
  } finally {
    await engine.dispose();
  }
});

Deno.test("decoder workers: a track that is neither inbound nor outbound is refused at open, and the worker's other tracks go on", async () => {
  const audio = toMulaw(
    (await conversation((await audioSet("librispeech-samples")).slice(0, 1))).samples,
  );
  const engine = await LocalEngine.start(await model(), { workers: 1 });
  try {
    const errors: Error[] = [];
    const finals: Transcript[] = [];
    const good = engine.open("inbound", {
      onTranscript: (t) => t.type === "final" && finals.push(t),
      onError: (e) => errors.push(e),
    });
    good.write(audio.subarray(0, audio.length / 2));
    assert.throws(
      () => engine.open("sideways" as Track, { onTranscript: () => {} }),
      /Cannot open track "sideways": a track is "inbound" or "outbound"/,
    );
    await feed(good, audio.subarray(audio.length / 2));
    assert.deepEqual(errors, []);
    assert.equal(finals.length, 1);
  } finally {
    await engine.dispose();
  }
});

Deno.test("decoder workers: a fault in one worker's command loop ends its own tracks, with an error; the other worker's calls go on, and new tracks go there", async () => {
  const [first, second] = await audioSet("librispeech-samples");
  const audio = toMulaw((await conversation([first, second])).samples);
  const expected: Transcript[] = [];
  const onThread = new LocalDecoder(await model());
  await feed(onThread.open("inbound", { onTranscript: (t) => expected.push(t) }), audio);
  await onThread.dispose();

  // The engine's first worker runs the worker module with a fault in it, the second the real one.
  const RealWorker = globalThis.Worker;
  let made = 0;
  globalThis.Worker = class extends RealWorker {
    constructor(url: string | URL, options?: WorkerOptions) {
      super(made++ === 0 ? new URL("./faulty_decoder_worker.ts", import.meta.url) : url, options);
    }
  };
  let engine: LocalEngine;
  try {
    engine = await LocalEngine.start(await model(), { workers: 2 });
  } finally {
    globalThis.Worker = RealWorker;
  }
  try {
    const sides = ["faulty", "healthy"].map(() => ({
      transcripts: [] as Transcript[],
      errors: [] as Error[],
    }));
    const tracks = sides.map((side) =>
      engine.open("inbound", {
        onTranscript: (t) => side.transcripts.push(t),
        onError: (e) => side.errors.push(e),
      })
    );
    for (let at = 0; at < audio.length; at += 160) {
      for (const track of tracks) track.write(audio.subarray(at, at + 160));
      if (at % 8000 === 0) await new Promise((r) => setTimeout(r, 0)); // the worker's error comes in
    }
    let closed = false;
    await waitAtMost(Promise.all(tracks.map((t) => t.close())).then(() => (closed = true)), 30_000);
    assert.ok(closed, "a track's close never ended");

    const [faulty, healthy] = sides;
    assert.equal(faulty.errors.length, 1, faulty.errors.map((e) => e.message).join(" | "));
    assert.match(
      faulty.errors[0].message,
      /^local engine worker failed: .*decoder fault put in by the test/,
    );
    assert.ok(!faulty.transcripts.some((t) => t.type === "final"), "the faulty track went on");
    assert.deepEqual(healthy.errors, []);
    assert.deepEqual(healthy.transcripts, expected);

    const late = { transcripts: [] as Transcript[], errors: [] as Error[] };
    const lateTrack = engine.open("inbound", {
      onTranscript: (t) => late.transcripts.push(t),
      onError: (e) => late.errors.push(e),
    });
    let lateClosed = false;
    await waitAtMost(feed(lateTrack, audio).then(() => (lateClosed = true)), 30_000);
    assert.ok(lateClosed, "a track opened after the fault never ended");
    assert.deepEqual(late.errors, []);
    assert.deepEqual(late.transcripts, expected);
  } finally {
    await engine.dispose();
  }
});

Deno.test("decoder workers: dispose with tracks still open ends them; a later open reports it", async () => {
  const engine = await LocalEngine.start(await model(), { workers: 1 });
  const open = engine.open("inbound", { onTranscript: () => {} });
  open.write(new Uint8Array(1600).fill(0xff));
  await engine.dispose();
  await open.close(); // resolves: the track ended with its worker
  const errors: Error[] = [];
  const late = engine.open("inbound", { onTranscript: () => {}, onError: (e) => errors.push(e) });
  late.write(new Uint8Array(160));
  await late.close();
  await new Promise((r) => setTimeout(r, 0));
  assert.match(errors[0]?.message ?? "", /local engine stopped/);
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

Deno.test("SHERPA_WORKERS: a whole number, checked before anything starts", () => {
  assert.equal(loadConfig({ SHERPA_WORKERS: "3" }).local.workers, 3);
  assert.equal(loadConfig({ SHERPA_WORKERS: "0" }).local.workers, 0);
  for (const bad of ["1.5", "-1", "two"]) {
    assert.throws(
      () => loadConfig({ SHERPA_WORKERS: bad }),
      new RegExp(`SHERPA_WORKERS must be a whole number .*got "${bad}"`),
    );
  }
});

Deno.test("with either voice detector, a final comes as soon as the speech has ended; without, after the endpoint rule's silence", async () => {
  const [u] = await audioSet("librispeech-samples");
  const speech = toMulaw((await conversation([u], 0)).samples);
  const audio = new Uint8Array(speech.length + 16000).fill(0xff);
  audio.set(speech);
  const { endMs } = await speechSpan(u.path);
  // Audio written when the final came out, beyond the end of the speech (ms of audio, not time).
  const finalAfter = async (vadSilenceMs: number, vad: VoiceDetectorKind = "energy") => {
    const decoder = new LocalDecoder(await model(), { vadSilenceMs, vad });
    let written = 0;
    let at = -1;
    const finals: Transcript[] = [];
    const track = decoder.open("inbound", {
      onTranscript: (t) => {
        if (t.type !== "final") return;
        finals.push(t);
        if (at < 0) at = written / 8 - endMs;
      },
    });
    for (; written < audio.length;) track.write(audio.subarray(written, written += 160));
    await track.close();
    await decoder.dispose();
    return { at, finals };
  };
  const rules = await finalAfter(0);
  assert.ok(rules.at >= 800, `endpoint rules only, ${rules.at} ms after the speech`);
  // 200 ms of silence, then 20 ms frames (energy) or Silero's 32 ms windows and its smoothing.
  for (const [kind, latest] of [["energy", 260], ["silero", 450]] as const) {
    const vad = await finalAfter(200, kind);
    assert.ok(vad.at >= 150 && vad.at <= latest, `with ${kind}, ${vad.at} ms after the speech`);
    // The same words (one may differ: the padding is not the same audio as real silence), and
    // times that match the audio: the flush's padding is not in the track.
    assert.equal(vad.finals.length, 1, kind);
    const { errors } = wordErrorRate(rules.finals[0].text, vad.finals[0].text);
    assert.ok(errors <= 1, `${kind}: "${vad.finals[0].text}" vs "${rules.finals[0].text}"`);
    const last = rules.finals[0].words.length - 1;
    const [a, b] = [vad.finals[0], rules.finals[0]];
    assert.ok(Math.abs(a.words[last].endMs - b.words[last].endMs) <= 200, kind);
    assert.ok(Math.abs(a.startMs - b.startMs) <= 200, kind);
  }
});

Deno.test("the shared model's encoder takes one stream at a time in 320 ms chunks, its decoder a batch (read from the files)", async () => {
  const files = await model();
  const encoder = inspectOnnxModel(files.encoder);
  assert.equal(encoder.takesBatch, false);
  assert.equal(encoder.chunkFrames, 32);
  assert.equal(encoder.metadata.get("model_type"), "zipformer2");
  assert.equal(inspectOnnxModel(files.decoder).takesBatch, true);
  assert.throws(() => inspectOnnxModel(files.tokens), /Cannot parse ONNX model .*tokens\.txt/);
});

/** A protobuf length-delimited field (lengths under 128 bytes). */
function lengthField(number: number, bytes: Uint8Array): Uint8Array {
  return new Uint8Array([(number << 3) | 2, bytes.length, ...bytes]);
}

/** A minimal ONNX file: a batch-1 first input, and one metadata entry. */
async function onnxWithMetadata(key: string, value: string): Promise<string> {
  const text = (t: string) => new TextEncoder().encode(t);
  const dim = new Uint8Array([0x08, 1]); // Dimension.dim_value = 1
  const tensorType = lengthField(2, lengthField(1, dim)); // shape { dim }
  const input = lengthField(11, lengthField(2, lengthField(1, tensorType))); // ValueInfo.type
  const graph = lengthField(7, input);
  const entry = lengthField(
    14,
    new Uint8Array([...lengthField(1, text(key)), ...lengthField(2, text(value))]),
  );
  const path = await Deno.makeTempFile({ suffix: ".onnx" });
  await Deno.writeFile(path, new Uint8Array([...graph, ...entry]));
  return path;
}

Deno.test("an encoder's chunk is read from its metadata only as a whole number above 0", async () => {
  for (
    const [value, expected] of [["16", 16], ["-5", null], ["0", null], ["abc", null], [
      "2.5",
      null,
    ]] as const
  ) {
    const path = await onnxWithMetadata("decode_chunk_len", value);
    try {
      const facts = inspectOnnxModel(path);
      assert.equal(facts.takesBatch, false);
      assert.equal(facts.metadata.get("decode_chunk_len"), value);
      assert.equal(facts.chunkFrames, expected, `decode_chunk_len ${value}`);
    } finally {
      await Deno.remove(path);
    }
  }
});

Deno.test("with a voice detector, the silence between utterances is not decoded, and the words after it keep their times", async () => {
  const utterances = (await audioSet("librispeech-samples")).slice(0, 2);
  const gapMs = 8000;
  // Without the gap after the second: only the silence between them could be skipped.
  const audio = toMulaw((await conversation(utterances, gapMs)).samples).slice(0, -gapMs * 8);
  const run = async (vadSilenceMs: number) => {
    const decoder = new LocalDecoder(await model(), { vadSilenceMs });
    const finals: Transcript[] = [];
    await feed(
      decoder.open("inbound", { onTranscript: (t) => t.type === "final" && finals.push(t) }),
      audio,
    );
    return { finals, chunks: decoder.chunksDecoded };
  };
  const skipping = await run(320);
  const everything = await run(0);
  // 8 s is 25 of the model's 320 ms chunks; the detector feeds up to 800 ms of it before speech,
  // and each end of speech adds two chunks of padding.
  assert.ok(
    skipping.chunks <= everything.chunks - 15,
    `decoded ${skipping.chunks} chunks with the detector, ${everything.chunks} without`,
  );
  assert.equal(skipping.finals.length, 2, skipping.finals.map((f) => f.text).join(" | "));
  const expectedStartMs = (await speechSpan(utterances[0].path)).ms + gapMs +
    (await speechSpan(utterances[1].path)).startMs;
  for (const [i, final] of skipping.finals.entries()) {
    const reference = everything.finals[i];
    const { wer } = wordErrorRate(reference.text, final.text);
    assert.ok(wer <= 0.15, `"${final.text}" vs "${reference.text}"`);
    assert.ok(
      Math.abs(final.startMs - reference.startMs) <= 100,
      `${final.startMs} vs ${reference.startMs}`,
    );
  }
  assert.ok(
    Math.abs(skipping.finals[1].startMs - expectedStartMs) <= 300,
    `second utterance at ${skipping.finals[1].startMs} ms, its speech at ${expectedStartMs} ms`,
  );
});

Deno.test("decoder commands go through the ring as bytes and come back the same; anything else is refused", () => {
  const commands: DecoderCommand[] = [
    { op: "open", id: 7, track: "outbound" },
    { op: "audio", id: 2 ** 32 - 1, mulaw: Uint8Array.of(0xff, 0x7f, 0) },
    { op: "close", id: 7 },
    { op: "stats" },
    { op: "stop" },
  ];
  for (const command of commands) assert.deepEqual(decodeCommand(encodeCommand(command)), command);
  assert.throws(() => decodeCommand(Uint8Array.of(9, 0, 0, 0, 0)), /Cannot decode decoder command/);
  assert.throws(() => decodeCommand(Uint8Array.of(1)), /Cannot decode decoder command: 1 bytes/);
  assert.throws(() => decodeCommand(Uint8Array.of(0, 1, 0, 0, 0, 5)), /no track in open/);
  assert.throws(
    () => encodeCommand({ op: "open", id: 1, track: "both" as Track }),
    /Cannot open track "both"/,
  );
});
