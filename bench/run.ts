/**
 * `deno task bench [--quick] [--out path]`: how fast callscribe is, measured
 * as ratios within one run (absolute times on a shared machine are noise).
 *
 * 1. Relay: N concurrent simulated calls against our server with the null
 *    engine, and against the floor (a bare `Deno.serve` WebSocket server that
 *    only parses JSON and decodes base64): server CPU µs per frame, memory
 *    per call, drops, and added latency (frame due → handed to the engine).
 * 2. Capacity: the largest N with zero drops and p99 added latency < 20 ms.
 * 3. Engine: our server with the local engine transcribing real speech, CPU
 *    per audio second (RTF), against raw sherpa-onnx decoding the same audio.
 * 4. Transcript latency and 5. word error rate, from that same run.
 * 6. Fan-out: two instances on one PostgreSQL, a final stored on B to its
 *    SSE event on A, p50/p99 (`./fanout.ts`).
 * 6. Webhooks: final committed → received by a receiver, p50/p99, many calls at once.
 * 7. Redaction: recall and precision per policy on test calls through the
 *    whole pipeline, the hold delay, false positives on the shared sets
 *    (`./redaction.ts`; its calls run in real time, `--quick` fast).
 * 8. Echo: the laptop leg's echo canceller, ERLE, CPU, double-talk WER and
 *    duplicated words (`./echo.ts`, which also runs alone).
 *
 * Every server and the load generator run as separate processes, so the
 * load's CPU is never counted as ours. Progress goes to stderr; the table to
 * stdout; everything to `bench/results.json` (or `--out`).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { makeSid } from "../lib/sim/twilio_sim.ts";
import { LOCAL_DEFAULTS } from "../lib/transcribe/local_engine_options.ts";
import { wordErrorRate } from "../lib/metrics/wer.ts";
import { loadConfig } from "../app/config.ts";
import { packTracks, readSet, shortest, SPEECH_SETS, type SpeechTrack } from "./audio.ts";
import {
  cpuDescription,
  progress,
  quantile,
  sleep,
  type ThreadCpu,
  threadCpuUs,
} from "./common.ts";
import type { TimedTranscript } from "./relay_server.ts";
import { liveLatency } from "./live_latency.ts";
import { measuredCapacity, measuredRawCapacity, parallelRaw } from "./engine_limits.ts";
import { fanoutPhase, type FanoutResults } from "./fanout.ts";
import { webhookPhase } from "./webhooks.ts";
import type { RedactionBench } from "./redaction.ts";
import { type EchoBench, echoPhase } from "./echo.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const SHARED_AUDIO = fileURLToPath(new URL("../../shared/audio/", import.meta.url));
/** The app's permission set, declared once in deno.json. */
const PERMISSIONS = ["-P=app"];
/** How often a relay run samples the server's resident memory through its window. */
const MEMORY_SAMPLE_MS = 500;
/** Capacity: a run passes with zero drops and p99 added latency under this. */
const MAX_P99_MS = 20;
/** A load generator later than this (p99) did not deliver the load: the run says nothing. */
const MAX_LOAD_LAG_MS = 20;

const { values: flags } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    out: { type: "string" },
    copies: { type: "string" },
    "engine-only": { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});
if (flags.help) {
  console.log(
    "usage: deno task bench [--quick] [--out results.json] [--copies N]\n" +
      "  --copies N  concurrent copies of each speech call in the engine run " +
      "(default 3, quick 1)\n  --engine-only  skip the relay runs (their results are left out)",
  );
  Deno.exit(0);
}
const quick = flags.quick;
/** Turns of ours against parallel raw in the engine's cost. */
const COST_ROUNDS = quick ? 1 : 3;
const outPath = flags.out ?? `${ROOT}bench/results.json`;
const copies = Number(flags.copies ?? (quick ? 1 : 3));
if (!Number.isInteger(copies) || copies < 1) {
  throw new Error(`bench: --copies must be a whole number ≥ 1, got ${flags.copies}`);
}
// A fresh token per run: signatures are checked as in production.
const token = crypto.randomUUID().replaceAll("-", "");

// ---------------------------------------------------------------- processes

interface Proc {
  child: Deno.ChildProcess;
  pid: number;
  nextLine(): Promise<string | null>;
}

/** `BENCH_CPU_PROF=dir`: servers write V8 CPU profiles there (open in Chrome DevTools). */
function profileFlags(script: string): string[] {
  const dir = Deno.env.get("BENCH_CPU_PROF");
  return dir && script.endsWith("_server.ts") ? ["--cpu-prof", `--cpu-prof-dir=${dir}`] : [];
}

/** Servers can be asked for a full collection (`POST /gc`, for the memory they hold). */
function gcFlags(script: string): string[] {
  return script.endsWith("_server.ts") ? ["--v8-flags=--expose-gc"] : [];
}

/** Scratch space of this run: servers' databases, speech files. Removed at the end. */
const workDir = await Deno.makeTempDir({ prefix: "callscribe-bench-" });
let serverCount = 0;

function spawn(script: string, args: string[] = [], env: Record<string, string> = {}): Proc {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-q",
      ...PERMISSIONS,
      ...gcFlags(script),
      ...profileFlags(script),
      `${ROOT}bench/${script}`,
      ...args,
    ],
    cwd: ROOT,
    env: { ...env, TWILIO_AUTH_TOKEN: token },
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  return {
    child,
    pid: child.pid,
    async nextLine() {
      while (!buffer.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) return null;
        buffer += value;
      }
      const at = buffer.indexOf("\n");
      const line = buffer.slice(0, at);
      buffer = buffer.slice(at + 1);
      return line;
    },
  };
}

async function nextJson<T = Record<string, unknown>>(proc: Proc, what: string): Promise<T> {
  const line = await proc.nextLine();
  if (line === null) throw new Error(`bench: ${what} exited early (see its errors above)`);
  return JSON.parse(line);
}

interface Server extends Proc {
  url: string;
  control: string;
}

