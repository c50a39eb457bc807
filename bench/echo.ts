/**
 * The laptop leg's echo canceller, measured (issue 37's targets):
 *
 * 1. ERLE: the phone party's speech (real speech from ../shared/audio) played
 *    into three simulated rooms spanning the issue's range, the microphone
 *    cancelled exactly as the bridge does (µ-law in and out, the drift
 *    tracking timeline): echo return loss enhancement per 20 ms frame, median
 *    over far-end-only speech after its first 2 s. Target ≥ 25 dB.
 * 2. CPU of the canceller per call, from the same run: % of one core.
 *    Target ≤ 5 %.
 * 3. Simulated calls with the local engine, the same conversation (27 replies
 *    of the laptop user, 347 words, half of them over the phone party; see
 *    {@link conversation}), in each of the three rooms: without echo (the room's
 *    noise, the speaker not heard), echo with the canceller off, echo with it
 *    on; and once with no room at all. Outbound WER with the canceller against
 *    the same rooms without echo (target within 2 points; against no room too),
 *    and the phone party's words found again in the Outbound transcript (an
 *    inbound final's words in an outbound final within 1 s), cut by the
 *    canceller against off (target ≥ 95 %; the cut counting only the words
 *    beyond those the room without echo has, the laptop user's own words that
 *    coincide, is reported too). Each call's word diff is printed, reply by
 *    reply.
 * 4. The double-talk target itself without the live calls' timing: where the
 *    simulator plays silence for audio not yet come moves the engine's chunks
 *    and a call's errors by several words. The Outbound audio of each room's
 *    calls without echo and with the canceller, made by the bridge itself
 *    (byte for byte what the live call carries after its leading silence),
 *    is decoded on one thread after 0 to 280 ms of silence (8 places); the errors
 *    are summed. The live calls' delta is reported beside it.
 *
 * `deno run -P=app bench/echo.ts [--quick] [--out bench/results.json]` runs it alone and
 * writes its `echo` entry into the results; `bench/run.ts` runs it too.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { floatToMulaw, MULAW_SILENCE, mulawDecode, mulawToFloat32 } from "../lib/audio/mulaw.ts";
import { readWavFile, resample, toCallAudio, writeWav } from "../lib/audio/wav.ts";
import { FRAME_BYTES, splitFrames } from "../lib/audio/framing.ts";
import { AudioBridge } from "../lib/laptop_audio/bridge.ts";
import { capturePlans } from "../lib/laptop_audio/devices.ts";
import { findFfmpeg } from "../lib/laptop_audio/find_ffmpeg.ts";
import { LocalDecoder } from "../lib/transcribe/local_decoder.ts";
import { decodeBase64 } from "../lib/twilio/base64.ts";
import { EchoCanceller, type EchoCancellerOptions } from "../lib/laptop_audio/echo_canceller.ts";
import {
  ALIGNED_FILTER_LENGTH,
  EchoTimeline,
  WARMUP_FILTER_LENGTH,
} from "../lib/laptop_audio/echo_timeline.ts";
import { loadSpeexDsp } from "../lib/laptop_audio/speexdsp.ts";
import { parseRoomSettings, type RoomSettings, SimulatedRoom } from "../lib/laptop_audio/room.ts";
import { alignWords, normalizeWords, wordErrorRate } from "../lib/metrics/wer.ts";
import { duplicatedWords } from "../lib/metrics/duplicated_words.ts";
import { loadConfig } from "../app/config.ts";
import { createEngine, findModel } from "../app/engine.ts";
import { startServer } from "../app/start_server.ts";
import { memoryLogger } from "../lib/log.ts";
import { makeSid, simulateCall } from "../lib/sim/twilio_sim.ts";
import type { TranscriberEngine, Transcript } from "../lib/transcribe/engine.ts";
import { ownCpuUs, progress, quantile } from "./common.ts";
import { readSet, type Utterance } from "./audio.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const SHARED_AUDIO = fileURLToPath(new URL("../../shared/audio/", import.meta.url));
const FRAME = 160;

/**
 * Rooms across the issue's range: delay 50-400 ms, RT60 0.2-0.6 s, −10..0 dB, ±100 ppm, each
 * with its background noise. ERLE is measured without the noise (`noise=-120`): with it, the
 * output cannot go below the noise floor, and where the echo is only 15 dB above the noise the
 * ratio measures the noise, not the canceller (reported too, as `erleDbP50WithNoise`).
 */
