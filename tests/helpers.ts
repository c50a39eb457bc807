/**
 * Shared test fixtures: the real speech in ../shared/audio (read in place),
 * one loaded engine per test file, and a server with a collected event log.
 */
import { fileURLToPath } from "node:url";
import { signRequest } from "../lib/twilio/signature.ts";
import { readWavFile, resample, writeWav } from "../lib/audio/wav.ts";
import { mulawEncode } from "../lib/audio/mulaw.ts";
import type { CallEvent } from "../lib/call/events.ts";
import { loadConfig } from "../app/config.ts";
import { memoryLogger } from "../lib/log.ts";
import { type RunningServer, startServer } from "../app/start_server.ts";
import {
  makeSid,
  simulateCall,
  type SimulatedCallOptions,
  type SimulatedCallResult,
} from "../lib/sim/twilio_sim.ts";
import type { Track, TranscriberEngine, Transcript } from "../lib/transcribe/engine.ts";
import { createEngine } from "../app/engine.ts";
import { StreamAccess } from "../lib/server/stream_access.ts";
import type { StreamKind } from "../lib/server/media_stream.ts";
import type { RoomSettings } from "../lib/laptop_audio/room.ts";

/** `../shared/audio/` beside the project. */
export const SHARED_AUDIO = fileURLToPath(new URL("../../shared/audio/", import.meta.url));

/** First and last 10 ms window within 35 dB of the loudest, in ms: where the speech is. */
export function energyBounds(
  samples: Float32Array,
  rate: number,
): { startMs: number; endMs: number } {
  const n = rate / 100;
  const energy: number[] = [];
  for (let i = 0; i + n <= samples.length; i += n) {
    energy.push(samples.subarray(i, i + n).reduce((sum, x) => sum + x * x, 0));
  }
  const floor = Math.max(...energy) * 10 ** -3.5;
  return {
    startMs: energy.findIndex((e) => e >= floor) * 10,
    endMs: (energy.findLastIndex((e) => e >= floor) + 1) * 10,
  };
}

/** One utterance of a shared audio set with its reference transcript. */
export interface Utterance {
  path: string;
  text: string;
}

/** The utterances of a set in ../shared/audio, in transcripts.tsv order. */
export async function audioSet(name: string): Promise<Utterance[]> {
  const tsv = await Deno.readTextFile(`${SHARED_AUDIO}${name}/transcripts.tsv`);
  return tsv.trim().split("\n").map((line) => {
    const [file, text] = line.split("\t");
    return { path: `${SHARED_AUDIO}${name}/${file}`, text };
  });
}

/** Utterances joined with `gapMs` of silence, as 8 kHz float samples, plus the joined reference. */
export async function conversation(
  utterances: Utterance[],
  gapMs = 1000,
): Promise<{ samples: Float32Array; text: string; durationMs: number }> {
  const parts: Float32Array[] = [];
  for (const u of utterances) {
    const wav = await readWavFile(u.path);
    parts.push(resample(wav.samples, wav.sampleRate, 8000), new Float32Array(gapMs * 8));
  }
  const samples = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    samples.set(p, offset);
    offset += p.length;
  }
  return {
    samples,
    text: utterances.map((u) => u.text).join(" "),
    durationMs: samples.length / 8,
  };
}

/**
 * Seeded noise bursts shaped like speech on a phone line: 400 ms on, 200 ms off, low-passed
 * at 3.4 kHz (31-tap Hamming-windowed sinc), peak amplitude about `level`; 8 kHz.
 */
export function phoneBandBursts(seconds: number, seed: number, level: number): Float32Array {
  const noise = new Float32Array(seconds * 8000);
  let a = seed;
  for (let i = 0; i < noise.length; i++) {
    a = (Math.imul(a, 1103515245) + 12345) >>> 0;
    noise[i] = (i % 4800) < 3200 ? ((a / 2 ** 32) * 2 - 1) * level : 0;
  }
  const taps = Array.from({ length: 31 }, (_, k) => {
    const x = k - 15;
    const window = 0.54 - 0.46 * Math.cos((2 * Math.PI * k) / 30);
    return window * (x === 0 ? 0.85 : Math.sin(0.85 * Math.PI * x) / (Math.PI * x));
  });
  const out = new Float32Array(noise.length);
  for (let i = 0; i < noise.length; i++) {
    let sum = 0;
    for (let k = 0; k < 31 && k <= i; k++) sum += taps[k] * noise[i - k];
    out[i] = sum;
  }
  return out;
}

/** Float samples as µ-law bytes. */
export function toMulaw(samples: Float32Array): Uint8Array {
  const pcm = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    pcm[i] = Math.max(-32768, Math.min(32767, Math.round(samples[i] * 32768)));
  }
  return mulawEncode(pcm);
}

/** Writes float samples to a temp 8 kHz WAV and returns its path. */
export async function tempWav(samples: Float32Array): Promise<string> {
  const path = await Deno.makeTempFile({ suffix: ".wav" });
  await Deno.writeFile(path, writeWav(samples, 8000));
  return path;
}

let enginePromise: Promise<TranscriberEngine> | null = null;

