/**
 * The engine's cost against a fair limit, and its capacity as a run:
 *
 * - {@link parallelRaw}: raw sherpa-onnx in as many processes (one decoding
 *   thread each) as our decoder workers, in parallel on the same tracks: the
 *   limit for our workers, which share the cores the same way (two decoding
 *   threads on two cores slow each other, which one raw loop never sees).
 * - {@link measuredCapacity}: our server with more and more speech tracks at
 *   once in real time, until decoding falls behind (audio waits longer than
 *   {@link MAX_DECODE_DELAY_MS} to be decoded) or audio is dropped.
 * - {@link measuredRawCapacity}: the same steps for raw sherpa-onnx, in as
 *   many paced loops as our decoder workers; with `floor`, beside the floor
 *   server fed the same calls by the same load generator (what the platform
 *   costs: our server's run has the load generator and a relay on the same
 *   cores, which raw alone does not).
 *
 * @module
 */
import { makeSid } from "../lib/sim/twilio_sim.ts";
import { progress, sleep } from "./common.ts";

interface ChildProc {
  child: Deno.ChildProcess;
  nextLine(): Promise<string | null>;
}

/** Real time holds while no audio waits longer than this to be decoded (a chunk is 320 ms). */
export const MAX_DECODE_DELAY_MS = 1000;

/**
 * CPU per audio second (RTF) of `threads` raw loops run at once, the tracks
 * dealt round-robin, and the model chunks they decoded per audio second;
 * `flags` go to each loop (`--paced --partials`: each feeds its tracks in
 * real time and asks for partials, as a live engine must).
 */
export async function parallelRaw(run: {
  tracks: string[];
  threads: number;
  dir: string;
  spawn: (script: string, args: string[]) => ChildProc;
  flags?: string[];
}): Promise<{ rtf: number; chunksPerAudioSecond: number }> {
  const shares = Array.from(
    { length: run.threads },
    (_, i) => run.tracks.filter((_, t) => t % run.threads === i),
  );
  const procs = await Promise.all(shares.map(async (share, i) => {
    const list = `${run.dir}/parallel-${i}.json`;
    await Deno.writeTextFile(list, JSON.stringify(share));
    return run.spawn("engine_raw.ts", [list, ...run.flags ?? []]);
  }));
  let cpuUs = 0;
  let audioMs = 0;
  let chunks = 0;
  for (const proc of procs) {
    const line = await proc.nextLine();
    await proc.child.status;
    if (line === null) throw new Error("bench: engine_raw.ts exited early (see its errors above)");
    const raw = JSON.parse(line);
    cpuUs += raw.cpuUs;
    audioMs += raw.audioMs;
    chunks += raw.chunksDecoded;
  }
  return { rtf: cpuUs / 1000 / audioMs, chunksPerAudioSecond: chunks / (audioMs / 1000) };
}

interface Server {
  url: string;
  control: string;
}

/** One step of the capacity run. */
export interface CapacityStep {
  tracks: number;
  maxDecodeDelayMs: number;
  callErrors: number;
  passed: boolean;
}

/**
 * The most tracks decoded in real time: `ladder` calls (two speech tracks
 * each, cut to `seconds`) at once against one local-engine server, stepping
 * up until a step fails.
 */
export async function measuredCapacity(run: {
  /** µ-law files of speech calls to cycle through. */
  files: Array<{ inbound: string; outbound: string }>;
  ladder: number[];
  seconds: number;
  dir: string;
  server: Server;
  spawn: (script: string, args: string[]) => ChildProc;
}): Promise<{ measuredRealtimeTracks: number; steps: CapacityStep[] }> {
  const cut = await cutCalls(run.files, run.seconds, run.dir);
  const json = async (path: string, init?: RequestInit) =>
    await (await fetch(`${run.server.control}${path}`, init)).json();
  const steps: CapacityStep[] = [];
  let measured = 0;
  for (const calls of run.ladder) {
    await json("/reset", { method: "POST" });
    const done = await playCalls(cut, calls, run.server.url, run.dir, run.spawn);
    for (let i = 0; i < 100 && (await json("/stats")).activeCalls > 0; i++) await sleep(100);
    const stats = await json("/stats");
    const step: CapacityStep = {
      tracks: calls * 2,
      maxDecodeDelayMs: stats.maxDecodeDelayMs,
      callErrors: stats.callErrors,
      passed: stats.maxDecodeDelayMs <= MAX_DECODE_DELAY_MS && stats.callErrors === 0 &&
        !done.closedAbnormally,
    };
    steps.push(step);
    progress(
      `engine capacity: ${step.tracks} tracks, audio waited up to ${
        step.maxDecodeDelayMs.toFixed(0)
      } ms to be decoded, ${step.callErrors} errors${step.passed ? "" : " (behind real time)"}`,
    );
    if (!step.passed) break;
    measured = step.tracks;
  }
  return { measuredRealtimeTracks: measured, steps };
}