const ROOMS = [
  "delay=60,rt60=0.2,gain=-10,noise=-65,drift=-80,seed=11",
  "delay=150,rt60=0.3,gain=-3,noise=-60,drift=50,seed=1",
  "delay=350,rt60=0.5,gain=0,noise=-55,drift=100,seed=13",
];

/** What the echo bench measured. */
export interface EchoBench {
  /** Median ERLE over far-end-only frames after 2 s of far-end speech, all rooms, noise off. */
  erleDbP50: number;
  erleDbByRoom: Record<string, number>;
  /** The same with each room's background noise on. */
  erleDbP50WithNoise: number;
  /**
   * Outbound WER with echo and the canceller, minus the same calls without echo (the same
   * rooms, their noise included, the speaker not heard), in points: the Outbound audio each
   * call carries, made by the bridge (see {@link bridgeOutbound}) and decoded on one thread at
   * eight chunk alignments ({@link offlineDoubleTalk}), so the same code gives the same figure.
   */
  doubleTalkWerDeltaPoints: number;
  /** Its Outbound WER with echo and the canceller, and without echo, over its decodes. */
  outboundWerOffline: { noEcho: number; echoCancelled: number; words: number };
  /**
   * The same delta from the live calls (their transcripts as the server made them): the
   * simulator's timing moves it by a point or more from run to run (see `silenceFrames`): where that silence falls moves the engine's chunks.
   */
  doubleTalkWerDeltaPointsLive: number;
  /** The live calls' delta against the call with no room at all (no echo, no background noise). */
  doubleTalkWerDeltaPointsVsNoRoom: number;
  /**
   * Frames the simulator played as silence in the live calls' Outbound tracks for the bridge's
   * audio not yet come (before its first frame, and for any late one), summed over the rooms.
   */
  silenceFrames: { noRoom: number; noEcho: number; echoCancelled: number };
  /** The live calls' Outbound WER. */
  outboundWer: {
    noEcho: number;
    noRoom: number;
    echoCancelled: number;
    echoNotCancelled: number;
  };
  /** Reference words of one call's Outbound track, and of all the calls with the canceller on. */
  outboundWords: { perCall: number; cancelled: number };
  /** The rooms the calls ran in (each with the canceller off and on). */
  callRooms: string[];
  /**
   * Phone-party words found again in the Outbound transcript, cut by the canceller, %: every
   * duplicated word (an inbound final's words in an outbound final within 1 s), as the target
   * counts them, the laptop user's own words that coincide included.
   */
  duplicateWordsCutPct: number;
  /**
   * The same, counting only the duplicated words beyond those the same room without echo has
   * (in `duplicateWords.noEcho`).
   */
  duplicateWordsCutPctBeyondNoEcho: number;
  duplicateWords: { noEcho: number; echoCancelled: number; echoNotCancelled: number };
  /** Duplicated words beyond the same room without echo's. */
  phonePartyWords: { echoCancelled: number; echoNotCancelled: number };
  /** Those left with the canceller on. */
  phonePartyWordsLeft: string[];
  /**
   * The canceller's CPU (bridge path: µ-law, timeline, delay estimate, speexdsp) per call, % of
   * one core: CPU time (getrusage), not wall time.
   */
  cpuPctOfCorePerCall: number;
  seconds: number;
}

/** The words of `found` beyond those of `baseline` (each baseline word taken off once). */
function beyond(found: string[], baseline: string[]): string[] {
  const pool = [...baseline];
  return found.filter((word) => {
    const at = pool.indexOf(word);
    if (at < 0) return true;
    pool.splice(at, 1);
    return false;
  });
}

/** Utterances as 8 kHz float samples. */
async function load(utterances: Utterance[]): Promise<{ samples: Float32Array; text: string }[]> {
  return await Promise.all(utterances.map(async (u) => {
    const wav = await readWavFile(u.path);
    return { samples: resample(wav.samples, wav.sampleRate, 8000), text: u.text };
  }));
}

/** The laptop user's replies: every prompt of the 8 kHz set up to this long (8 s); the longer
 * ones are announcements of 9-30 s, not a turn in a conversation. */
const MAX_REPLY_SAMPLES = 8 * 8000;

/** One reply of the laptop user in a {@link conversation}. */
export interface Reply {
  text: string;
  /** Where it starts on the outbound track, s. */
  atS: number;
  /** Said over the phone party (double talk), or after it. */
  overlapped: boolean;
}

