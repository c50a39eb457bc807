/**
 * Key terms on the local engine, measured in one run: the rare words of the
 * shared sets' transcripts (words of seven letters or more said in one
 * utterance only) are the key-term list. Every utterance of the speech sets
 * is decoded as a call's track is (µ-law 8 kHz, frame by frame, the engine's
 * voice detector and flush) by a decoder without key terms (greedy search)
 * and by one with the list (modified beam search with hotwords), on this
 * thread, one after the other. It reports how many of the rare words each
 * recognised in their own utterance, the WER on every other word (the rare
 * words taken out of reference and hypothesis), and the decoding time with
 * the list against greedy (the process's CPU time: the machine is shared,
 * and the wall clock counts other programs' turns).
 *
 *     deno run -P=app bench/keyterms.ts [--out bench/results.json] [--report] [--quick]
 *
 * Writes `keyterms` into the results file; with `--report` (as `bench/run.ts`
 * runs it) prints the same JSON line on stdout instead. `--quick` (the quick
 * bench) takes the first set's four shortest utterances only.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { loadConfig } from "../app/config.ts";
import { findModel } from "../app/engine.ts";
import { readWavFile, toCallAudio } from "../lib/audio/wav.ts";
import { normalizeWords, wordErrorRate } from "../lib/metrics/wer.ts";
import { LocalDecoder } from "../lib/transcribe/local_decoder.ts";
import { LOCAL_DEFAULTS } from "../lib/transcribe/local_engine_options.ts";
import { readSet, shortest, SPEECH_SETS, type Utterance } from "./audio.ts";
import { ownCpuUs, progress, report } from "./common.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
/** Shorter words are rarely the ones a support line cares about (names, products). */
const MIN_LETTERS = 7;

const { values: flags } = parseArgs({
  args: Deno.args,
  options: { out: { type: "string" }, report: { type: "boolean" }, quick: { type: "boolean" } },
});

/** `--quick`: utterances of the first set decoded (the shortest, with rare words still). */
const QUICK_UTTERANCES = 4;

// The asterisk set is single letters and digits: no rare words.
const sets = SPEECH_SETS.filter((s) => s !== "asterisk-allison-8k");
const utterances: Utterance[] = flags.quick
  ? shortest(await readSet(`${ROOT}../shared/audio/${sets[0]}`), QUICK_UTTERANCES)
  : (await Promise.all(sets.map((set) => readSet(`${ROOT}../shared/audio/${set}`)))).flat();
const utteranceCount = new Map<string, number>();
for (const u of utterances) {
  for (const word of new Set(normalizeWords(u.text))) {
    utteranceCount.set(word, (utteranceCount.get(word) ?? 0) + 1);
  }
}
const rare = new Set(
  [...utteranceCount].filter(([w, n]) => n === 1 && /^[a-z]+$/.test(w) && w.length >= MIN_LETTERS)
    .map(([w]) => w),
);
const keyterms = [...rare].sort();
progress(`keyterms: ${keyterms.length} rare words over ${utterances.length} utterances`);

// KEYTERMS_SCORE and the engine settings from the environment, as the server reads them.
const config = loadConfig(Deno.env.toObject());
const model = await findModel(config);
const audio = await Promise.all(
  utterances.map(async (u) => toCallAudio(await readWavFile(u.path))),
);

/** Every utterance's hypothesis, and the CPU time spent decoding (ms; this thread decodes alone). */
async function decodeAll(withTerms: boolean): Promise<{ texts: string[]; ms: number }> {
  const decoder = new LocalDecoder(model, {
    ...config.local,
    keyterms: withTerms ? keyterms : [],
  });
  const texts: string[] = [];
  let ms = 0;
  for (const mulaw of audio) {
    const finals: string[] = [];
    const started = ownCpuUs();
    const track = decoder.open("inbound", {
      onTranscript: (t) => t.type === "final" && finals.push(t.text),
    });
    for (let i = 0; i < mulaw.length; i += 160) track.write(mulaw.subarray(i, i + 160));
    await track.close();
    ms += (ownCpuUs() - started) / 1000;
    texts.push(finals.join(" "));
  }
  await decoder.dispose();
  return { texts, ms };
}

// Greedy first, then with the list, then greedy again: the cost is against the mean of the two
// greedy passes, so a machine that warms up or slows down during the run does not tilt it.
progress("keyterms: decoding without key terms (greedy search)");
const greedy = await decodeAll(false);
progress("keyterms: decoding with key terms (modified beam search, hotwords)");
const biased = await decodeAll(true);
progress("keyterms: decoding without key terms again, for the cost");
const greedyAgain = await decodeAll(false);

/** Rare words heard in the utterance that says them. */
const recognisedWords = (texts: string[]) =>
  new Set(utterances.flatMap((u, i) => {
    const heard = new Set(normalizeWords(texts[i]));
    return normalizeWords(u.text).filter((w) => rare.has(w) && heard.has(w));
  }));
const recognised = (texts: string[]) => recognisedWords(texts).size;
const otherWords = (text: string) => normalizeWords(text).filter((w) => !rare.has(w)).join(" ");
const werOthers = (texts: string[]) => {
  let errors = 0;
  let words = 0;
  utterances.forEach((u, i) => {
    const result = wordErrorRate(otherWords(u.text), otherWords(texts[i]));
    errors += result.errors;
    words += result.referenceWords;
  });
  return errors / words;
};

const werWithout = werOthers(greedy.texts);
const werWith = werOthers(biased.texts);
const results = {
  total: keyterms.length,
  recognisedWithout: recognised(greedy.texts),
  recognisedWith: recognised(biased.texts),
  werWithoutPercent: round(werWithout * 100),
  werWithPercent: round(werWith * 100),
  werDeltaPoints: round((werWith - werWithout) * 100),
  costRatioToGreedy: round(biased.ms / ((greedy.ms + greedyAgain.ms) / 2)),
  gained: [...recognisedWords(biased.texts).difference(recognisedWords(greedy.texts))],
  lost: [...recognisedWords(greedy.texts).difference(recognisedWords(biased.texts))],
  keytermsScore: config.local.keytermsScore ?? LOCAL_DEFAULTS.keytermsScore,
  decodeMs: {
    greedy: Math.round(greedy.ms),
    withTerms: Math.round(biased.ms),
    greedyAgain: Math.round(greedyAgain.ms),
  },
};
progress(
  `keyterms: ${results.recognisedWithout}/${results.total} rare words recognised ` +
    `without the list, ${results.recognisedWith}/${results.total} with it; other words' WER ` +
    `${results.werWithoutPercent}% → ${results.werWithPercent}%; decoding ×${results.costRatioToGreedy} greedy`,
);
if (flags.report) {
  report(results);
} else {
  const outPath = flags.out ?? `${ROOT}bench/results.json`;
  const all = JSON.parse(await Deno.readTextFile(outPath));
  all.keyterms = results;
  await Deno.writeTextFile(outPath, JSON.stringify(all, null, 2) + "\n");
  progress(`keyterms: written to ${outPath}`);
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}
