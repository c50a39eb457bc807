/**
 * What a user waits for, from the transcripts of one engine run: how soon
 * each word appears, how soon each utterance's final comes, how often an
 * utterance is cut into several finals, and the word error rate per set.
 * The same measure is applied to our server and to the raw engine fed at
 * real time (the model's floor), so the two are comparable.
 *
 * Word times: the reference has no word times, so each reference word is
 * aligned (edit distance) to the words of the track's finals; a word that
 * matches takes the end time the engine gave it. For the last word of an
 * utterance the speech's end by energy is known too: `wordEndErrorMs` says
 * how far the engine's times are from it.
 *
 * @module
 */
import { normalizeWords, wordErrorRate } from "../lib/metrics/wer.ts";
import type { PlacedUtterance } from "./audio.ts";
import { quantile } from "./common.ts";

/** A transcript as emitted, with its word times (ms in its track) and when it came (epoch ms). */
export interface EmittedTranscript {
  type: "partial" | "final";
  text: string;
  words: Array<{ text: string; startMs: number; endMs: number }>;
  emitMs: number;
  /** True when emitted by the track's close (a flush at hang-up), not while audio was live. */
  atClose?: boolean;
}

/** One track of a run: its set, its utterances, when its audio time 0 was due, what came out. */
export interface EmittedTrack {
  set: string;
  utterances: PlacedUtterance[];
  t0: number;
  transcripts: EmittedTranscript[];
}

/** A word of a partial counts as the final's word when its start is this close. */
const SAME_WORD_MS = 400;

/** Latency, splitting and accuracy of one run. */
export function latencyMetrics(tracks: EmittedTrack[]) {
  const emission: number[] = [];
  const afterWordEnd: number[] = [];
  const wordEndError: number[] = [];
  let utterances = 0;
  let finals = 0;
  const werBySet = new Map<string, { errors: number; words: number }>();
  for (const track of tracks) {
    const byUtterance = assign(track);
    track.utterances.forEach((u, i) => {
      utterances++;
      const own = byUtterance[i];
      finals += own.filter((t) => t.type === "final").length;
      const last = own.filter((t) => t.type === "final" && !t.atClose).at(-1);
      if (last) {
        afterWordEnd.push(last.emitMs - (track.t0 + u.endMs));
        const lastWord = last.words.at(-1);
        if (lastWord) wordEndError.push(lastWord.endMs - u.endMs);
      }
    });
    emission.push(...wordEmission(track));
    const hypothesis = track.transcripts.filter((t) => t.type === "final").map((t) => t.text)
      .join(" ");
    const reference = track.utterances.map((u) => u.text).join(" ");
    const { errors, referenceWords } = wordErrorRate(reference, hypothesis);
    const sum = werBySet.get(track.set) ?? { errors: 0, words: 0 };
    werBySet.set(track.set, { errors: sum.errors + errors, words: sum.words + referenceWords });
  }
  const wer: Record<string, number> = {};
  const werDetail: Record<string, { errors: number; words: number }> = {};
  for (const [set, sum] of werBySet) {
    wer[set] = sum.errors / sum.words;
    werDetail[set] = sum;
  }
  return {
    wordEmissionP50Ms: quantile(emission, 0.5),
    wordEmissionP95Ms: quantile(emission, 0.95),
    finalAfterWordEndP50Ms: quantile(afterWordEnd, 0.5),
    finalAfterWordEndP95Ms: quantile(afterWordEnd, 0.95),
    finalsPerUtterance: finals / Math.max(1, utterances),
    /** The engine's end time of an utterance's last word − the speech's end by energy. */
    wordEndErrorP50Ms: quantile(wordEndError, 0.5),
    wordsTimed: emission.length,
    utterances,
    utterancesWithFinal: afterWordEnd.length,
    wer,
    werDetail,
  };
}

/** Each transcript of a track goes to the utterance nearest its middle. */
export function assign(track: EmittedTrack): EmittedTranscript[][] {
  const out = track.utterances.map(() => [] as EmittedTranscript[]);
  for (const t of track.transcripts) {
    if (!t.words.length) continue;
    const middle = (t.words[0].startMs + t.words.at(-1)!.endMs) / 2;
    let best = 0;
    const distance = (u: PlacedUtterance) =>
      middle < u.onsetMs ? u.onsetMs - middle : Math.max(0, middle - u.endMs);
    track.utterances.forEach((u, i) => {
      if (distance(u) < distance(track.utterances[best])) best = i;
    });
    out[best].push(t);
  }
  return out;
}

/**
 * For every reference word the finals got right: ms from the word's end in
 * the audio to the first partial or final that showed it.
 */
function wordEmission(track: EmittedTrack): number[] {
  const finals = track.transcripts.filter((t) => t.type === "final");
  const hyp = finals.flatMap((t) => t.words.flatMap((w) => normalizeWords(w.text).map(() => w)));
  const hypText = finals.flatMap((t) => t.words.flatMap((w) => normalizeWords(w.text)));
  const ref = normalizeWords(track.utterances.map((u) => u.text).join(" "));
  const out: number[] = [];
  for (const [, j] of alignMatches(ref, hypText)) {
    const word = hyp[j];
    const text = hypText[j];
    const first = track.transcripts.find((t) =>
      t.words.some((w) =>
        Math.abs(w.startMs - word.startMs) <= SAME_WORD_MS && normalizeWords(w.text).includes(text)
      )
    );
    if (first) out.push(first.emitMs - (track.t0 + word.endMs));
  }
  return out;
}

/** Pairs [reference index, hypothesis index] of equal words on a minimum edit alignment. */
export function alignMatches(ref: string[], hyp: string[]): Array<[number, number]> {
  const rows = ref.length + 1;
  const cols = hyp.length + 1;
  const cost = new Uint32Array(rows * cols);
  for (let j = 0; j < cols; j++) cost[j] = j;
  for (let i = 1; i < rows; i++) {
    cost[i * cols] = i;
    for (let j = 1; j < cols; j++) {
      const diagonal = cost[(i - 1) * cols + j - 1] + (ref[i - 1] === hyp[j - 1] ? 0 : 1);
      cost[i * cols + j] = Math.min(
        diagonal,
        cost[(i - 1) * cols + j] + 1,
        cost[i * cols + j - 1] + 1,
      );
    }
  }
  const pairs: Array<[number, number]> = [];
  let i = ref.length;
  let j = hyp.length;
  while (i > 0 && j > 0) {
    const here = cost[i * cols + j];
    if (ref[i - 1] === hyp[j - 1] && here === cost[(i - 1) * cols + j - 1]) {
      pairs.push([i - 1, j - 1]);
      i--;
      j--;
    } else if (here === cost[(i - 1) * cols + j - 1] + 1) {
      i--;
      j--;
    } else if (here === cost[(i - 1) * cols + j] + 1) i--;
    else j--;
  }
  return pairs.reverse();
}