/**
 * The conversation: the laptop user's replies (every prompt of asterisk-allison-8k up to 8 s,
 * in its list's order, the first `replies` of them), each answering the phone party (the 11
 * utterances of librispeech-samples and librivox-sense-and-sensibility, in turn, again from the
 * first when used up): alternately after it (1 s later) and over it (from 1 s into it).
 */
export async function conversation(replies = Infinity) {
  const prompts = await load(await readSet(`${SHARED_AUDIO}asterisk-allison-8k`));
  const outbound = prompts.filter((p) => p.samples.length <= MAX_REPLY_SAMPLES).slice(0, replies);
  const said = await load([
    ...await readSet(`${SHARED_AUDIO}librispeech-samples`),
    ...await readSet(`${SHARED_AUDIO}librivox-sense-and-sensibility`),
  ]);
  const inTrack: number[] = [];
  const outTrack: number[] = [];
  const place = (track: number[], at: number, samples: Float32Array) => {
    while (track.length < at + samples.length) track.push(0);
    for (let i = 0; i < samples.length; i++) track[at + i] += samples[i];
  };
  const placed: Reply[] = [];
  let at = 8000;
  outbound.forEach((reply, i) => {
    const u = said[i % said.length];
    place(inTrack, at, u.samples);
    const overlapped = i % 2 === 1;
    const start = overlapped ? at + 8000 : at + u.samples.length + 8000;
    place(outTrack, start, reply.samples);
    placed.push({ text: reply.text, atS: start / 8000, overlapped });
    at = Math.max(at + u.samples.length, start + reply.samples.length) + 12000;
  });
  const length = Math.max(inTrack.length, outTrack.length) + 8000;
  const pad = (t: number[]) => {
    const out = new Float32Array(length);
    out.set(t);
    return out;
  };
  return {
    inbound: pad(inTrack),
    outbound: pad(outTrack),
    outboundText: outbound.map((u) => u.text).join(" "),
    replies: placed,
  };
}

/** The Outbound transcript's errors against the replies, reply by reply. */
export function errorsByReply(replies: Reply[], transcript: string) {
  const owner: number[] = [];
  replies.forEach((r, i) => normalizeWords(r.text).forEach(() => owner.push(i)));
  const errors = replies.map((reply) => ({
    reply,
    words: normalizeWords(reply.text).length,
    diff: [] as string[],
  }));
  for (const step of alignWords(replies.map((r) => r.text).join(" "), transcript)) {
    if (step.reference === step.hypothesis) continue;
    const i = owner[Math.min(step.at, owner.length - 1)];
    errors[i].diff.push(
      step.hypothesis === undefined
        ? `-${step.reference}`
        : step.reference === undefined
        ? `+${step.hypothesis}`
        : `${step.reference}>${step.hypothesis}`,
    );
  }
  return errors;
}

/**
 * ERLE frames and canceller CPU for one room, the far end alone (as the bridge cancels). The
 * room is simulated first; the cancelling alone is timed, in CPU time (getrusage), so the
 * figure holds on a machine busy with other work.
 */
export async function erleInRoom(
  far: Float32Array,
  room: RoomSettings,
  options: EchoCancellerOptions = {},
) {
  const simulated = new SimulatedRoom(room);
  const speaker: Uint8Array[] = [];
  const mic: Uint8Array[] = [];
  for (let k = 0; (k + 1) * FRAME <= far.length; k++) {
    speaker.push(floatToMulaw(far.subarray(k * FRAME, (k + 1) * FRAME)));
    simulated.play(mulawToFloat32(speaker[k]));
    mic.push(floatToMulaw(simulated.capture(new Float32Array(FRAME))));
  }
  // As the bridge makes it: the long filter, the short one for the first seconds, the one
  // placed on the echo once its delay is known.
  const speexdsp = await loadSpeexDsp();
  const timeline = new EchoTimeline(
    new EchoCanceller(speexdsp, options),
    {
      warmup: new EchoCanceller(speexdsp, { ...options, filterLength: WARMUP_FILTER_LENGTH }),
      aligned: () =>
        new EchoCanceller(speexdsp, { ...options, filterLength: ALIGNED_FILTER_LENGTH }),
    },
  );
  const out: Uint8Array[] = [];
  const started = ownCpuUs();
  for (let k = 0; k < mic.length; k++) {
    timeline.played(speaker[k], k * FRAME);
    out.push(timeline.cancel(mic[k], (k - 1) * FRAME));
  }
  const cpuMs = (ownCpuUs() - started) / 1000;
  timeline.close();
  const erle: number[] = [];
  let farFrames = 0;
  const power = (pcm: Int16Array) => pcm.reduce((s, x) => s + x * x, 0) / pcm.length;
  for (let k = 0; k < mic.length; k++) {
    // Far-end speech: the speaker frame above −40 dBFS.
    if (power(mulawDecode(speaker[k])) > 107_000 && ++farFrames > 100) {
      erle.push(
        10 * Math.log10(power(mulawDecode(mic[k])) / Math.max(power(mulawDecode(out[k])), 1)),
      );
    }
  }
  return { erle, cpuMs, audioMs: far.length / 8 };
}

