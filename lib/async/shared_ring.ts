/**
 * A queue of byte messages between two threads in one SharedArrayBuffer:
 * one thread writes, the other reads, and the reader can sleep until a
 * message comes. Waking a thread that sleeps in `Atomics.wait` costs a few
 * tens of µs; a Web Worker woken by `postMessage` runs its event loop and
 * costs about 280 µs on our 2-core VM (measured), which a decoder worker fed
 * every 20 ms pays 50 times a second.
 *
 * @module
 */

/** Int32 slots before the data: where the writer and the reader are. */
const WRITE = 0;
const READ = 1;
const HEADER_BYTES = 8;
/** Each message is prefixed with its length. */
const LENGTH_BYTES = 4;

/** A single-writer, single-reader ring of length-prefixed messages. */
export class SharedRing {
  /** Pass this to the other thread and wrap it there with `new SharedRing(buffer)`. */
  readonly buffer: SharedArrayBuffer;
  readonly #positions: Int32Array;
  readonly #data: Uint8Array;
  readonly #capacity: number;
  /** A length prefix on its way in or out (one per ring, not one per message). */
  readonly #length = new Uint8Array(LENGTH_BYTES);
  readonly #lengthView = new DataView(this.#length.buffer);

  /** Wraps a buffer made by {@link SharedRing.create} (on either thread). */
  constructor(buffer: SharedArrayBuffer) {
    this.buffer = buffer;
    this.#positions = new Int32Array(buffer, 0, 2);
    this.#data = new Uint8Array(buffer, HEADER_BYTES);
    this.#capacity = this.#data.length;
  }

  /** A ring holding up to `capacity` bytes of messages and their length prefixes. */
  static create(capacity: number): SharedRing {
    if (!Number.isInteger(capacity) || capacity < LENGTH_BYTES || capacity > 2 ** 30) {
      throw new RangeError(`Cannot create a ring of ${capacity} bytes: use 4 bytes to 1 GiB`);
    }
    return new SharedRing(new SharedArrayBuffer(HEADER_BYTES + capacity + 1));
  }

  /** Bytes of messages written and not yet read, prefixes included. */
  get usedBytes(): number {
    return this.#used(Atomics.load(this.#positions, WRITE), Atomics.load(this.#positions, READ));
  }

  /**
   * Appends `message` if it fits, without waking the reader (see
   * {@link notify}, so that many writes cost one wake); false when the ring
   * is too full for it now.
   */
  tryWrite(message: Uint8Array): boolean {
    const write = Atomics.load(this.#positions, WRITE);
    const read = Atomics.load(this.#positions, READ);
    const size = LENGTH_BYTES + message.length;
    // One byte stays free: equal positions mean empty, never full.
    if (size > this.#capacity - 1 - this.#used(write, read)) return false;
    this.#lengthView.setUint32(0, message.length, true);
    let at = this.#copyIn(write, this.#length);
    at = this.#copyIn(at, message);
    // The store publishes the bytes above (Atomics are sequentially consistent).
    Atomics.store(this.#positions, WRITE, at);
    return true;
  }

  /** Wakes the reader if it sleeps in {@link waitForMessage}. */
  notify(): void {
    Atomics.notify(this.#positions, WRITE);
  }

  /** The oldest message (a copy), or null when there is none. */
  tryRead(): Uint8Array | null {
    const write = Atomics.load(this.#positions, WRITE);
    const read = Atomics.load(this.#positions, READ);
    if (write === read) return null;
    let at = this.#copyOut(read, this.#length);
    const message = new Uint8Array(this.#lengthView.getUint32(0, true));
    at = this.#copyOut(at, message);
    Atomics.store(this.#positions, READ, at);
    return message;
  }

  /**
   * The messages in the ring when called, oldest first, each read as it is
   * taken; messages written meanwhile are left for the next call. A reader
   * that must do something after each batch (a decoder worker counting what
   * it decoded) then gets to it however fast the writer keeps writing.
   */
  *messagesNow(): Generator<Uint8Array> {
    for (let unread = this.usedBytes; unread > 0;) {
      const message = this.tryRead();
      if (message === null) return;
      unread -= LENGTH_BYTES + message.length;
      yield message;
    }
  }

  /**
   * Blocks this thread until a message is there to read (returns at once if
   * one is). Only where blocking is allowed: a Web Worker, not a main thread.
   */
  waitForMessage(): void {
    const read = Atomics.load(this.#positions, READ);
    for (;;) {
      const write = Atomics.load(this.#positions, WRITE);
      if (write !== read) return;
      Atomics.wait(this.#positions, WRITE, write);
    }
  }

  #used(write: number, read: number): number {
    return (write - read + this.#capacity) % this.#capacity;
  }

  /** Copies `bytes` in at position `at`, wrapping at the end; the position after them. */
  #copyIn(at: number, bytes: Uint8Array): number {
    const first = Math.min(bytes.length, this.#capacity - at);
    this.#data.set(bytes.subarray(0, first), at);
    this.#data.set(bytes.subarray(first), 0);
    return (at + bytes.length) % this.#capacity;
  }

  /** Fills `bytes` from position `at`, wrapping at the end; the position after them. */
  #copyOut(at: number, bytes: Uint8Array): number {
    const first = Math.min(bytes.length, this.#capacity - at);
    bytes.set(this.#data.subarray(at, at + first));
    bytes.set(this.#data.subarray(0, bytes.length - first), first);
    return (at + bytes.length) % this.#capacity;
  }
}
