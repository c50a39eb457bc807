/**
 * The model's floor for live latency: raw sherpa-onnx (no server, no
 * workers, no batching) fed each track at real time in 20 ms frames, the
 * result read after every decode. A word cannot appear sooner than here:
 * the model emits it once the chunk holding it and its look-ahead are in.
 * Finals come from the same endpoint rules as the engine's fallback.
 *
 * Usage: `engine_floor.ts <tracks.json>` (a JSON array of
 * `{path, startFrame}`, raw µ-law files). Prints one JSON line:
 * `{t0, tracks: [{startFrame, transcripts}]}`, where track i's audio time 0
 * was due at `t0 + startFrame × 20` (epoch ms) and each transcript has its
 * words (ms in the track) and `emitMs`.
 *
 * @module
 */
import { mulawToFloat32 } from "../lib/audio/mulaw.ts";
import { Upsampler2x } from "../lib/audio/upsample.ts";
import { loadConfig } from "../app/config.ts";
import { findModel } from "../app/engine.ts";
import { LOCAL_DEFAULTS } from "../lib/transcribe/local_engine_options.ts";
import { createRecognizer } from "../lib/transcribe/recognizer.ts";
import { sentenceCase, tokensToWords } from "../lib/transcribe/tokens_to_words.ts";
import { epochMs, report, sleep } from "./common.ts";
import type { EmittedTranscript } from "./latency.ts";

const specs: Array<{ path: string; startFrame: number }> = JSON.parse(
  Deno.readTextFileSync(Deno.args[0]),
);
const config = loadConfig();
const options = { ...LOCAL_DEFAULTS, ...config.local };
const recognizer = createRecognizer(await findModel(config), options);
const FRAME = 320; // 20 ms at 16 kHz

const tracks = specs.map(({ path, startFrame }) => ({
  startFrame,
  samples: new Upsampler2x().process(mulawToFloat32(Deno.readFileSync(path))),
  stream: recognizer.createStream(),
  last: "",
  transcripts: [] as EmittedTranscript[],
}));

function emit(track: (typeof tracks)[number], type: "partial" | "final"): void {
  const result = recognizer.getResult(track.stream);
  if (type === "partial" && result.text === track.last) return;
  track.last = type === "final" ? "" : result.text;
  if (!result.text.trim()) return;
  const words = tokensToWords(result, options.tokenDelayMs);
  track.transcripts.push({
    type,
    text: sentenceCase(words.map((w) => w.text).join(" ")),
    words,
    emitMs: epochMs(),
  });
}

const t0 = epochMs() + 100;
const frames = Math.max(...tracks.map((t) => t.startFrame + Math.ceil(t.samples.length / FRAME)));
for (let tick = 0; tick < frames; tick++) {
  // Frame `tick` of the shared clock has happened at t0 + (tick + 1) × 20 ms.
  const due = t0 + (tick + 1) * 20;
  await sleep(Math.max(0, due - epochMs()));
  for (const track of tracks) {
    const offset = (tick - track.startFrame) * FRAME;
    if (offset < 0 || offset >= track.samples.length) continue;
    track.stream.acceptWaveform({
      samples: track.samples.subarray(offset, offset + FRAME),
      sampleRate: 16000,
    });
    let decoded = false;
    while (recognizer.isReady(track.stream)) {
      recognizer.decode(track.stream);
      decoded = true;
    }
    if (recognizer.isEndpoint(track.stream)) {
      emit(track, "final");
      recognizer.reset(track.stream);
    } else if (decoded) emit(track, "partial");
  }
}
report({
  t0,
  tracks: tracks.map((t) => ({ startFrame: t.startFrame, transcripts: t.transcripts })),
});