async function startServer(script: string, args: string[] = []): Promise<Server> {
  // Each server keeps its transcript database in the scratch space, never in ./data.
  const proc = spawn(script, args, { DATA_DIR: `${workDir}/data-${++serverCount}` });
  const { url, control } = await nextJson<{ url: string; control: string }>(proc, script);
  return { ...proc, url, control };
}

async function stopServer(server: Server): Promise<void> {
  try {
    await (await fetch(`${server.control}/exit`, { method: "POST" })).body?.cancel();
    await Promise.race([server.child.status, sleep(5000)]);
  } catch { /* already gone */ }
  try {
    server.child.kill("SIGTERM");
  } catch { /* exited */ }
  await server.child.status;
}

// deno-lint-ignore no-explicit-any
async function stats(server: Server, query = ""): Promise<any> {
  return await (await fetch(`${server.control}/stats${query}`)).json();
}

async function reset(server: Server): Promise<void> {
  await (await fetch(`${server.control}/reset`, { method: "POST" })).body?.cancel();
}

/**
 * Starts the load generator: `calls` silent calls into `server` for `seconds`.
 * Resolves once they are connected, with the time their first frames are due.
 */
async function startLoad(
  server: Server,
  calls: number,
  seconds: number,
): Promise<{ load: Proc; t0: number }> {
  const args = ["--url", server.url, "--calls", String(calls), "--seconds", String(seconds)];
  const load = spawn("load.ts", args);
  await nextJson(load, "the load generator"); // connected
  const { t0 } = await nextJson<{ t0: number }>(load, "the load generator");
  return { load, t0 };
}

/** A full collection in `server`; its resident memory afterwards, in bytes. */
async function rssAfterGc(server: Server): Promise<number> {
  const response = await fetch(`${server.control}/gc`, { method: "POST" });
  if (!response.ok) throw new Error(`bench: ${await response.text()}`);
  return (await response.json()).rssBytes;
}

/**
 * Memory a fresh server (`script` and its arguments) holds per call with
 * `calls` streaming: its RSS right after a full collection mid-run, less the
 * same before the first call. The sampled figures of {@link relayRun} also
 * count garbage not yet collected, whose amount is V8's choice of when to
 * collect (our old generation grows about 2.4 MB a second at 200 calls, from
 * reading the connections), not what a call keeps. Fresh, since what earlier
 * steps left in the heap and in malloc would be reused; a run of its own,
 * since the collection's pause would count in a step's latency.
 */
async function heldMemoryKbPerCall(
  [script, ...args]: string[],
  calls: number,
  seconds: number,
): Promise<number> {
  const server = await startServer(script, args);
  try {
    await sleep(500);
    const before = await rssAfterGc(server);
    const { load, t0 } = await startLoad(server, calls, seconds);
    await sleep(Math.max(0, t0 - Date.now()) + seconds * 500);
    const during = await rssAfterGc(server);
    await nextJson(load, "the load generator");
    await load.child.status;
    return (during - before) / 1024 / calls;
  } finally {
    await stopServer(server);
  }
}

// ---------------------------------------------------------------- relay

/** One relay run: N calls against one server. */
interface RelayRun {
  server: "ours" | "floor";
  calls: number;
  cpuUsPerFrame: number;
  /** Resident memory added per call at the end of the window (one sample). */
  memoryKbPerCall: number;
  /**
   * The same, averaged over samples every {@link MEMORY_SAMPLE_MS} through the window: one
   * sample lands anywhere on the garbage collector's sawtooth (61–355 KiB in one server's runs).
   */
  memoryKbPerCallMean: number;
  framesSent: number;
  framesReceived: number;
  dropped: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  latencyMaxMs: number;
  /** Due time → handed to the engine: also counts the load generator's lateness. */
  fromDueP99Ms: number;
  /** The load generator's own lateness: above a few ms, it (not the server) is the limit. */
  loadLagP99Ms: number;
  loadCpuUsPerFrame: number;
  /** The load generator fell behind: the run measured it, not the server. */
  loadLimited: boolean;
  passed: boolean;
}

async function relayRun(
  server: Server,
  kind: RelayRun["server"],
  calls: number,
  seconds: number,
): Promise<RelayRun> {
  await reset(server);
  await sleep(200);
  const rssBefore = (await stats(server)).rssBytes;
  const { load, t0 } = await startLoad(server, calls, seconds);
  // Measure the steady state: skip the first second (or fifth) and the last half second.
  const warmupMs = Math.min(2000, seconds * 200);
  const windowMs = seconds * 1000 - warmupMs - 500;
  await sleep(Math.max(0, t0 - Date.now()) + warmupMs);
  const a = await stats(server);
  const rssSamples: number[] = [];
  const due = performance.now() + windowMs;
  while (performance.now() < due - MEMORY_SAMPLE_MS) {
    await sleep(MEMORY_SAMPLE_MS);
    rssSamples.push((await stats(server)).rssBytes);
  }
  await sleep(Math.max(0, windowMs - rssSamples.length * MEMORY_SAMPLE_MS));
  const b = await stats(server);
  rssSamples.push(b.rssBytes);
  const meanRss = rssSamples.reduce((sum, rss) => sum + rss, 0) / rssSamples.length;
  const done = await nextJson<Record<string, number>>(load, "the load generator");
  await load.child.status;
  // Let the server drain what is still in its sockets.
  let after = await stats(server);
  for (let i = 0; i < 30 && after.frames < done.framesSent; i++) {
    await sleep(100);
    after = await stats(server);
  }
  const dropped = done.framesSent - after.frames;
  const run: RelayRun = {
    server: kind,
    calls,
    cpuUsPerFrame: (b.cpuUs - a.cpuUs) / Math.max(1, b.frames - a.frames),
    memoryKbPerCall: (b.rssBytes - rssBefore) / 1024 / calls,
    memoryKbPerCallMean: (meanRss - rssBefore) / 1024 / calls,
    framesSent: done.framesSent,
    framesReceived: after.frames,
    dropped,
    latencyP50Ms: after.latencyP50Ms,
    latencyP99Ms: after.latencyP99Ms,
    latencyMaxMs: after.latencyMaxMs,
    fromDueP99Ms: after.fromDueP99Ms,
    loadLagP99Ms: done.lagP99Ms,
    loadCpuUsPerFrame: done.cpuUsPerFrame,
    loadLimited: done.lagP99Ms >= MAX_LOAD_LAG_MS,
    passed: dropped === 0 && after.latencyP99Ms < MAX_P99_MS,
  };
  progress(
    `relay ${kind.padEnd(5)} N=${String(calls).padStart(4)}: ${
      run.cpuUsPerFrame.toFixed(1)
    } µs/frame, ${run.memoryKbPerCall.toFixed(0)} KiB/call (mean ${
      run.memoryKbPerCallMean.toFixed(0)
    }), dropped ${dropped}, ` +
      `latency p50 ${run.latencyP50Ms} p99 ${run.latencyP99Ms} ms, load lag p99 ${
        done.lagP99Ms.toFixed(1)
      } ms${run.passed ? "" : " (FAILED)"}${run.loadLimited ? " (load generator behind)" : ""}`,
  );
  return run;
}

