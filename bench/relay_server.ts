/**
 * The server under test: our real server (`startServer`, signatures on as in
 * production, `TWILIO_AUTH_TOKEN` from the environment) with either the null
 * engine (`--engine null`: relay cost) or the local engine (`--engine local`:
 * transcription). Counters are served on a separate control port, so the
 * product app gets no bench routes.
 *
 * With the null engine, every write is timed against the due time stamped in
 * the payload by the load generator. With the local engine, every transcript
 * is recorded with its emit time and the audio position of its track at that
 * moment (for transcript latency).
 *
 * Prints `{"url", "control"}` on stdout once listening.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { loadConfig } from "../app/config.ts";
import { stderrLogger } from "../lib/log.ts";
import { startServer } from "../app/start_server.ts";
import type { TrackTranscriber, TranscriberEngine } from "../lib/transcribe/engine.ts";
import { createEngine } from "../app/engine.ts";
import { NullEngine } from "../lib/transcribe/null_engine.ts";
import { LocalEngine } from "../lib/transcribe/local.ts";
import { epochMs, FrameCounters, report, serveControl } from "./common.ts";

/** One transcript as the runner sees it. */
export interface TimedTranscript {
  callSid: string;
  track: string;
  type: "partial" | "final";
  text: string;
  startMs: number;
  endMs: number;
  words: Array<{ text: string; startMs: number; endMs: number }>;
  /** When it was emitted (epoch ms). */
  emitMs: number;
  /** Audio fed to its track when it was emitted, in ms. */
  positionMs: number;
  /** True when emitted by the track's close (the flush), not by an endpoint. */
  atClose: boolean;
  /** When the engine handed it over (epoch ms), before the store and other listeners. */
  engineMs: number;
}

const { values } = parseArgs({ options: { engine: { type: "string", default: "null" } } });
const log = stderrLogger({ quiet: true });
// No laptop audio: the bridge would start ffmpeg per call, which is not what we measure.
const config = loadConfig({
  ...Deno.env.toObject(),
  HOST: "127.0.0.1",
  PORT: "0",
  AUDIO_INPUT: "none",
  AUDIO_OUTPUT: "none",
});
if (!config.twilioAuthToken) throw new Error("relay_server.ts: set TWILIO_AUTH_TOKEN");

const counters = new FrameCounters();
const transcripts: TimedTranscript[] = [];
/**
 * Where each transcript was when a timed track emitted it: the server stores a final before it
 * tells listeners (asynchronously), so it is looked up by the transcript, not by the moment.
 */
const emitted = new WeakMap<object, { positionMs: number; atClose: boolean; engineMs: number }>();
/** The longest the local engine's oldest undecoded audio waited since the last reset (ms). */
let maxDecodeDelayMs = 0;
/** Faults reported on calls since the last reset (dropped audio among them). */
let callErrors = 0;

/** Wraps an engine to know each track's audio position when it emits. */
function timed(engine: TranscriberEngine): TranscriberEngine {
  return {
    name: engine.name,
    whenCaughtUp: () => engine.whenCaughtUp(),
    dispose: () => engine.dispose(),
    open(track, sink): TrackTranscriber {
      let bytes = 0;
      let closing = false;
      const inner = engine.open(track, {
        onTranscript(t) {
          emitted.set(t, { positionMs: bytes / 8, atClose: closing, engineMs: epochMs() });
          sink.onTranscript(t);
        },
        onError: (e) => sink.onError?.(e),
      });
      return {
        write(mulaw) {
          bytes += mulaw.length;
          inner.write(mulaw);
        },
        close() {
          closing = true;
          return inner.close();
        },
      };
    },
  };
}

let engine: TranscriberEngine;
let nullEngine: NullEngine | null = null;
if (values.engine === "null") {
  nullEngine = new NullEngine({ onWrite: (_track, mulaw) => counters.count(mulaw) });
  engine = nullEngine;
} else if (values.engine === "local") {
  const local = await createEngine(config, log);
  engine = timed(local);
  // The measured capacity run asks whether decoding kept up: the longest any audio waited.
  if (local instanceof LocalEngine) {
    setInterval(() => (maxDecodeDelayMs = Math.max(maxDecodeDelayMs, local.decodeDelayMs())), 50);
  }
} else {
  throw new Error(`relay_server.ts: --engine must be null or local, got ${values.engine}`);
}

const server = await startServer(config, engine, log);
server.registry.pipeline.publish((event) => {
  if (event.type === "call-error") callErrors++;
  if (event.type !== "transcript") return;
  const t = event.transcript;
  const emitting = emitted.get(t);
  transcripts.push({
    callSid: event.call.callSid,
    track: t.track,
    type: t.type,
    text: t.text,
    startMs: t.startMs,
    endMs: t.endMs,
    words: t.words.map(({ text, startMs, endMs }) => ({ text, startMs, endMs })),
    emitMs: epochMs(),
    positionMs: emitting?.positionMs ?? NaN,
    atClose: emitting?.atClose ?? false,
    engineMs: emitting?.engineMs ?? NaN,
  });
});

const control = await serveControl({
  stats: (url) => ({
    ...counters.snapshot(),
    activeCalls: server.registry.activeCalls,
    maxDecodeDelayMs,
    callErrors,
    ...(nullEngine ? nullEngine.counts : {}),
    ...(url.searchParams.has("transcripts") ? { transcripts } : {}),
  }),
  reset: () => {
    counters.reset();
    transcripts.length = 0;
    maxDecodeDelayMs = 0;
    callErrors = 0;
  },
  exit: () => engine.dispose(),
});
report({ url: server.url, control });
