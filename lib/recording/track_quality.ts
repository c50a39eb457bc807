/**
 * Audio quality of one track, measured from the audio the server received as
 * it is recorded (no second pass over a file): silence filled into gaps,
 * clipped samples, silent stretches and the mean level.
 *
 * @module
 */
import { mulawDecodeSample } from "../audio/mulaw.ts";
import type { Track } from "../transcribe/engine.ts";
import type { LaptopInput } from "./call_audio_summary.ts";

/** One track's quality, as stored with the call and exported. */
export interface TrackQualityStats {
  /** Audio received (payloads), in ms. */
  receivedMs: number;
  /** Silence filled into gaps of the track's timestamps, in ms. */
  gapMs: number;
  /** Share of received samples at the largest µ-law magnitude (0..1). */
  clippedShare: number;
  /** Share of received 20 ms blocks below {@link SILENT_DBFS} (0..1). */
  silentShare: number;
  /** RMS level of everything received, in dBFS (floored at {@link FLOOR_DBFS}). */
  meanLevelDb: number;
}

/** Quality of both tracks of a call. */
export type CallQuality = Record<Track, TrackQualityStats>;

/** A 20 ms block quieter than this is silent (a muted microphone sends digital zero). */
export const SILENT_DBFS = -50;
/** Lowest level reported: the dynamic range of 16-bit audio. */
export const FLOOR_DBFS = -96;

const BLOCK = 160;
const FULL_SCALE_SQUARED = 32768 * 32768;
/** µ-law code → squared sample, so a block's energy is one lookup a sample. */
const SQUARE = new Float64Array(256);
for (let code = 0; code < 256; code++) SQUARE[code] = mulawDecodeSample(code) ** 2;
const silentBlockEnergy = BLOCK * FULL_SCALE_SQUARED * 10 ** (SILENT_DBFS / 10);

/** dBFS of a mean squared sample. */
export function levelDb(meanSquare: number): number {
  if (!(meanSquare > 0)) return FLOOR_DBFS;
  return Math.max(FLOOR_DBFS, Math.round(100 * Math.log10(meanSquare / FULL_SCALE_SQUARED)) / 10);
}

/** Accumulates one track's quality from its µ-law audio, in the order received. */
export class TrackQuality {
  #samples = 0;
  #energy = 0;
  #clipped = 0;
  #blocks = 0;
  #silentBlocks = 0;
  #blockEnergy = 0;
  #blockFill = 0;
  #gapMs = 0;
  /** Energy and samples since {@link takeLevel} was last called. */
  #recentEnergy = 0;
  #recentSamples = 0;

  /** Counts a payload as received. */
  addAudio(mulaw: Uint8Array): void {
    // Locals in the loop, fields written once: this runs on every sample of every call.
    let energy = 0;
    let clipped = 0;
    let blocks = 0;
    let silentBlocks = 0;
    let blockEnergy = this.#blockEnergy;
    let blockFill = this.#blockFill;
    for (let i = 0; i < mulaw.length; i++) {
      const code = mulaw[i];
      const square = SQUARE[code];
      energy += square;
      // The two codes of the largest magnitude (±32124, 0x00 and 0x80): the sample was clipped.
      if ((code & 0x7f) === 0) clipped++;
      blockEnergy += square;
      if (++blockFill === BLOCK) {
        blocks++;
        if (blockEnergy < silentBlockEnergy) silentBlocks++;
        blockEnergy = 0;
        blockFill = 0;
      }
    }
    this.#blockEnergy = blockEnergy;
    this.#blockFill = blockFill;
    this.#blocks += blocks;
    this.#silentBlocks += silentBlocks;
    this.#clipped += clipped;
    this.#samples += mulaw.length;
    this.#energy += energy;
    this.#recentEnergy += energy;
    this.#recentSamples += mulaw.length;
  }

  /** Counts silence the timeline filled into a gap. */
  addGap(ms: number): void {
    this.#gapMs += ms;
  }

  /** The level (dBFS) since the last call, or null when nothing was received since. */
  takeLevel(): number | null {
    const level = this.#recentSamples ? levelDb(this.#recentEnergy / this.#recentSamples) : null;
    this.#recentEnergy = 0;
    this.#recentSamples = 0;
    return level;
  }

  /** The figures so far. */
  stats(): TrackQualityStats {
    const share = (n: number, of: number) => of ? Math.round((n / of) * 10_000) / 10_000 : 0;
    return {
      receivedMs: this.#samples / 8,
      gapMs: this.#gapMs,
      clippedShare: share(this.#clipped, this.#samples),
      silentShare: share(this.#silentBlocks, this.#blocks),
      meanLevelDb: this.#samples ? levelDb(this.#energy / this.#samples) : FLOOR_DBFS,
    };
  }
}

/** A track silent this much of the time looks muted. */
const MUTED_SHARE = 0.95;
/** A track with this share of clipped samples is too loud. */
const CLIPPED_SHARE = 0.01;
/** A track whose gaps fill this share of its time lost packets. */
const GAP_SHARE = 0.05;

/**
 * Plain warnings for tracks that look broken (empty when all looks fine).
 * `laptopInput` is what the laptop leg sent (the outbound track): when it sent
 * nothing, a silent outbound track is said to be that, not a muted microphone.
 */
export function qualityWarnings(
  quality: Partial<CallQuality>,
  laptopInput?: LaptopInput | null,
): string[] {
  const warnings: string[] = [];
  const percent = (share: number) => `${Math.floor(share * 100)}%`;
  for (const track of ["inbound", "outbound"] as const) {
    const q = quality[track];
    if (!q || q.receivedMs + q.gapMs === 0) continue;
    if (track === "outbound" && laptopInput === "off") {
      if (q.silentShare >= MUTED_SHARE) {
        warnings.push(
          "outbound track silent: the laptop leg was off (no microphone: AUDIO_INPUT unset, " +
            "not usable, or busy with another call), so only the phone side was heard",
        );
      }
    } else if (q.silentShare >= MUTED_SHARE) {
      warnings.push(
        `${track} track silent for ${percent(q.silentShare)} of the call: microphone muted?`,
      );
    }
    if (q.clippedShare >= CLIPPED_SHARE) {
      warnings.push(
        `${track} track clipped on ${percent(q.clippedShare)} of its samples: input too loud?`,
      );
    }
    const gapShare = q.gapMs / (q.receivedMs + q.gapMs);
    if (gapShare >= GAP_SHARE) {
      warnings.push(
        `${track} track lost ${percent(gapShare)} of its audio (${
          (q.gapMs / 1000).toFixed(1)
        } s filled with silence): network trouble?`,
      );
    }
  }
  return warnings;
}