/**
 * Plays `calls` of `cut` (cycled; call i starting (i × 7) mod 16 frames late)
 * to the server at `url` with the load generator; its last report.
 */
async function playCalls(
  cut: Array<{ inbound: string; outbound: string }>,
  calls: number,
  url: string,
  dir: string,
  spawn: (script: string, args: string[]) => ChildProc,
): Promise<Record<string, number>> {
  const spec = `${dir}/capacity-${calls}.json`;
  await Deno.writeTextFile(
    spec,
    JSON.stringify({
      calls: Array.from({ length: calls }, (_, i) => ({
        callSid: makeSid("CA"),
        ...cut[i % cut.length],
        startFrame: (i * 7) % 16,
      })),
    }),
  );
  const load = spawn("load.ts", ["--url", url, "--audio", spec]);
  let done: Record<string, number> = {};
  for (let line = await load.nextLine(); line !== null; line = await load.nextLine()) {
    done = JSON.parse(line);
  }
  await load.child.status;
  return done;
}

/** Each call's audio cut to `seconds`, so a capacity step takes that long whatever the set. */
function cutCalls(
  files: Array<{ inbound: string; outbound: string }>,
  seconds: number,
  dir: string,
): Promise<Array<{ inbound: string; outbound: string }>> {
  return Promise.all(files.map(async (f, i) => {
    const out = { inbound: `${dir}/cut${i}-in.ulaw`, outbound: `${dir}/cut${i}-out.ulaw` };
    for (const side of ["inbound", "outbound"] as const) {
      const bytes = await Deno.readFile(f[side]);
      await Deno.writeFile(out[side], bytes.subarray(0, seconds * 8000));
    }
    return out;
  }));
}

/**
 * {@link measuredCapacity} for raw sherpa-onnx: the same steps of the same
 * calls, the tracks dealt round-robin to `threads` raw loops at once, each
 * fed 20 ms frames in real time from staggered starts and asking for
 * partials (`engine_raw.ts --paced --frames --partials`); a step holds while
 * no audio waited more than {@link MAX_DECODE_DELAY_MS} to be decoded. With
 * `floor`, the load generator plays the step's calls to that server (the
 * floor: parse and base64 only) while the raw loops decode, so the loops
 * share the cores as our workers do in {@link measuredCapacity}.
 */
export async function measuredRawCapacity(run: {
  files: Array<{ inbound: string; outbound: string }>;
  ladder: number[];
  seconds: number;
  threads: number;
  dir: string;
  spawn: (script: string, args: string[]) => ChildProc;
  floor?: Server;
}): Promise<{ measuredRealtimeTracks: number; steps: CapacityStep[] }> {
  const cut = await cutCalls(run.files, run.seconds, run.dir);
  const steps: CapacityStep[] = [];
  const what = run.floor ? "raw capacity beside the floor server" : "raw capacity";
  let measured = 0;
  for (const calls of run.ladder) {
    const played = run.floor && playCalls(cut, calls, run.floor.url, run.dir, run.spawn);
    const tracks = Array.from({ length: calls }, (_, i) => cut[i % cut.length])
      .flatMap((c) => [c.inbound, c.outbound]);
    const procs = await Promise.all(Array.from({ length: run.threads }, async (_, p) => {
      const list = `${run.dir}/raw-capacity-${calls}-${p}.json`;
      await Deno.writeTextFile(
        list,
        JSON.stringify(tracks.filter((_, t) => t % run.threads === p)),
      );
      return run.spawn("engine_raw.ts", [list, "--paced", "--frames", "--partials"]);
    }));
    let maxDecodeDelayMs = 0;
    for (const proc of procs) {
      const line = await proc.nextLine();
      await proc.child.status;
      if (line === null) {
        throw new Error("bench: engine_raw.ts exited early (see its errors above)");
      }
      maxDecodeDelayMs = Math.max(maxDecodeDelayMs, JSON.parse(line).maxDecodeDelayMs);
    }
    const done = played ? await played : {};
    const step: CapacityStep = {
      tracks: calls * 2,
      maxDecodeDelayMs,
      callErrors: 0,
      passed: maxDecodeDelayMs <= MAX_DECODE_DELAY_MS && !done.closedAbnormally,
    };
    steps.push(step);
    progress(
      `${what}: ${step.tracks} tracks, audio waited up to ${
        maxDecodeDelayMs.toFixed(0)
      } ms to be decoded${step.passed ? "" : " (behind real time)"}`,
    );
    if (!step.passed) break;
    measured = step.tracks;
  }
  return { measuredRealtimeTracks: measured, steps };
}