/** The local engine, loaded once per test file. */
export function sharedEngine(): Promise<TranscriberEngine> {
  enginePromise ??= createEngine(loadConfig({}), memoryLogger());
  return enginePromise;
}

/** A server on a free port with a signing token, recording every event. */
export async function testServer(
  options: {
    audioInput?: string;
    token?: string;
    dataDir?: string;
    dashboardToken?: string;
    /** The laptop speaker (a device or a .wav path). */
    audioOutput?: string;
    /** Pace file input by the clock, as for a real call (default: sent ahead, for `fast` calls). */
    pacedInput?: boolean;
    /** The ffmpeg program for the audio bridge. */
    ffmpeg?: string;
    /** The transcriber (default: the shared local engine). */
    engine?: TranscriberEngine;
    /** `STREAM_IDLE_TIMEOUT`, in seconds (default 30). */
    streamIdleSeconds?: number;
    /** More settings, as environment variables (e.g. `WEBHOOK_URL`). */
    env?: Record<string, string>;
    /** `RECORD_CALLS` and `RECORDINGS_MAX_GB` (defaults 1 and 10). */
    recordCalls?: "0" | "1";
    recordingsMaxGb?: string;
    /** `--room`: a simulated room between the laptop's speaker and microphone. */
    room?: RoomSettings;
  } = {},
): Promise<
  RunningServer & { events: CallEvent[]; token: string; log: ReturnType<typeof memoryLogger> }
> {
  const token = options.token ?? "test-token-0123456789abcdef";
  const config = loadConfig(
    {
      HOST: "127.0.0.1",
      PORT: "0",
      TWILIO_AUTH_TOKEN: token,
      // Each test server keeps its transcripts in a fresh folder, never in ./data.
      DATA_DIR: options.dataDir ?? await Deno.makeTempDir({ prefix: "callscribe-test-" }),
      DASHBOARD_TOKEN: options.dashboardToken,
      AUDIO_OUTPUT: options.audioOutput,
      FFMPEG_PATH: options.ffmpeg,
      STREAM_IDLE_TIMEOUT: options.streamIdleSeconds?.toString(),
      ...options.env,
      RECORD_CALLS: options.recordCalls,
      RECORDINGS_MAX_GB: options.recordingsMaxGb,
    },
    { audioInput: options.audioInput, audioInputUnpaced: !options.pacedInput, room: options.room },
  );
  const log = memoryLogger();
  const engine = options.engine ?? await sharedEngine();
  const server = await startServer(config, engine, log);
  const events: CallEvent[] = [];
  server.registry.pipeline.publish((e) => events.push(e));
  // Object.assign, not a spread: publicUrl is a getter (the server's current public URL).
  return Object.assign(server, { events, token, log, engine });
}

/** The finals of one track of one call, in order. */
export function finals(events: CallEvent[], callSid: string, track: Track): Transcript[] {
  return events.flatMap((e) =>
    e.type === "transcript" && e.call.callSid === callSid && e.transcript.track === track &&
      e.transcript.type === "final"
      ? [e.transcript]
      : []
  );
}

/**
 * Places one simulated call on a test server, signed with its token, and
 * resolves once the call has ended and every final of it was emitted.
 */
export async function callTestServer(
  server: {
    url: string;
    token: string;
    registry: RunningServer["registry"];
    engine?: TranscriberEngine;
  },
  options: Omit<SimulatedCallOptions, "serverUrl" | "authToken">,
): Promise<SimulatedCallResult> {
  const callSid = options.callSid ?? makeSid("CA");
  const ended = server.registry.whenEnded(callSid);
  const engine = server.engine;
  const result = await simulateCall({
    // As `deno task call --simulate --fast` does: a fast call goes no faster than the engine
    // decodes. Without it, two fast calls can queue more than the engine's lag limit and lose audio.
    caughtUp: engine && (() => engine.whenCaughtUp()),
    ...options,
    serverUrl: server.url,
    authToken: server.token,
    callSid,
  });
  await ended;
  return result;
}

/**
 * A call's own stream URL, as the server's TwiML gives it: `ws://host/stream/<CallSid>/<token>`
 * (the token keyed from the auth token, as the server does without STREAM_SECRET).
 */
export function callStreamUrl(
  serverUrl: string,
  kind: StreamKind,
  callSid: string,
  authToken: string,
): string {
  return serverUrl.replace(/^http/, "ws") +
    StreamAccess.fromSecrets({ authToken }).path(callSid, kind);
}

/**
 * Opens a stream socket signed like Twilio's upgrade; resolves once open. A bare `…/stream` or
 * `…/audio` URL becomes the call's own (`callSid`, or a fresh one), as in the call's TwiML.
 */
export async function openSigned(url: string, token: string, callSid?: string): Promise<WebSocket> {
  const bare = /^(wss?:\/\/[^/]+)\/(stream|audio)$/.exec(url);
  const target = bare
    ? callStreamUrl(
      bare[1],
      bare[2] === "stream" ? "transcription" : "audio",
      callSid ?? makeSid("CA"),
      token,
    )
    : url;
  const ws = new WebSocket(target, {
    headers: { "X-Twilio-Signature": signRequest(token, target, {}) },
  });
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error(`could not open ${url}`));
  });
  return ws;
}
