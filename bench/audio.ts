/**
 * Speech for the engine runs: utterances of the shared audio sets, converted
 * to call audio (8 kHz µ-law, the phone round trip), packed into tracks with
 * silence between them, and where each utterance's speech starts and ends.
 *
 * @module
 */
import { MULAW_SILENCE, mulawToFloat32 } from "../lib/audio/mulaw.ts";
import { readWavFile, toCallAudio } from "../lib/audio/wav.ts";

/** One utterance placed on a track. */
export interface PlacedUtterance {
  text: string;
  /** Speech onset and end on the track, in ms (by energy, not by the file's bounds). */
  onsetMs: number;
  endMs: number;
}

/** One track of speech from one audio set. */
export interface SpeechTrack {
  set: string;
  mulaw: Uint8Array;
  utterances: PlacedUtterance[];
}

/** The sets of `../shared/audio` every bench measures, in the order results list them. */
export const SPEECH_SETS = [
  "librispeech-samples",
  "librivox-sense-and-sensibility",
  "asterisk-allison-8k",
] as const;

/** An utterance of a set: its file and reference text. */
export interface Utterance {
  path: string;
  text: string;
}

/** The utterances of `dir/transcripts.tsv` (`file\ttext`), in order. */
export async function readSet(dir: string): Promise<Utterance[]> {
  const tsv = await Deno.readTextFile(`${dir}/transcripts.tsv`);
  return tsv.trim().split("\n").map((line) => {
    const [file, text] = line.split("\t");
    return { path: `${dir}/${file}`, text };
  });
}

/** Quick runs: the `count` shortest utterances (by file size), in their original order. */
export function shortest(utterances: Utterance[], count: number): Utterance[] {
  const sizes = new Map(utterances.map((u) => [u, Deno.statSync(u.path).size]));
  const keep = new Set(
    [...utterances].sort((a, b) => sizes.get(a)! - sizes.get(b)!).slice(0, count),
  );
  return utterances.filter((u) => keep.has(u));
}

/**
 * Where speech starts and ends in µ-law audio, in ms: the first and last
 * 10 ms window within 35 dB of the loudest one.
 */
export function speechBounds(mulaw: Uint8Array): { onsetMs: number; endMs: number } {
  const samples = mulawToFloat32(mulaw);
  const energies: number[] = [];
  for (let i = 0; i + 80 <= samples.length; i += 80) {
    let sum = 0;
    for (let j = i; j < i + 80; j++) sum += samples[j] * samples[j];
    energies.push(sum / 80);
  }
  const threshold = Math.max(...energies) * 10 ** (-35 / 10);
  const first = energies.findIndex((e) => e >= threshold);
  const last = energies.findLastIndex((e) => e >= threshold);
  return { onsetMs: Math.max(0, first) * 10, endMs: (last + 1) * 10 };
}

/**
 * Packs utterances into tracks of at most `maxTrackMs` (one utterance per
 * track at least), each followed by `gapMs` of silence: long enough for the
 * engine's endpoint to fire between utterances.
 */
export async function packTracks(
  set: string,
  utterances: Utterance[],
  options: { gapMs: number; maxTrackMs: number },
): Promise<SpeechTrack[]> {
  const gap = new Uint8Array(options.gapMs * 8).fill(MULAW_SILENCE);
  const tracks: SpeechTrack[] = [];
  let parts: Uint8Array[] = [];
  let placed: PlacedUtterance[] = [];
  let length = 0;
  const flush = () => {
    if (!parts.length) return;
    const mulaw = new Uint8Array(length);
    let offset = 0;
    for (const p of parts) {
      mulaw.set(p, offset);
      offset += p.length;
    }
    tracks.push({ set, mulaw, utterances: placed });
    parts = [];
    placed = [];
    length = 0;
  };
  for (const u of utterances) {
    const audio = toCallAudio(await readWavFile(u.path));
    if (length > 0 && length + audio.length + gap.length > options.maxTrackMs * 8) flush();
    const bounds = speechBounds(audio);
    const startMs = length / 8;
    placed.push({
      text: u.text,
      onsetMs: startMs + bounds.onsetMs,
      endMs: startMs + bounds.endMs,
    });
    parts.push(audio, gap);
    length += audio.length + gap.length;
  }
  flush();
  return tracks;
}