async function relayPhase() {
  const seconds = quick ? 3 : 10;
  const referenceCalls = quick ? 20 : 200;
  const ladder = quick ? [1, 20] : [1, 50, 200, 500, 750, 1000, 1500, 2000, 3000];
  progress(`relay: N = ${ladder.join(", ")} calls (until one fails), ${seconds} s each`);
  const ours = await startServer("relay_server.ts", ["--engine", "null"]);
  const floor = await startServer("floor_server.ts");
  const runs: RelayRun[] = [];
  try {
    for (const calls of ladder) {
      // Ours and the floor back to back, so both see the same machine load.
      let run = await relayRun(ours, "ours", calls, seconds);
      // A stall of the load generator (another process took the core) is worth one retry.
      if (!run.passed && run.loadLimited) {
        progress(`relay: the load generator fell behind at N=${calls}; once more`);
        run = await relayRun(ours, "ours", calls, seconds);
      }
      runs.push(run, await relayRun(floor, "floor", calls, seconds));
      if (!run.passed) break;
    }
  } finally {
    await stopServer(ours);
    await stopServer(floor);
  }
  progress(`relay: memory held per call after a full collection, N = ${referenceCalls}`);
  const held = {
    ours: await heldMemoryKbPerCall(
      ["relay_server.ts", "--engine", "null"],
      referenceCalls,
      seconds / 2,
    ),
    floor: await heldMemoryKbPerCall(["floor_server.ts"], referenceCalls, seconds / 2),
  };
  const at = (kind: string) =>
    runs.find((r) => r.server === kind && r.calls === referenceCalls) ??
      runs.filter((r) => r.server === kind).at(-1)!;
  const our = at("ours");
  const floorRun = at("floor");
  const maxCalls = (kind: RelayRun["server"]) => {
    let most = 0;
    for (const run of runs.filter((r) => r.server === kind)) {
      if (!run.passed) break;
      most = run.calls;
    }
    return most;
  };
  return {
    referenceCalls: our.calls,
    cpuUsPerFrame: our.cpuUsPerFrame,
    floorCpuUsPerFrame: floorRun.cpuUsPerFrame,
    ratio: our.cpuUsPerFrame / floorRun.cpuUsPerFrame,
    maxCallsZeroDrop: maxCalls("ours"),
    // The floor runs only as far as ours holds (and the step ours failed): at most one step more.
    floorMaxCallsZeroDrop: maxCalls("floor"),
    memoryKbPerCall: our.memoryKbPerCall,
    floorMemoryKbPerCall: floorRun.memoryKbPerCall,
    memoryRatio: our.memoryKbPerCall / floorRun.memoryKbPerCall,
    memoryKbPerCallMean: our.memoryKbPerCallMean,
    floorMemoryKbPerCallMean: floorRun.memoryKbPerCallMean,
    memoryRatioMean: our.memoryKbPerCallMean / floorRun.memoryKbPerCallMean,
    heldMemoryKbPerCall: held.ours,
    floorHeldMemoryKbPerCall: held.floor,
    heldMemoryRatio: held.ours / held.floor,
    latencyP50Ms: our.latencyP50Ms,
    latencyP99Ms: our.latencyP99Ms,
    runs,
  };
}

/** `--engine-only`: relay figures not measured. */
function skippedRelay(): Awaited<ReturnType<typeof relayPhase>> {
  return {
    referenceCalls: 0,
    cpuUsPerFrame: NaN,
    floorCpuUsPerFrame: NaN,
    ratio: NaN,
    maxCallsZeroDrop: 0,
    floorMaxCallsZeroDrop: 0,
    memoryKbPerCall: NaN,
    floorMemoryKbPerCall: NaN,
    memoryRatio: NaN,
    memoryKbPerCallMean: NaN,
    floorMemoryKbPerCallMean: NaN,
    memoryRatioMean: NaN,
    heldMemoryKbPerCall: NaN,
    floorHeldMemoryKbPerCall: NaN,
    heldMemoryRatio: NaN,
    latencyP50Ms: NaN,
    latencyP99Ms: NaN,
    runs: [],
  };
}

// ---------------------------------------------------------------- engine

/** A call of the engine run: a speech track per side (or silence). */
interface SpeechCall {
  callSid: string;
  inbound: SpeechTrack | null;
  outbound: SpeechTrack | null;
  /** µ-law files as played (both tracks padded to the call's length). */
  files: { inbound: string; outbound: string };
  durationMs: number;
}

async function speechCalls(dir: string): Promise<SpeechCall[]> {
  const gapMs = 1500;
  const tracks: SpeechTrack[] = [];
  const sets = quick
    ? [["librispeech-samples", 2], ["asterisk-allison-8k", 2]] as const
    : SPEECH_SETS.map((set) => [set, 0] as const);
  for (const [set, count] of sets) {
    const all = await readSet(`${SHARED_AUDIO}${set}`);
    const utterances = count ? shortest(all, count) : all;
    tracks.push(...await packTracks(set, utterances, { gapMs, maxTrackMs: 60_000 }));
  }
  const calls: SpeechCall[] = [];
  for (let i = 0; i < tracks.length; i += 2) {
    const inbound = tracks[i];
    const outbound = tracks[i + 1] ?? null;
    const length = Math.max(inbound.mulaw.length, outbound?.mulaw.length ?? 0);
    const pad = (t: SpeechTrack | null) => {
      const bytes = new Uint8Array(length).fill(0xff);
      if (t) bytes.set(t.mulaw);
      return bytes;
    };
    const n = calls.length;
    const files = { inbound: `${dir}/call${n}-in.ulaw`, outbound: `${dir}/call${n}-out.ulaw` };
    await Deno.writeFile(files.inbound, pad(inbound));
    await Deno.writeFile(files.outbound, pad(outbound));
    calls.push({ callSid: makeSid("CA"), inbound, outbound, files, durationMs: length / 8 });
  }
  return calls;
}