/**
 * The laptop user's track as the bridge reads it from `path` for a call: ffmpeg's µ-law, as the
 * live calls' microphone has it (in-process where there is no ffmpeg, as the bridge does then).
 */
export async function microphoneAudio(path: string): Promise<Uint8Array> {
  const found = await findFfmpeg();
  if (!found.path) return toCallAudio(await readWavFile(path));
  const [plan] = await capturePlans({ kind: "file", path });
  const run = await new Deno.Command(found.path, { args: plan.args, stdout: "piped" }).output();
  if (!run.success) throw new Error(`Cannot decode ${path} with ${found.path}: ffmpeg failed`);
  return run.stdout;
}

/**
 * The Outbound track the bridge sends in a call in `room`, with no clock: the laptop user's
 * frames queued first, then the phone party's played one by one, so each microphone frame is
 * made as the live call makes it (once the speaker has played 2 frames past it) and cancelled
 * with `speexdsp` if given. A live call carries exactly these frames, after the silence the
 * simulator plays while the bridge's first frame is on its way, and any it plays when a frame
 * comes late (its timing: where they fall moves the engine's chunks, and the call's errors).
 */
export async function bridgeOutbound(
  inbound: Uint8Array,
  microphone: Uint8Array,
  room: RoomSettings,
  speexdsp?: WebAssembly.Module,
): Promise<Uint8Array> {
  const frames: Uint8Array[] = [];
  const stream = {
    callSid: "CA-echo-bench",
    streamSid: "MZ-echo-bench",
    send(text: string) {
      const message = JSON.parse(text);
      if (message.event === "media") frames.push(decodeBase64(message.media.payload));
    },
  };
  const bridge = new AudioBridge(stream, {
    input: { kind: "file", path: "conversation.wav" },
    output: { kind: "none" },
    ffmpeg: "ffmpeg",
    log: memoryLogger(),
    unpacedFileInput: true,
    decodedInput: microphone,
    speexdsp,
    room,
  });
  // The microphone's frames are handed over asynchronously: all of them first.
  const micFrames = Math.ceil(microphone.length / FRAME_BYTES);
  while (bridge.stats().framesSent < micFrames) await new Promise((r) => setTimeout(r, 0));
  const silence = new Uint8Array(FRAME_BYTES).fill(MULAW_SILENCE);
  // As the simulator plays it: the phone party, then 1 s of silence.
  for (const frame of [...splitFrames(inbound), ...Array(50).fill(silence)]) bridge.play(frame);
  await bridge.close();
  const out = new Uint8Array(frames.length * FRAME_BYTES);
  frames.forEach((frame, i) => out.set(frame, i * FRAME_BYTES));
  return out;
}

/**
 * Leading silence before a track decoded offline, ms: eight places 40 ms apart across the
 * model's 320 ms chunk. Where the chunks fall moves a call's errors by several words either
 * way (the rooms without echo: 38 to 55 errors of 347); the three places of
 * bench/latency_offline.ts put one room's delta at +0.9 points where these eight put it at +1.6.
 */
const ALIGNMENTS_MS = [0, 40, 80, 120, 160, 200, 240, 280];

/** The Outbound finals' text of `mulaw` decoded on this thread after `leadMs` of silence. */
async function decodeOffline(decoder: LocalDecoder, mulaw: Uint8Array, leadMs: number) {
  const track = new Uint8Array(leadMs * 8 + mulaw.length).fill(MULAW_SILENCE);
  track.set(mulaw, leadMs * 8);
  const finals: string[] = [];
  const transcriber = decoder.open("outbound", {
    onTranscript: (t) => t.type === "final" && finals.push(t.text),
  });
  for (let at = 0; at < track.length; at += FRAME_BYTES) {
    transcriber.write(track.subarray(at, at + FRAME_BYTES));
  }
  await transcriber.close();
  return finals.join(" ");
}

