/**
 * The phone party's words transcribed again on the laptop's track (the echo
 * of the speaker in the microphone): words of an inbound final found again in
 * an outbound final that overlaps it, give or take 1 s.
 *
 * @module
 */
import type { Transcript } from "../transcribe/engine.ts";
import { normalizeWords } from "./wer.ts";

/** How near in time (ms) an outbound final must be to an inbound one to count as its echo. */
const WITHIN_MS = 1000;

/** The inbound words found again in overlapping outbound finals (each outbound word used once). */
export function duplicatedWords(inbound: Transcript[], outbound: Transcript[]): string[] {
  const found: string[] = [];
  for (const said of inbound) {
    const pool = outbound
      .filter((o) => o.startMs <= said.endMs + WITHIN_MS && o.endMs >= said.startMs - WITHIN_MS)
      .flatMap((o) => normalizeWords(o.text));
    for (const word of normalizeWords(said.text)) {
      const at = pool.indexOf(word);
      if (at < 0) continue;
      found.push(word);
      pool.splice(at, 1);
    }
  }
  return found;
}
