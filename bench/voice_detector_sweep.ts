/**
 * The energy voice detector alone over every utterance of `../shared/audio`,
 * for a grid of its settings: how many ends of speech it hears per
 * utterance (more than one is a sentence cut into several finals) and how
 * long after the speech's end by energy (the bench's measure) it hears the
 * last one, in ms of audio, p50/p95, over all sets and per set. No model
 * runs, so it takes seconds and says what any silence-based end of speech can
 * do on these sets.
 *
 * Usage: `deno run -A bench/voice_detector_sweep.ts` (one JSON line per setting).
 *
 * @module
 */
import { mulawToFloat32 } from "../lib/audio/mulaw.ts";
import { readWavFile, toCallAudio } from "../lib/audio/wav.ts";
import {
  ENERGY_DETECTOR_DEFAULTS,
  EnergyVoiceDetector,
} from "../lib/transcribe/energy_voice_detector.ts";
import { readSet, SPEECH_SETS, speechBounds } from "./audio.ts";
import { quantile } from "./common.ts";

const SHARED_AUDIO = new URL("../../shared/audio/", import.meta.url).pathname;
/** Silence before and after each utterance, in 8 kHz samples: the line's floor, then room to end. */
const PAD = new Float32Array(16_000);

const utterances: Array<{ set: string; samples: Float32Array; endMs: number }> = [];
for (const set of SPEECH_SETS) {
  for (const u of await readSet(`${SHARED_AUDIO}${set}`)) {
    const mulaw = toCallAudio(await readWavFile(u.path));
    utterances.push({ set, samples: mulawToFloat32(mulaw), endMs: speechBounds(mulaw).endMs });
  }
}
const perUtterance = (n: number, of: number) => Number((n / of).toFixed(3));

// 200 ms is the end of speech the services' published figures are measured with (README, Finals).
for (const minSilenceMs of [200, 220, 240, 260, 280, 300, 320, 340]) {
  for (const aboveNoiseDb of [6, 9, 12, 15, 20]) {
    for (const minSpeechDbfs of [-50, -45, -40, -35]) {
      let ends = 0;
      const endsBySet = new Map<string, number>(SPEECH_SETS.map((set) => [set, 0]));
      const latency: number[] = [];
      for (const u of utterances) {
        const detector = new EnergyVoiceDetector({
          ...ENERGY_DETECTOR_DEFAULTS,
          sampleRate: 8000,
          minSilenceMs,
          aboveNoiseDb,
          minSpeechDbfs,
        });
        detector.push(PAD);
        const heard = [...detector.push(u.samples), ...detector.push(PAD)]
          .filter((e) => e.type === "speech-end");
        ends += heard.length;
        endsBySet.set(u.set, endsBySet.get(u.set)! + heard.length);
        const last = heard.at(-1);
        if (last) latency.push(last.atMs - (PAD.length / 8 + u.endMs));
      }
      console.log(JSON.stringify({
        minSilenceMs,
        aboveNoiseDb,
        minSpeechDbfs,
        endsPerUtterance: perUtterance(ends, utterances.length),
        endsPerUtteranceBySet: Object.fromEntries(
          SPEECH_SETS.map((set) => [
            set,
            perUtterance(endsBySet.get(set)!, utterances.filter((u) => u.set === set).length),
          ]),
        ),
        endAfterSpeechP50Ms: quantile(latency, 0.5),
        endAfterSpeechP95Ms: quantile(latency, 0.95),
        utterancesEnded: latency.length,
      }));
    }
  }
}
