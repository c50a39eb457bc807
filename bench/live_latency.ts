/**
 * The engine run's live latency, beside the model's floor: {@link latencyMetrics}
 * of our server's transcripts, and of raw sherpa-onnx fed the same distinct
 * tracks at real time (`engine_floor.ts`), in the same run.
 *
 * @module
 */
import type { SpeechTrack } from "./audio.ts";
import { type EmittedTrack, type EmittedTranscript, latencyMetrics } from "./latency.ts";
import type { TimedTranscript } from "./relay_server.ts";

interface Call {
  callSid: string;
  inbound: SpeechTrack | null;
  outbound: SpeechTrack | null;
  files: { inbound: string; outbound: string };
}

interface ChildProc {
  child: Deno.ChildProcess;
  nextLine(): Promise<string | null>;
}

/** Ours and the floor's word emission, final latency and splitting (WER stays in `wer`). */
export async function liveLatency(run: {
  calls: Call[];
  /** Copies of each call in `calls` (copy i of call k at k × copies + i). */
  copies: number;
  transcripts: TimedTranscript[];
  callT0: (index: number) => number;
  startFrame: (index: number) => number;
  dir: string;
  spawn: (script: string, args: string[]) => ChildProc;
}) {
  const sides = ["inbound", "outbound"] as const;
  const ours: EmittedTrack[] = [];
  run.calls.forEach((call, index) => {
    for (const side of sides) {
      const track = call[side];
      if (!track) continue;
      ours.push({
        set: track.set,
        utterances: track.utterances,
        t0: run.callT0(index),
        transcripts: run.transcripts.filter((t) => t.callSid === call.callSid && t.track === side),
      });
    }
  });

  // The floor decodes one copy of each track, staggered like the calls.
  const distinct: Array<{ track: SpeechTrack; path: string; startFrame: number }> = [];
  run.calls.forEach((call, index) => {
    if (index % run.copies) return;
    for (const side of sides) {
      const track = call[side];
      if (track) {
        distinct.push({ track, path: call.files[side], startFrame: run.startFrame(index) });
      }
    }
  });
  const list = `${run.dir}/floor.json`;
  await Deno.writeTextFile(
    list,
    JSON.stringify(distinct.map(({ path, startFrame }) => ({ path, startFrame }))),
  );
  const proc = run.spawn("engine_floor.ts", [list]);
  const line = await proc.nextLine();
  await proc.child.status;
  if (line === null) throw new Error("bench: engine_floor.ts exited early (see its errors above)");
  const out: {
    t0: number;
    tracks: Array<{ startFrame: number; transcripts: EmittedTranscript[] }>;
  } = JSON.parse(line);
  const floor: EmittedTrack[] = distinct.map((d, i) => ({
    set: d.track.set,
    utterances: d.track.utterances,
    t0: out.t0 + out.tracks[i].startFrame * 20,
    transcripts: out.tracks[i].transcripts,
  }));

  const { wer: _wer, werDetail: _detail, ...mine } = latencyMetrics(ours);
  const raw = latencyMetrics(floor);
  return {
    ...mine,
    floor: {
      wordEmissionP50Ms: raw.wordEmissionP50Ms,
      wordEmissionP95Ms: raw.wordEmissionP95Ms,
      finalAfterWordEndP50Ms: raw.finalAfterWordEndP50Ms,
      finalAfterWordEndP95Ms: raw.finalAfterWordEndP95Ms,
      finalsPerUtterance: raw.finalsPerUtterance,
      wer: raw.wer,
    },
  };
}