/**
 * Speech calls start at staggered frames, spread over the model's ~320 ms
 * chunk: calls that start in lockstep would all need their chunk decoded at
 * the same instant, which real calls (started at random times) never do.
 */
const startFrame = (index: number) => (index * 7) % 16;

async function enginePhase() {
  const dir = workDir;
  {
    // Copies of each call run at once (same audio, own Call SID): the server works under a
    // realistic number of concurrent calls rather than one or two.
    const calls = (await speechCalls(dir)).flatMap((call) =>
      Array.from({ length: copies }, (_, i) => i === 0 ? call : { ...call, callSid: makeSid("CA") })
    );
    const tracks = calls.length * 2;
    const audioMs = calls.reduce((n, c) => n + c.durationMs * 2, 0);
    const longest = Math.max(...calls.map((c) => c.durationMs));
    progress(
      `engine: ${calls.length} calls (${tracks} tracks, ${
        (audioMs / 1000).toFixed(0)
      } s of audio) in real time, about ${Math.ceil(longest / 1000)} s`,
    );
    const server = await startServer("relay_server.ts", ["--engine", "local"]);
    let transcripts: TimedTranscript[];
    let cpuUs: number;
    let threads: ThreadCpu | null = null;
    let callT0: (index: number) => number;
    try {
      const spec = `${dir}/spec.json`;
      await Deno.writeTextFile(
        spec,
        JSON.stringify({
          calls: calls.map((c, i) => ({
            callSid: c.callSid,
            ...c.files,
            startFrame: startFrame(i),
          })),
        }),
      );
      const cpuStart = (await stats(server)).cpuUs;
      const threadsStart = await threadCpuUs(server.pid);
      const load = spawn("load.ts", ["--url", server.url, "--audio", spec]);
      await nextJson(load, "the load generator");
      const clock = await nextJson<{ t0: number; phases: number; phaseMs: number }>(
        load,
        "the load generator",
      );
      callT0 = (index) =>
        clock.t0 + startFrame(index) * 20 + (index % clock.phases) * clock.phaseMs;
      const done = await nextJson<Record<string, number>>(load, "the load generator");
      await load.child.status;
      if (done.closedAbnormally) {
        throw new Error(`bench: the server closed ${done.closedAbnormally} speech calls early`);
      }
      // Wait until every call has ended (finals flushed).
      for (let i = 0; i < 100 && (await stats(server)).activeCalls > 0; i++) await sleep(100);
      const end = await stats(server, "?transcripts");
      cpuUs = end.cpuUs - cpuStart;
      const threadsEnd = await threadCpuUs(server.pid);
      if (threadsStart && threadsEnd) {
        threads = {
          main: threadsEnd.main - threadsStart.main,
          workers: threadsEnd.workers - threadsStart.workers,
          other: threadsEnd.other - threadsStart.other,
        };
      }
      transcripts = end.transcripts;
    } finally {
      await stopServer(server);
    }

    const trackList = `${dir}/tracks.json`;
    await Deno.writeTextFile(
      trackList,
      JSON.stringify(calls.flatMap((c) => [c.files.inbound, c.files.outbound])),
    );
    const rawRun = async (flags: string[]) => {
      const proc = spawn("engine_raw.ts", [trackList, ...flags]);
      const raw = await nextJson<{ cpuUs: number; audioMs: number }>(proc, "engine_raw.ts");
      await proc.child.status;
      return raw.cpuUs / 1000 / raw.audioMs;
    };
    const workers = loadConfig().local.workers ?? LOCAL_DEFAULTS.workers;
    const allTracks = calls.flatMap((c) => [c.files.inbound, c.files.outbound]);
    // Ours against the fair limit, in turns: on this shared machine one pair has read anywhere
    // from 1.06× to 1.7×, so the ratio is the median of the rounds, with their range.
    const rounds: Array<{
      ours: number;
      parallelRaw: number;
      parallelPacedRaw: number;
      oursChunksPerAudioSecond: number;
      rawChunksPerAudioSecond: number;
    }> = [];
    for (let round = 1; round <= COST_ROUNDS; round++) {
      progress(
        `engine: round ${round} of ${COST_ROUNDS}: our engine alone (no server) on the same ` +
          `${tracks} tracks in real time, then raw sherpa-onnx in ${workers} processes at once, ` +
          `in a tight loop and paced as ours`,
      );
      const alone = spawn("engine_paced.ts", [trackList]);
      const paced = await nextJson<{ cpuUs: number; audioMs: number; chunksDecoded: number }>(
        alone,
        "engine_paced.ts",
      );
      await alone.child.status;
      const parallel = await parallelRaw({
        tracks: allTracks,
        threads: Math.max(1, workers),
        dir,
        spawn,
      });
      // The same loops fed as ours is: 20 ms frames in real time from the same staggered starts,
      // a partial after every decode. What pacing costs raw too (the threads sleep between
      // frames) is then not counted as ours.
      const parallelPaced = await parallelRaw({
        tracks: allTracks,
        threads: Math.max(1, workers),
        dir,
        spawn,
        flags: ["--paced", "--frames", "--partials"],
      });
      rounds.push({
        ours: paced.cpuUs / 1000 / paced.audioMs,
        parallelRaw: parallel.rtf,
        parallelPacedRaw: parallelPaced.rtf,
        oursChunksPerAudioSecond: paced.chunksDecoded / (paced.audioMs / 1000),
        rawChunksPerAudioSecond: parallel.chunksPerAudioSecond,
      });
    }
    const median = (values: number[]) => quantile(values, 0.5);
    const roundRatios = rounds.map((r) => r.ours / r.parallelRaw);
    const engineRtf = median(rounds.map((r) => r.ours));
    const parallelRawRtf = median(rounds.map((r) => r.parallelRaw));
    progress(`engine: raw sherpa-onnx on the same ${tracks} tracks`);
    const rawRtf = await rawRun([]);
    progress("engine: raw sherpa-onnx again, asking for a partial after every decode");
    const rawPartialsRtf = await rawRun(["--partials"]);
    progress("engine: raw sherpa-onnx again, with partials, all tracks paced in real time");
    const rawPacedRtf = await rawRun(["--partials", "--paced"]);
    const pacedRoundRatios = rounds.map((r) => r.ours / r.parallelPacedRaw);
    // Calls per step. Steps of 8 tracks from 48 on, where the sides' capacities fall: in steps of
    // 16, 64 tracks against 80 could only read 80 % or 100 %, never the 90 % the target names.
    const ladder = quick ? [1, 2] : [8, 16, 24, 28, 32, 36, 40, 44, 48, 56, 64, 80, 96];
    progress(
      `engine capacity: ${ladder.map((n) => n * 2).join(", ")} tracks in real time, ` +
        `until decoding falls behind`,
    );
    const capacityServer = await startServer("relay_server.ts", ["--engine", "local"]);
    let capacity: Awaited<ReturnType<typeof measuredCapacity>>;
    try {
      capacity = await measuredCapacity({
        files: calls.map((c) => c.files),
        ladder,
        seconds: quick ? 3 : 20,
        dir,
        server: capacityServer,
        spawn,
      });
    } finally {
      await stopServer(capacityServer);
    }
    progress(
      `raw capacity: the same steps, raw sherpa-onnx in ${workers} paced loops at once`,
    );
    const rawCapacity = await measuredRawCapacity({
      files: calls.map((c) => c.files),
      ladder,
      seconds: quick ? 3 : 20,
      threads: Math.max(1, workers),
      dir,
      spawn,
    });
    progress(
      `raw capacity beside the floor server: the same steps, the same raw loops while the load ` +
        `generator plays the same calls to the floor server (our server's run shares the cores ` +
        `with the load generator and a relay; raw alone does not)`,
    );
    const floorServer = await startServer("floor_server.ts");
    let floorCapacity: Awaited<ReturnType<typeof measuredRawCapacity>>;
    try {
      floorCapacity = await measuredRawCapacity({
        files: calls.map((c) => c.files),
        ladder,
        seconds: quick ? 3 : 20,
        threads: Math.max(1, workers),
        dir,
        spawn,
        floor: floorServer,
      });
    } finally {
      await stopServer(floorServer);
    }

    const serverRtf = cpuUs / 1000 / audioMs;
    const threadRtf = (us: number | undefined) => us ? us / 1000 / audioMs : null;
    const decoderThreadsRtf = threadRtf(threads?.workers);
    const decodingCores = Math.min(
      navigator.hardwareConcurrency,
      loadConfig().local.workers ?? LOCAL_DEFAULTS.workers,
    ) || 1;
    const engine = {
      // Our engine alone (LocalEngine and its workers, fed in real time, no server): its cost.
      rtf: engineRtf,
      rawRtf,
      ratio: engineRtf / rawRtf,
      // Where the difference goes: the same raw loop with a partial after every decode, then
      // also paced in real time like calls.
      rawPartialsRtf,
      rawPacedRtf,
      ratioToPacedRaw: engineRtf / rawPacedRtf,
      // The fair limit: as many raw loops at once as we have decoder workers, sharing the cores;
      // the median of the rounds' ratios, and each round.
      parallelRawRtf,
      ratioToParallelRaw: median(roundRatios),
      ratioToParallelRawRange: [Math.min(...roundRatios), Math.max(...roundRatios)],
      costRounds: rounds,
      // The work, counted rather than timed (so free of this machine's noise): model chunks
      // decoded per audio second, ours (the voice detector skips silence between utterances and
      // adds flush padding at each end of speech) and raw (every chunk of the audio); then our
      // CPU per chunk against raw's: what our own code costs around each decode.
      chunksPerAudioSecond: median(rounds.map((r) => r.oursChunksPerAudioSecond)),
      rawChunksPerAudioSecond: median(rounds.map((r) => r.rawChunksPerAudioSecond)),
      cpuPerChunkRatio: median(
        rounds.map((r) =>
          (r.ours / r.oursChunksPerAudioSecond) / (r.parallelRaw / r.rawChunksPerAudioSecond)
        ),
      ),
      // The same limit for live audio, in the same rounds: each raw loop fed 20 ms frames in real
      // time from the same staggered starts, asking for partials (the median of the rounds'
      // ratios, their range, and CPU per chunk against it).
      parallelPacedRawRtf: median(rounds.map((r) => r.parallelPacedRaw)),
      ratioToParallelPacedRaw: median(pacedRoundRatios),
      ratioToParallelPacedRawRange: [Math.min(...pacedRoundRatios), Math.max(...pacedRoundRatios)],
      cpuPerChunkRatioToPacedRaw: median(
        rounds.map((r) =>
          (r.ours / r.oursChunksPerAudioSecond) / (r.parallelPacedRaw / r.rawChunksPerAudioSecond)
        ),
      ),
      // The whole server on the same calls: the engine plus relay, store, recorder and events.
      serverRtf,
      serverRatioToParallelRaw: serverRtf / parallelRawRtf,
      measuredRealtimeTracks: capacity.measuredRealtimeTracks,
      capacitySteps: capacity.steps,
      // Raw sherpa-onnx through the same steps (paced loops, one per decoder worker).
      rawMeasuredRealtimeTracks: rawCapacity.measuredRealtimeTracks,
      rawCapacitySteps: rawCapacity.steps,
      measuredRealtimeShareOfRaw: capacity.measuredRealtimeTracks /
        Math.max(1, rawCapacity.measuredRealtimeTracks),
      // The platform's capacity: the same raw loops while the load generator plays the same calls
      // to the floor server on the same cores, as it plays them to ours.
      floorMeasuredRealtimeTracks: floorCapacity.measuredRealtimeTracks,
      floorCapacitySteps: floorCapacity.steps,
      measuredRealtimeShareOfFloor: capacity.measuredRealtimeTracks /
        Math.max(1, floorCapacity.measuredRealtimeTracks),
      // And by thread (Linux): the decoder workers (sherpa-onnx plus µ-law decoding and
      // upsampling) against the raw loop, the event loop (relay, engine proxy, transcripts,
      // storage), the rest (garbage collector, I/O). Null without /proc or decoder workers.
      decoderThreadsRtf,
      decoderThreadsRatio: decoderThreadsRtf && decoderThreadsRtf / rawRtf,
      eventLoopRtf: threadRtf(threads?.main),
      otherThreadsRtf: threadRtf(threads?.other),
      // The whole server's CPU per track; the decoder workers spread tracks over every core, so
      // the machine carries about cores ÷ RTF tracks (an estimate: the measured run is above).
      realtimeTracks: Math.floor(decodingCores / serverRtf),
      decodingCores,
      tracks,
      concurrentCalls: calls.length,
      audioSeconds: audioMs / 1000,
    };
    progress(
      `engine: RTF ${engineRtf.toFixed(4)} (server ${serverRtf.toFixed(4)}), raw ${
        rawRtf.toFixed(4)
      } (×${engine.ratio.toFixed(2)})`,
    );
    progress("engine: the model's floor: raw sherpa-onnx fed each distinct track in real time");
    const live = await liveLatency({ calls, copies, transcripts, callT0, startFrame, dir, spawn });
    const metrics = transcriptMetrics(calls, transcripts, callT0);
    return { engine, ...metrics, latency: { ...metrics.latency, ...live } };
  }
}