/** Outbound errors of the calls decoded offline, each room and alignment summed. */
export interface OfflineCounts {
  noEcho: number;
  echoCancelled: number;
  /** Reference words over those decodes (of each condition). */
  words: number;
}

/** One room's Outbound tracks as the bridge makes them, without echo and with the canceller. */
export interface BridgedRoom {
  spec: string;
  noEcho: Uint8Array;
  echoCancelled: Uint8Array;
}

/** The bridge's Outbound tracks of the conversation in each room (see {@link bridgeOutbound}). */
export async function bridgedRooms(
  talk: Awaited<ReturnType<typeof conversation>>,
  microphone: Uint8Array,
  rooms: string[],
): Promise<BridgedRoom[]> {
  const speexdsp = await loadSpeexDsp();
  const inbound = floatToMulaw(talk.inbound);
  const made: BridgedRoom[] = [];
  for (const spec of rooms) {
    const room = parseRoomSettings(spec);
    made.push({
      spec,
      noEcho: await bridgeOutbound(inbound, microphone, { ...room, gainDb: -Infinity }),
      echoCancelled: await bridgeOutbound(inbound, microphone, room, speexdsp),
    });
  }
  return made;
}

/**
 * Double talk measured without the live calls' timing: each room's Outbound tracks without
 * echo and with echo and the canceller, each decoded on one thread at every
 * {@link ALIGNMENTS_MS}; `print` gets each decode's word diff, reply by reply.
 */
export async function offlineDoubleTalk(
  talk: Awaited<ReturnType<typeof conversation>>,
  rooms: BridgedRoom[],
  print: (name: string, errors: number, diff: string[]) => void,
): Promise<OfflineCounts> {
  const config = loadConfig({});
  const decoder = new LocalDecoder(await findModel(config), config.local);
  const counts: OfflineCounts = { noEcho: 0, echoCancelled: 0, words: 0 };
  const perCall = talk.replies.reduce((n, r) => n + normalizeWords(r.text).length, 0);
  try {
    for (const room of rooms) {
      for (const key of ["noEcho", "echoCancelled"] as const) {
        for (const leadMs of ALIGNMENTS_MS) {
          const text = await decodeOffline(decoder, room[key], leadMs);
          const { errors } = wordErrorRate(talk.outboundText, text);
          counts[key] += errors;
          const diff = errorsByReply(talk.replies, text).filter((r) => r.diff.length > 0).map((
            r,
          ) =>
            `  ${r.reply.atS.toFixed(1)} s ${r.reply.overlapped ? "over" : "after"}: ${
              r.diff.join(" ")
            }`
          );
          print(`${room.spec}, ${key}, offline +${leadMs} ms`, errors, diff);
        }
      }
      counts.words += perCall * ALIGNMENTS_MS.length;
    }
  } finally {
    await decoder.dispose();
  }
  return counts;
}

/**
 * How the live call's Outbound track differs from the bridge's frames: the frames it has that
 * are not the bridge's next (the simulator's silence for audio not yet come), and how many of
 * the bridge's frames it carries, in order.
 */
function inserted(live: Uint8Array, bridged: Uint8Array): { frames: number; found: number } {
  let found = 0;
  let frames = 0;
  const total = bridged.length / FRAME_BYTES;
  for (let at = 0; at + FRAME_BYTES <= live.length && found < total; at += FRAME_BYTES) {
    const next = found * FRAME_BYTES;
    let same = true;
    for (let i = 0; i < FRAME_BYTES && same; i++) same = live[at + i] === bridged[next + i];
    if (same) found++;
    else frames++;
  }
  return { frames, found };
}

