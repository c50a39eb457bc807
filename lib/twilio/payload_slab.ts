/**
 * Space for decoded media payloads, handed out as views of larger blocks:
 * one allocation per block instead of one per 20 ms frame. A typed array
 * over 64 bytes has its bytes outside the V8 heap (an allocation, zeroing,
 * and sweeping once it is garbage): about 0.4 µs per frame on this machine,
 * against 0.1 µs for a view.
 *
 * Each view is the caller's for good: a block is only ever appended to, and
 * lives while any of its views does. Blocks are small (a dozen frames) so
 * that one is garbage before it leaves the young generation: a block that
 * outlived it would wait for a full collection to be freed.
 *
 * @module
 */

/** Bytes per block: a dozen frames. */
const BLOCK_BYTES = 2048;

/** Hands out fresh byte arrays as views of shared, append-only blocks. */
export class PayloadSlab {
  #block = new Uint8Array(0);
  #used = 0;

  /** `length` fresh bytes (zero), not shared with any earlier view. */
  take(length: number): Uint8Array {
    if (length > BLOCK_BYTES) return new Uint8Array(length);
    if (this.#used + length > this.#block.length) {
      this.#block = new Uint8Array(BLOCK_BYTES);
      this.#used = 0;
    }
    const view = this.#block.subarray(this.#used, this.#used + length);
    this.#used += length;
    return view;
  }
}
