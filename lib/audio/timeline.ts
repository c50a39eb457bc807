/**
 * Aligns one track's media to the call's clock.
 *
 * Twilio stamps each media message with `media.timestamp`: milliseconds since
 * the stream started. Frames can arrive bunched (network) — that is fine as
 * long as their timestamps follow on. When a timestamp is ahead of the audio
 * fed so far by a frame or more, packets were lost (or the track was quiet and
 * not sent), and silence must be fed first so that later words keep their
 * times. A timestamp behind (a duplicate or a backward jump) gets no fill.
 *
 * @module
 */
import { BYTES_PER_MS, FRAME_MS } from "./framing.ts";
import { MULAW_SILENCE } from "./mulaw.ts";

/** What to do with one payload. */
export interface Placement {
  /** Bytes of µ-law silence to feed before the payload (a multiple of 8: whole ms). */
  silenceBytes: number;
}

/** One track's position on the call's clock. */
export class TrackTimeline {
  #bytes = 0;

  /**
   * Places a payload stamped `timestampMs`, assuming the caller then feeds
   * `silenceBytes` of silence followed by the payload (late payloads too;
   * they advance the position like any other).
   */
  place(timestampMs: number, payload: Uint8Array): Placement {
    const ahead = timestampMs - this.#bytes / BYTES_PER_MS;
    const silenceBytes = ahead >= FRAME_MS ? Math.round(ahead) * BYTES_PER_MS : 0;
    this.#bytes += silenceBytes + payload.length;
    return { silenceBytes };
  }

  /** Track position in ms: audio fed so far, silence included. */
  get positionMs(): number {
    return this.#bytes / BYTES_PER_MS;
  }
}

/** Gaps up to this many bytes (10 s) are served from a shared buffer. */
const CACHE_LIMIT = 80_000;
let silenceCache = new Uint8Array(0);

/**
 * `bytes` of µ-law silence (0xFF). Returns a view of a shared buffer: callers
 * must not mutate it (copy it first if they need to).
 */
export function fillSilence(bytes: number): Uint8Array {
  if (bytes > CACHE_LIMIT) return new Uint8Array(bytes).fill(MULAW_SILENCE);
  if (bytes > silenceCache.length) {
    silenceCache = new Uint8Array(Math.max(bytes, 8000)).fill(MULAW_SILENCE);
  }
  return silenceCache.subarray(0, bytes);
}