/** One simulated call of the conversation through an in-process server; its finals. */
async function call(
  engine: TranscriberEngine,
  audio: { inbound: Uint8Array; outboundPath: string },
  env: Record<string, string>,
  room?: RoomSettings,
  bridged?: Uint8Array,
): Promise<LiveCall> {
  const token = crypto.randomUUID().replaceAll("-", "");
  const dataDir = await Deno.makeTempDir({ prefix: "callscribe-echo-bench-" });
  const config = loadConfig(
    {
      HOST: "127.0.0.1",
      PORT: "0",
      TWILIO_AUTH_TOKEN: token,
      DATA_DIR: dataDir,
      RECORD_CALLS: "0",
      ...env,
    },
    { audioInput: audio.outboundPath, audioInputUnpaced: true, room },
  );
  // The Outbound audio as the engine gets it, to hold against the bridge's own frames.
  const outbound: Uint8Array[] = [];
  const heard: TranscriberEngine = {
    name: engine.name,
    open(name, sink, options) {
      const track = engine.open(name, sink, options);
      if (name !== "outbound") return track;
      return {
        write: (mulaw) => {
          outbound.push(mulaw.slice());
          track.write(mulaw);
        },
        close: () => track.close(),
      };
    },
    whenCaughtUp: () => engine.whenCaughtUp(),
    dispose: () => engine.dispose(),
  };
  const server = await startServer(config, heard, memoryLogger());
  const finals: Transcript[] = [];
  const callSid = makeSid("CA");
  server.registry.pipeline.publish((e) => {
    if (e.type === "transcript" && e.call.callSid === callSid && e.transcript.type === "final") {
      finals.push(e.transcript);
    }
  });
  const ended = server.registry.whenEnded(callSid);
  try {
    await simulateCall({
      serverUrl: server.url,
      calleeAudio: audio.inbound,
      authToken: token,
      callSid,
      fast: true,
      caughtUp: engine.whenCaughtUp && (() => engine.whenCaughtUp!()),
    });
    await ended;
  } finally {
    await server.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  }
  if (!bridged) return { finals, inserted: null };
  const live = new Uint8Array(outbound.reduce((n, m) => n + m.length, 0));
  outbound.reduce((at, m) => (live.set(m, at), at + m.length), 0);
  return { finals, inserted: { ...inserted(live, bridged), of: bridged.length / FRAME_BYTES } };
}

/** A live call's finals, and its Outbound track against the bridge's frames when given. */
interface LiveCall {
  finals: Transcript[];
  inserted: { frames: number; found: number; of: number } | null;
}

/** Words of the calls with the canceller on and off, summed over the rooms. */
interface CallCounts {
  errors: number;
  words: number;
  duplicates: string[];
  /**
   * Frames the simulator played as silence because the bridge's audio had not come yet (before
   * its first frame, and for any late one): each moves the rest of the track by 20 ms.
   */
  silenceFrames: number;
}

/**
 * Runs the echo bench. The calls run in each of the three rooms (without echo, with the
 * canceller off and on) and once with no room; `quick`: the first 2 replies (the second is
 * double talk), the middle room only, ERLE in the first room only.
 */