function transcriptMetrics(
  calls: SpeechCall[],
  transcripts: TimedTranscript[],
  callT0: (index: number) => number,
) {
  const local = { ...LOCAL_DEFAULTS, ...loadConfig().local };
  // The silence the first rule to end an utterance waits for: the voice detector's, if on.
  const requiredSilenceMs = local.vadSilenceMs > 0
    ? local.vadSilenceMs
    : local.rule2MinTrailingSilence * 1000;
  const afterWordEnd: number[] = [];
  const afterTrigger: number[] = [];
  const listenerDelay: number[] = [];
  const firstPartial: number[] = [];
  const werBySet = new Map<string, { errors: number; words: number }>();
  let utteranceCount = 0;
  for (const [index, call] of calls.entries()) {
    // When this call's audio time 0 was due (epoch ms).
    const t0 = callT0(index);
    for (const side of ["inbound", "outbound"] as const) {
      const track = call[side];
      if (!track) continue;
      const mine = transcripts.filter((t) => t.callSid === call.callSid && t.track === side);
      // Each transcript belongs to the utterance nearest its middle.
      const byUtterance = track.utterances.map(() => [] as TimedTranscript[]);
      for (const t of mine) {
        const middle = (t.startMs + t.endMs) / 2;
        let best = 0;
        track.utterances.forEach((u, i) => {
          const distance = (u2: typeof u) =>
            middle < u2.onsetMs ? u2.onsetMs - middle : Math.max(0, middle - u2.endMs);
          if (distance(u) < distance(track.utterances[best])) best = i;
        });
        byUtterance[best].push(t);
      }
      track.utterances.forEach((u, i) => {
        utteranceCount++;
        const own = byUtterance[i];
        const first = own[0];
        if (first) firstPartial.push(first.emitMs - (t0 + u.onsetMs));
        const last = own.filter((t) => t.type === "final" && !t.atClose).at(-1);
        if (last) {
          afterWordEnd.push(last.emitMs - (t0 + u.endMs));
          afterTrigger.push(last.emitMs - (t0 + last.positionMs));
          listenerDelay.push(last.emitMs - last.engineMs);
        }
      });
      const hypothesis = mine.filter((t) => t.type === "final").map((t) => t.text).join(" ");
      const reference = track.utterances.map((u) => u.text).join(" ");
      const { errors, referenceWords } = wordErrorRate(reference, hypothesis);
      const sum = werBySet.get(track.set) ?? { errors: 0, words: 0 };
      werBySet.set(track.set, { errors: sum.errors + errors, words: sum.words + referenceWords });
    }
  }
  const latency = {
    // Emitted − when the audio that ended the utterance was due: our pipeline's delay.
    finalAfterEndpointP50Ms: quantile(afterTrigger, 0.5),
    finalAfterEndpointP95Ms: quantile(afterTrigger, 0.95),
    // Emitted − when the last word ended (what a user waits for).
    finalAfterWordEndP50Ms: quantile(afterWordEnd, 0.5),
    finalAfterWordEndP95Ms: quantile(afterWordEnd, 0.95),
    // The same, less the silence the voice detector (or endpoint rule) waits for: our own lag.
    finalAfterRequiredSilenceP50Ms: quantile(afterWordEnd, 0.5) - requiredSilenceMs,
    finalAfterRequiredSilenceP95Ms: quantile(afterWordEnd, 0.95) - requiredSilenceMs,
    finalStoreDelayP50Ms: quantile(listenerDelay, 0.5),
    finalStoreDelayP95Ms: quantile(listenerDelay, 0.95),
    firstPartialP50Ms: quantile(firstPartial, 0.5),
    firstPartialP95Ms: quantile(firstPartial, 0.95),
    requiredSilenceMs,
    utterances: utteranceCount,
    utterancesWithFinal: afterWordEnd.length,
  };
  const wer: Record<string, number> = {};
  const werDetail: Record<string, { errors: number; words: number }> = {};
  for (const [set, sum] of werBySet) {
    wer[set] = sum.errors / sum.words;
    werDetail[set] = sum;
  }
  return { latency, wer, werDetail };
}

