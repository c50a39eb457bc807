/**
 * The local engine's latency in audio time, free of CPU noise: the decoder
 * fed every set of `../shared/audio` frame by frame on one thread, each
 * transcript stamped with how much audio had been written when it came out.
 * So a word's emission latency is the audio that had to follow it before it
 * appeared: what the model's chunks, the voice detector and the endpoint
 * rules decide, without queueing. Each track runs three times, after 0, 107
 * and 213 ms of leading silence: where the model's 320 ms chunks fall moves
 * a set's errors by two or three words either way, which one alignment
 * would report as a change. Deterministic; about two minutes.
 *
 * Usage: `deno run -A bench/latency_offline.ts` (settings from the
 * environment, e.g. `VAD_SILENCE_MS=0` for the endpoint rules alone). Prints
 * one JSON line, with finals per utterance over all sets and per set.
 *
 * @module
 */
import { loadConfig } from "../app/config.ts";
import { findModel } from "../app/engine.ts";
import { LocalDecoder } from "../lib/transcribe/local_decoder.ts";
import { MULAW_SILENCE } from "../lib/audio/mulaw.ts";
import { packTracks, readSet, SPEECH_SETS, type SpeechTrack } from "./audio.ts";
import { type EmittedTrack, latencyMetrics } from "./latency.ts";

const SHARED_AUDIO = new URL("../../shared/audio/", import.meta.url).pathname;
/** Leading silence (ms) of each run of a track: three places for the model's chunk boundaries. */
const ALIGNMENTS_MS = [0, 107, 213];

/** `track` after `ms` of silence, its utterances moved with it. */
function delayed(track: SpeechTrack, ms: number): SpeechTrack {
  const mulaw = new Uint8Array(ms * 8 + track.mulaw.length).fill(MULAW_SILENCE);
  mulaw.set(track.mulaw, ms * 8);
  const utterances = track.utterances.map((u) => ({
    ...u,
    onsetMs: u.onsetMs + ms,
    endMs: u.endMs + ms,
  }));
  return { ...track, mulaw, utterances };
}
const config = loadConfig();
const decoder = new LocalDecoder(await findModel(config), config.local);
const tracks: EmittedTrack[] = [];
for (const set of SPEECH_SETS) {
  const packed = await packTracks(set, await readSet(`${SHARED_AUDIO}${set}`), {
    gapMs: 1500,
    maxTrackMs: 60_000,
  });
  for (const track of ALIGNMENTS_MS.flatMap((ms) => packed.map((t) => delayed(t, ms)))) {
    const out: EmittedTrack = { set, utterances: track.utterances, t0: 0, transcripts: [] };
    let written = 0;
    const transcriber = decoder.open("inbound", {
      onTranscript: (t) =>
        out.transcripts.push({ type: t.type, text: t.text, words: t.words, emitMs: written / 8 }),
    });
    while (written < track.mulaw.length) {
      transcriber.write(track.mulaw.subarray(written, written += 160));
    }
    await transcriber.close();
    tracks.push(out);
  }
}
const chunksDecoded = decoder.chunksDecoded;
await decoder.dispose();
// Per set, because a set of multi-sentence prompts is cut far more often than single sentences.
const finalsPerUtteranceOf = (set: string) =>
  latencyMetrics(tracks.filter((t) => t.set === set)).finalsPerUtterance;
const finalsPerUtteranceBySet = Object.fromEntries(
  SPEECH_SETS.map((set) => [set, finalsPerUtteranceOf(set)]),
);
console.log(JSON.stringify({
  settings: config.local,
  chunksDecoded,
  ...latencyMetrics(tracks),
  finalsPerUtteranceBySet,
}));