export async function echoPhase(options: { quick?: boolean } = {}): Promise<EchoBench> {
  const started = performance.now();
  const talk = await conversation(options.quick ? 2 : Infinity);
  const callRooms = options.quick ? [ROOMS[1]] : ROOMS;
  const rooms = options.quick ? ROOMS.slice(0, 1) : ROOMS;
  progress(
    `echo: ERLE in ${rooms.length} room${rooms.length === 1 ? "" : "s"}, ${
      (talk.inbound.length / 8000).toFixed(0)
    } s of far-end speech each`,
  );
  const all: number[] = [];
  const withNoise: number[] = [];
  const byRoom: Record<string, number> = {};
  let cpuMs = 0;
  let audioMs = 0;
  for (const spec of rooms) {
    const quiet = await erleInRoom(talk.inbound, parseRoomSettings(`${spec},noise=-120`));
    const noisy = await erleInRoom(talk.inbound, parseRoomSettings(spec));
    all.push(...quiet.erle);
    withNoise.push(...noisy.erle);
    byRoom[spec] = quantile(quiet.erle, 0.5);
    cpuMs += quiet.cpuMs + noisy.cpuMs;
    audioMs += quiet.audioMs + noisy.audioMs;
    progress(
      `echo: ${spec}: ERLE median ${byRoom[spec].toFixed(1)} dB without the noise, ` +
        `${quantile(noisy.erle, 0.5).toFixed(1)} dB with it`,
    );
  }

  const outboundPath = await Deno.makeTempFile({ suffix: ".wav" });
  await Deno.writeFile(outboundPath, writeWav(talk.outbound, 8000));
  const audio = { inbound: floatToMulaw(talk.inbound), outboundPath };
  const engine = await createEngine(loadConfig({}), memoryLogger());
  const track = (finals: Transcript[], name: string) => finals.filter((t) => t.track === name);
  const words = talk.replies.reduce((n, r) => n + normalizeWords(r.text).length, 0);
  /** One call's Outbound errors and duplicated words; prints its word diff, reply by reply. */
  const measure = (
    { finals, inserted }: LiveCall,
    name: string,
  ): CallCounts => {
    const text = track(finals, "outbound").map((t) => t.text).join(" ");
    const { errors } = wordErrorRate(talk.outboundText, text);
    const duplicates = duplicatedWords(track(finals, "inbound"), track(finals, "outbound"));
    const lines = errorsByReply(talk.replies, text).filter((r) => r.diff.length > 0).map((r) =>
      `  ${r.reply.atS.toFixed(1)} s ${r.reply.overlapped ? "over" : "after"}: ${r.diff.join(" ")}`
    );
    progress(
      `echo: ${name}: Outbound ${errors} errors in ${words} words; ${duplicates.length} ` +
        `duplicated [${duplicates.join(" ")}]${
          inserted
            ? `; ${inserted.frames} frames of silence played for late audio, ${inserted.found} ` +
              `of the bridge's ${inserted.of} frames found in order`
            : ""
        }\n${lines.join("\n")}`,
    );
    return { errors, words, duplicates, silenceFrames: inserted?.frames ?? 0 };
  };
  const sum = (calls: CallCounts[]): CallCounts => ({
    errors: calls.reduce((n, c) => n + c.errors, 0),
    words: calls.reduce((n, c) => n + c.words, 0),
    duplicates: calls.flatMap((c) => c.duplicates),
    silenceFrames: calls.reduce((n, c) => n + c.silenceFrames, 0),
  });
  // The bridge's own Outbound frames: the offline measure decodes them, and each live call's
  // track is held against them.
  const microphone = await microphoneAudio(outboundPath);
  const bridged = await bridgedRooms(talk, microphone, callRooms);
  const unroomed = new Uint8Array(Math.ceil(microphone.length / FRAME_BYTES) * FRAME_BYTES)
    .fill(MULAW_SILENCE);
  unroomed.set(microphone);
  try {
    const noRoom = measure(await call(engine, audio, {}, undefined, unroomed), "no room");
    const quiet: CallCounts[] = [];
    const on: CallCounts[] = [];
    const off: CallCounts[] = [];
    for (const [i, spec] of callRooms.entries()) {
      const room = parseRoomSettings(spec);
      // The same call in the same room, its background noise included, with the speaker not
      // heard (a headset): the call with no echo the canceller is held against.
      quiet.push(
        measure(
          await call(
            engine,
            audio,
            { AEC: "off" },
            { ...room, gainDb: -Infinity },
            bridged[i].noEcho,
          ),
          `${spec}, no echo`,
        ),
      );
      off.push(measure(await call(engine, audio, { AEC: "off" }, room), `${spec}, canceller off`));
      on.push(
        measure(
          await call(engine, audio, { AEC: "on" }, room, bridged[i].echoCancelled),
          `${spec}, canceller on`,
        ),
      );
    }
    const [quietAll, onAll, offAll] = [sum(quiet), sum(on), sum(off)];
    // The laptop user's own words that an inbound final happens to share ("the", "and") are
    // found without any echo too: only the words beyond those of the same room without echo are
    // the phone party's.
    const echoed = {
      echoCancelled: on.flatMap((c, i) => beyond(c.duplicates, quiet[i].duplicates)),
      echoNotCancelled: off.flatMap((c, i) => beyond(c.duplicates, quiet[i].duplicates)),
    };
    const wer = {
      noEcho: quietAll.errors / quietAll.words,
      noRoom: noRoom.errors / noRoom.words,
      echoCancelled: onAll.errors / onAll.words,
      echoNotCancelled: offAll.errors / offAll.words,
    };
    progress(
      `echo: the Outbound tracks again, decoded offline at ${ALIGNMENTS_MS.length} alignments`,
    );
    const offline = await offlineDoubleTalk(
      talk,
      bridged,
      (name, errors, diff) =>
        progress(`echo: ${name}: Outbound ${errors} errors in ${words} words\n${diff.join("\n")}`),
    );
    return {
      erleDbP50: quantile(all, 0.5),
      erleDbByRoom: byRoom,
      erleDbP50WithNoise: quantile(withNoise, 0.5),
      doubleTalkWerDeltaPoints: (100 * (offline.echoCancelled - offline.noEcho)) / offline.words,
      outboundWerOffline: {
        noEcho: offline.noEcho / offline.words,
        echoCancelled: offline.echoCancelled / offline.words,
        words: offline.words,
      },
      doubleTalkWerDeltaPointsLive: (wer.echoCancelled - wer.noEcho) * 100,
      doubleTalkWerDeltaPointsVsNoRoom: (wer.echoCancelled - wer.noRoom) * 100,
      silenceFrames: {
        noRoom: noRoom.silenceFrames,
        noEcho: quietAll.silenceFrames,
        echoCancelled: onAll.silenceFrames,
      },
      outboundWer: wer,
      outboundWords: { perCall: words, cancelled: onAll.words },
      callRooms,
      duplicateWordsCutPct: 100 *
        (1 - onAll.duplicates.length / Math.max(1, offAll.duplicates.length)),
      duplicateWordsCutPctBeyondNoEcho: 100 *
        (1 - echoed.echoCancelled.length / Math.max(1, echoed.echoNotCancelled.length)),
      duplicateWords: {
        noEcho: quietAll.duplicates.length,
        echoCancelled: onAll.duplicates.length,
        echoNotCancelled: offAll.duplicates.length,
      },
      phonePartyWords: {
        echoCancelled: echoed.echoCancelled.length,
        echoNotCancelled: echoed.echoNotCancelled.length,
      },
      phonePartyWordsLeft: echoed.echoCancelled,
      cpuPctOfCorePerCall: (100 * cpuMs) / audioMs,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await engine.dispose();
    await Deno.remove(outboundPath);
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: { out: { type: "string" }, quick: { type: "boolean", default: false } },
  });
  const outPath = values.out ?? `${ROOT}bench/results.json`;
  const echo = await echoPhase({ quick: values.quick });
  const f = (n: number, digits = 1) => n.toFixed(digits);
  console.log(
    [
      `ERLE median (far end alone, after 2 s, room noise off): ${f(echo.erleDbP50)} dB ` +
      `(target ≥ 25); with the room noise on: ${f(echo.erleDbP50WithNoise)} dB`,
      ...Object.entries(echo.erleDbByRoom).map(([room, db]) => `  ${room}: ${f(db)} dB`),
      `Outbound WER in double talk, decoded offline: ${
        f(echo.outboundWerOffline.echoCancelled * 100)
      } % with echo and the canceller, ${
        f(echo.outboundWerOffline.noEcho * 100)
      } % the same rooms without echo: delta ${f(echo.doubleTalkWerDeltaPoints)} points ` +
      `(target ≤ 2; ${echo.outboundWerOffline.words} words each)`,
      `  live calls: ${f(echo.outboundWer.echoCancelled * 100)} % with echo and ` +
      `the canceller, ${f(echo.outboundWer.noEcho * 100)} % the same rooms without echo, ` +
      `${f(echo.outboundWer.echoNotCancelled * 100)} % canceller off: delta ` +
      `${f(echo.doubleTalkWerDeltaPointsLive)} points; against no room ` +
      `(${f(echo.outboundWer.noRoom * 100)} %): ${
        f(echo.doubleTalkWerDeltaPointsVsNoRoom)
      } points; ` +
      `${echo.outboundWords.cancelled} words with the canceller in ${echo.callRooms.length} ` +
      `room(s); silence played for late audio: ${echo.silenceFrames.echoCancelled} frames ` +
      `with the canceller, ${echo.silenceFrames.noEcho} without echo`,
      `Inbound words found again in the Outbound transcript: ${echo.duplicateWords.echoNotCancelled} ` +
      `canceller off, ${echo.duplicateWords.echoCancelled} on, ${echo.duplicateWords.noEcho} ` +
      `without echo: cut ${
        f(echo.duplicateWordsCutPct)
      } % (target ≥ 95); beyond those without echo ` +
      `(the phone party's): ${echo.phonePartyWords.echoNotCancelled} off, ` +
      `${echo.phonePartyWords.echoCancelled} on [${echo.phonePartyWordsLeft.join(" ")}]: cut ` +
      `${f(echo.duplicateWordsCutPctBeyondNoEcho)} %`,
      `Canceller CPU: ${f(echo.cpuPctOfCorePerCall, 2)} % of one core per call (target ≤ 5)`,
    ].join("\n"),
  );
  let results: Record<string, unknown> = {};
  try {
    results = JSON.parse(await Deno.readTextFile(outPath));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  results.echo = echo;
  await Deno.writeTextFile(outPath, JSON.stringify(results, null, 2) + "\n");
  progress(`echo: done in ${f(echo.seconds, 0)} s; results in ${outPath}`);
}
