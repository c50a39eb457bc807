/**
 * The local engine's latency in audio time, free of CPU noise: the decoder
 * fed every set of `../shared/audio` frame by frame on one thread, each
 * transcript stamped with how much audio had been written when it came out.
 * So a word's emission latency is the audio that had to follow it before it
 * appeared: what the model's chunks, the VAD and the endpoint rules decide,
 * without queueing. Deterministic; about a minute.
 *
 * Usage: `deno run -A bench/latency_offline.ts` (settings from the
 * environment, e.g. `VAD_SILENCE_MS=0` for the endpoint rules alone). Prints
 * one JSON line.
 *
 * @module
 */
import { loadConfig } from "../app/config.ts";
import { findModel } from "../app/engine.ts";
import { LocalDecoder } from "../lib/transcribe/local_decoder.ts";
import { packTracks, readSet } from "./audio.ts";
import { type EmittedTrack, latencyMetrics } from "./latency.ts";

const SHARED_AUDIO = new URL("../../shared/audio/", import.meta.url).pathname;
const config = loadConfig();
const decoder = new LocalDecoder(await findModel(config), config.local);
const tracks: EmittedTrack[] = [];
for (
  const set of ["librispeech-samples", "librivox-sense-and-sensibility", "asterisk-allison-8k"]
) {
  const packed = await packTracks(set, await readSet(`${SHARED_AUDIO}${set}`), {
    gapMs: 1500,
    maxTrackMs: 60_000,
  });
  for (const track of packed) {
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
await decoder.dispose();
console.log(JSON.stringify({ settings: config.local, ...latencyMetrics(tracks) }));
