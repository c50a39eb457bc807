/**
 * The engine's limit: sherpa-onnx decoding the same audio in a tight loop,
 * with no server, socket, timeline or transcript building. Same model and
 * recognizer settings as {@link LocalDecoder}, same 100 ms batches, same
 * 0.6 s of tail silence at the end of each track. The audio is decoded from
 * µ-law and upsampled before the clock starts.
 *
 * Usage: `engine_raw.ts <tracks.json> [--partials] [--paced]` (a JSON array
 * of raw µ-law file paths). Prints `{cpuUs, wallMs, audioMs, tracks,
 * chunksDecoded}` on stdout. The two flags add, one at a time, the work a
 * live call has and a tight loop does not, so the benchmark can say where
 * our time goes:
 * `--partials` asks for the result after every decode (a partial transcript),
 * `--paced` feeds all tracks at once in real time, 100 ms per track per tick,
 * as calls deliver them, sleeping between ticks as our decoder workers do.
 * `--frames` (with `--paced`) feeds 20 ms per tick instead, each track
 * starting on a staggered frame as the capacity run's calls do, and reports
 * `maxDecodeDelayMs`: the longest any audio waited, from when it was due,
 * until it was decoded (the capacity run's measure).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { mulawToFloat32 } from "../lib/audio/mulaw.ts";
import { Upsampler2x } from "../lib/audio/upsample.ts";
import { loadConfig } from "../app/config.ts";
import { findModel } from "../app/engine.ts";
import { LOCAL_DEFAULTS } from "../lib/transcribe/local_engine_options.ts";
import { createRecognizer } from "../lib/transcribe/recognizer.ts";
import { ownCpuUs, report } from "./common.ts";

const { values: flags, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    partials: { type: "boolean" },
    paced: { type: "boolean" },
    frames: { type: "boolean" },
  },
});
const paths: string[] = JSON.parse(Deno.readTextFileSync(positionals[0]));
const config = loadConfig();
const options = { ...LOCAL_DEFAULTS, ...config.local };
const recognizer = createRecognizer(await findModel(config), options);

/** Samples per tick: 100 ms at 16 kHz, or one 20 ms frame with `--frames`. */
const BATCH = flags.frames ? 320 : 1600;
const TICK_MS = flags.frames ? 20 : 100;
const tracks = paths.map((path) => {
  const mulaw = Deno.readFileSync(path);
  return { audioMs: mulaw.length / 8, samples: new Upsampler2x().process(mulawToFloat32(mulaw)) };
});

// deno-lint-ignore no-explicit-any
type Stream = any;
let chunksDecoded = 0;
/** Decodes every chunk of `stream` that is ready; true if there was one. */
function decodeAll(stream: Stream): boolean {
  let decoded = false;
  while (recognizer.isReady(stream)) {
    recognizer.decode(stream);
    chunksDecoded++;
    decoded = true;
  }
  return decoded;
}
/** One 100 ms batch in, every ready chunk decoded, then the endpoint (and a partial) checked. */
function step(stream: Stream, batch: Float32Array): void {
  stream.acceptWaveform({ samples: batch, sampleRate: 16000 });
  const decoded = decodeAll(stream);
  if (recognizer.isEndpoint(stream)) {
    recognizer.getResult(stream);
    recognizer.reset(stream);
  } else if (flags.partials && decoded) {
    recognizer.getResult(stream);
  }
}
function finish(stream: Stream): void {
  stream.acceptWaveform({ samples: new Float32Array(16000 * 0.6), sampleRate: 16000 });
  stream.inputFinished();
  decodeAll(stream);
  recognizer.getResult(stream);
}

const cpuStart = ownCpuUs();
const wallStart = performance.now();
let maxDecodeDelayMs = 0;
/**
 * The paced loop sleeps between ticks in `Atomics.wait`, as our decoder
 * workers do: the event loop's timer (`setTimeout`) cost about 1.5 ms of
 * this thread's CPU per chunk decoded, more than the rest of the loop
 * around `decode()`, which our workers never pay.
 */
const napCell = new Int32Array(new SharedArrayBuffer(4));
if (flags.paced) {
  const streams = tracks.map(() => recognizer.createStream());
  // As the capacity run's calls (bench/run.ts): track i starts (i × 7) mod 16 frames late.
  const startTick = (i: number) => flags.frames ? (i * 7) % 16 : 0;
  const ticks = Math.max(
    ...tracks.map((t, i) => startTick(i) + Math.ceil(t.samples.length / BATCH)),
  );
  for (let tick = 0; tick < ticks; tick++) {
    tracks.forEach(({ samples }, i) => {
      const offset = (tick - startTick(i)) * BATCH;
      if (offset < 0 || offset >= samples.length) return;
      step(streams[i], samples.slice(offset, offset + BATCH));
      if (offset + BATCH >= samples.length) finish(streams[i]);
    });
    // This tick's audio was due at the tick's end; it is decoded now.
    const due = wallStart + (tick + 1) * TICK_MS;
    maxDecodeDelayMs = Math.max(maxDecodeDelayMs, performance.now() - due);
    Atomics.wait(napCell, 0, 0, Math.max(0, due - performance.now()));
  }
} else {
  for (const { samples } of tracks) {
    const stream = recognizer.createStream();
    for (let offset = 0; offset < samples.length; offset += BATCH) {
      step(stream, samples.slice(offset, offset + BATCH));
    }
    finish(stream);
  }
}
report({
  cpuUs: ownCpuUs() - cpuStart,
  wallMs: performance.now() - wallStart,
  audioMs: tracks.reduce((n, t) => n + t.audioMs, 0),
  tracks: tracks.length,
  chunksDecoded,
  maxDecodeDelayMs,
});