// ---------------------------------------------------------------- main

const started = performance.now();
const loadAverage = Deno.loadavg().map((n) => Math.round(n * 100) / 100);
const cpu = await cpuDescription();
progress(
  `${quick ? "quick" : "full"} run on ${navigator.hardwareConcurrency} cores` +
    (cpu.model ? ` (${cpu.model}; ${cpu.vectorExtensions.join(", ") || "no AVX2"})` : "") +
    `, load average ${loadAverage.join(" ")}`,
);
let relay: Awaited<ReturnType<typeof relayPhase>>;
let enginePart: Awaited<ReturnType<typeof enginePhase>>;
let fanout: FanoutResults;
let webhooks: Awaited<ReturnType<typeof webhookPhase>>;
let keyterms: Record<string, unknown>;
let redaction: RedactionBench;
let echo: EchoBench;
try {
  relay = flags["engine-only"] ? skippedRelay() : await relayPhase();
  enginePart = await enginePhase();
  const speech = await readSet(`${SHARED_AUDIO}librispeech-samples`);
  fanout = await fanoutPhase(speech.slice(0, 4), quick ? 1 : 6);
  webhooks = await webhookPhase({
    calls: quick ? 20 : 100,
    seconds: quick ? 5 : 20,
    everyMs: 1000,
    dir: workDir,
  });
  // Key terms on the local engine: rare words recognised without and with them, and the cost.
  keyterms = await nextJson(
    spawn("keyterms.ts", ["--report", ...(quick ? ["--quick"] : [])]),
    "keyterms.ts",
  );
  progress("redaction: test calls through the pipeline, and the shared sets");
  const redactionRun = spawn("redaction.ts", ["--json", ...(quick ? ["--fast", "--quick"] : [])]);
  redaction = await nextJson<RedactionBench>(redactionRun, "redaction.ts");
  await redactionRun.child.status;
  echo = await echoPhase({ quick });
} finally {
  await Deno.remove(workDir, { recursive: true });
}
const { engine, latency, wer, werDetail } = enginePart;
const results = {
  mode: quick ? "quick" : "full",
  date: new Date().toISOString(),
  machine: {
    cores: navigator.hardwareConcurrency,
    cpu,
    loadAverageAtStart: loadAverage,
    deno: Deno.version.deno,
  },
  relay,
  engine,
  latency,
  wer,
  werDetail,
  // The engine before issue 16 (endpoint rules only), measured by this bench: what these beat.
  baseline: JSON.parse(await Deno.readTextFile(`${ROOT}bench/baseline.json`)),
  fanout,
  webhooks,
  keyterms,
  redaction,
  echo,
  seconds: (performance.now() - started) / 1000,
};
await Deno.writeTextFile(outPath, JSON.stringify(results, null, 2) + "\n");

