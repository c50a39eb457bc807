/**
 * 20 ms framing of 8 kHz µ-law call audio (what Twilio media streams carry).
 *
 * @module
 */
import { MULAW_SILENCE } from "./mulaw.ts";

/** Length of one media frame. */
export const FRAME_MS = 20;
/** Bytes of one frame: 20 ms of 8 kHz µ-law. */
export const FRAME_BYTES = 160;
/** µ-law bytes (samples) per millisecond at 8 kHz. */
export const BYTES_PER_MS = 8;

/** Engines take audio 100 ms at a time (one native call or message per batch, not per frame). */
export const BATCH_BYTES = 100 * 8;

/**
 * Splits µ-law audio into 160-byte frames. Full frames are views into
 * `mulaw` (no copy; don't mutate them); the last, partial frame is a new
 * array padded with {@link MULAW_SILENCE}.
 */
export function splitFrames(mulaw: Uint8Array): Uint8Array[] {
  const frames: Uint8Array[] = [];
  const full = Math.floor(mulaw.length / FRAME_BYTES);
  for (let i = 0; i < full; i++) {
    frames.push(mulaw.subarray(i * FRAME_BYTES, (i + 1) * FRAME_BYTES));
  }
  const rest = mulaw.length - full * FRAME_BYTES;
  if (rest > 0) {
    const last = silenceFrame();
    last.set(mulaw.subarray(full * FRAME_BYTES));
    frames.push(last);
  }
  return frames;
}

/**
 * Gathers audio written in pieces of any size into batches of a fixed size
 * (an engine takes 100 ms at a time, not 20 ms frames), reusing one buffer.
 */
export class ByteBatcher {
  readonly #batch: Uint8Array;
  #filled = 0;

  constructor(size: number) {
    this.#batch = new Uint8Array(size);
  }

  /** Adds `bytes`, handing each batch that fills to `onFull` (a view, valid during the call). */
  push(bytes: Uint8Array, onFull: (batch: Uint8Array) => void): void {
    let offset = 0;
    while (offset < bytes.length) {
      const n = Math.min(bytes.length - offset, this.#batch.length - this.#filled);
      this.#batch.set(bytes.subarray(offset, offset + n), this.#filled);
      this.#filled += n;
      offset += n;
      if (this.#filled === this.#batch.length) {
        this.#filled = 0;
        onFull(this.#batch);
      }
    }
  }

  /** Takes the unfinished batch (a view, valid until the next push); may be empty. */
  drain(): Uint8Array {
    const rest = this.#batch.subarray(0, this.#filled);
    this.#filled = 0;
    return rest;
  }
}

/** A new 160-byte frame of µ-law silence (0xFF). */
export function silenceFrame(): Uint8Array {
  return new Uint8Array(FRAME_BYTES).fill(MULAW_SILENCE);
}

/** Duration in ms of 8 kHz µ-law audio, given its bytes or their count. */
export function durationMs(bytes: Uint8Array | number): number {
  const n = typeof bytes === "number" ? bytes : bytes.length;
  return n / BYTES_PER_MS;
}