const f = (n: number | null, digits = 1) =>
  n !== null && Number.isFinite(n) ? n.toFixed(digits) : "n/a";
const rows: Array<[string, string, string]> = [
  [
    `relay CPU per frame (N=${relay.referenceCalls})`,
    `${f(relay.cpuUsPerFrame)} µs`,
    "",
  ],
  ["floor CPU per frame", `${f(relay.floorCpuUsPerFrame)} µs`, ""],
  ["relay / floor", `${f(relay.ratio, 2)}×`, "≤ 1.25×"],
  [
    "memory per call, ours / floor",
    `${f(relay.memoryKbPerCall, 0)} / ${f(relay.floorMemoryKbPerCall, 0)} KiB`,
    "≤ 1.5×",
  ],
  [
    "  the same, mean through the window",
    `${f(relay.memoryKbPerCallMean, 0)} / ${f(relay.floorMemoryKbPerCallMean, 0)} KiB (${
      f(relay.memoryRatioMean, 1)
    }×)`,
    "",
  ],
  [
    "  held: RSS after a full collection mid-run",
    `${f(relay.heldMemoryKbPerCall, 0)} / ${f(relay.floorHeldMemoryKbPerCall, 0)} KiB (${
      f(relay.heldMemoryRatio, 2)
    }×)`,
    "",
  ],
  [
    "added latency p50 / p99",
    `${f(relay.latencyP50Ms)} / ${f(relay.latencyP99Ms)} ms`,
    "p99 < 20 ms",
  ],
  [
    "max calls, zero drops, ours / floor",
    `${relay.maxCallsZeroDrop} / ${relay.floorMaxCallsZeroDrop}`,
    "as the floor",
  ],
  ["engine RTF (ours, the engine alone)", f(engine.rtf, 4), ""],
  ["engine RTF (raw sherpa-onnx)", f(engine.rawRtf, 4), ""],
  ["ours / raw", `${f(engine.ratio, 2)}×`, "≤ 1.1×"],
  ["  raw + a partial per decode", `${f(engine.rawPartialsRtf / engine.rawRtf, 2)}×`, ""],
  ["  raw + partials, paced in real time", `${f(engine.rawPacedRtf / engine.rawRtf, 2)}×`, ""],
  ["  ours / paced raw with partials", `${f(engine.ratioToPacedRaw, 2)}×`, ""],
  [`raw, ${engine.decodingCores} loops at once (RTF)`, f(engine.parallelRawRtf, 4), ""],
  [
    `ours / parallel raw (median of ${engine.costRounds.length}; range)`,
    `${f(engine.ratioToParallelRaw, 2)}× (${f(engine.ratioToParallelRawRange[0], 2)}–${
      f(engine.ratioToParallelRawRange[1], 2)
    })`,
    "≤ 1.15×",
  ],
  [
    "  chunks decoded per audio second, ours / raw",
    `${f(engine.chunksPerAudioSecond, 2)} / ${f(engine.rawChunksPerAudioSecond, 2)}`,
    "",
  ],
  ["  ours / parallel raw, CPU per chunk decoded", `${f(engine.cpuPerChunkRatio, 2)}×`, "≤ 1.15×"],
  [
    "  ours / parallel raw paced as ours (20 ms frames, partials; range)",
    `${f(engine.ratioToParallelPacedRaw, 2)}× (${f(engine.ratioToParallelPacedRawRange[0], 2)}–${
      f(engine.ratioToParallelPacedRawRange[1], 2)
    })`,
    "",
  ],
  [
    "  ours / parallel raw paced as ours, CPU per chunk decoded",
    `${f(engine.cpuPerChunkRatioToPacedRaw, 2)}×`,
    "",
  ],
  ["  whole server / parallel raw", `${f(engine.serverRatioToParallelRaw, 2)}×`, ""],
  [
    "tracks in real time (measured run), ours / raw",
    `${engine.measuredRealtimeTracks} / ${engine.rawMeasuredRealtimeTracks}`,
    "≥ 90%",
  ],
  [
    "  ours / raw beside the floor server, fed by the same load generator",
    `${engine.measuredRealtimeTracks} / ${engine.floorMeasuredRealtimeTracks}`,
    "",
  ],
  ["  decoder threads / raw", `${f(engine.decoderThreadsRatio, 2)}×`, ""],
  [
    "  event loop / raw",
    `${f(engine.eventLoopRtf && engine.eventLoopRtf / engine.rawRtf, 2)}×`,
    "",
  ],
  [`tracks in real time (${engine.decodingCores} cores, from RTF)`, `${engine.realtimeTracks}`, ""],
  [
    "final after last word p50 / p95",
    `${f(latency.finalAfterWordEndP50Ms, 0)} / ${f(latency.finalAfterWordEndP95Ms, 0)} ms`,
    "≤ 300 / 500 ms",
  ],
  [
    "  pipeline delay after the audio that ended it",
    `${f(latency.finalAfterEndpointP50Ms, 0)} / ${f(latency.finalAfterEndpointP95Ms, 0)} ms`,
    "",
  ],
  [
    `  beyond the ${latency.requiredSilenceMs} ms of silence that ends an utterance`,
    `${f(latency.finalAfterRequiredSilenceP50Ms, 0)} / ${
      f(latency.finalAfterRequiredSilenceP95Ms, 0)
    } ms`,
    "",
  ],
  [
    "word emission p50 / p95 (floor: raw at real time)",
    `${f(latency.wordEmissionP50Ms, 0)} / ${f(latency.wordEmissionP95Ms, 0)} ms (${
      f(latency.floor.wordEmissionP50Ms, 0)
    } / ${f(latency.floor.wordEmissionP95Ms, 0)})`,
    "≤ 300 / 600 ms",
  ],
  [
    "  before issue 16",
    `${f(results.baseline.latency.wordEmissionP50Ms, 0)} / ${
      f(results.baseline.latency.wordEmissionP95Ms, 0)
    } ms`,
    "",
  ],
  [
    "  final after last word, before issue 16",
    `${f(results.baseline.latency.finalAfterWordEndP50Ms, 0)} / ${
      f(results.baseline.latency.finalAfterWordEndP95Ms, 0)
    } ms`,
    "",
  ],
  [
    "finals per utterance (before issue 16)",
    `${f(latency.finalsPerUtterance, 3)} (${f(results.baseline.latency.finalsPerUtterance, 3)})`,
    "≤ +10%",
  ],
  [
    "first partial after onset p50 / p95",
    `${f(latency.firstPartialP50Ms, 0)} / ${f(latency.firstPartialP95Ms, 0)} ms`,
    "",
  ],
  [
    `fan-out B → A, ${fanout.finals} finals, p50 / p99`,
    `${f(fanout.p50Ms, 0)} / ${f(fanout.p99Ms, 0)} ms`,
    "",
  ],
  [
    `webhook after final stored p50 / p99 (${webhooks.calls} calls)`,
    `${f(webhooks.latencyP50Ms)} / ${f(webhooks.latencyP99Ms)} ms`,
    "",
  ],
  [
    `key terms: rare words recognised without / with, of ${keyterms.total}`,
    `${keyterms.recognisedWithout} / ${keyterms.recognisedWith}`,
    "more with",
  ],
  [
    "key terms: other words' WER change; decoding CPU vs greedy",
    `${f(keyterms.werDeltaPoints as number)} pts; ×${f(keyterms.costRatioToGreedy as number)}`,
    "≤ +0.5 points",
  ],
  [
    "redaction recall card / ssn (test calls)",
    `${f(redaction.recall.card, 2)} / ${f(redaction.recall.ssn, 2)}`,
    "1 / 1",
  ],
  [
    "redaction false positive words (shared sets)",
    String(redaction.falsePositiveWords),
    "0",
  ],
  [
    "redaction hold after a number's last digit p50 / max",
    `${f(redaction.afterRunMs.p50, 0)} / ${f(redaction.afterRunMs.max, 0)} ms`,
    "",
  ],
  ...Object.entries(wer).map(([set, w]): [string, string, string] => [
    `WER ${set} (before issue 16)`,
    `${f(w * 100)} % (${f((results.baseline.wer[set] ?? NaN) * 100)} %)`,
    "≤ +0.5 points",
  ]),
  ["echo ERLE median (far end alone)", `${f(echo.erleDbP50)} dB`, "≥ 25 dB"],
  [
    "echo: Outbound WER, double talk vs no echo",
    `${f(echo.doubleTalkWerDeltaPoints)} points`,
    "≤ 2",
  ],
  ["echo: duplicated phone-party words cut", `${f(echo.duplicateWordsCutPct)} %`, "≥ 95 %"],
  ["echo canceller CPU per call", `${f(echo.cpuPctOfCorePerCall, 2)} % of a core`, "≤ 5 %"],
];
const width = Math.max(...rows.map((r) => r[0].length));
console.log(`\n${"metric".padEnd(width)}  ${"value".padStart(16)}  target`);
for (const [name, value, target] of rows) {
  console.log(`${name.padEnd(width)}  ${value.padStart(16)}  ${target}`);
}
console.log(
  `\nrelay runs (calls: ours µs/frame vs floor, dropped, p99 ms):\n` +
    relay.runs.filter((r) => r.server === "ours").map((r) => {
      const fl = relay.runs.find((x) => x.server === "floor" && x.calls === r.calls);
      return `  N=${r.calls}: ${f(r.cpuUsPerFrame)} vs ${f(fl?.cpuUsPerFrame ?? NaN)} µs, ` +
        `dropped ${r.dropped}, p99 ${f(r.latencyP99Ms)} ms${r.passed ? "" : " (failed)"}`;
    }).join("\n"),
);
progress(`done in ${f(results.seconds, 0)} s; results in ${outPath}`);
