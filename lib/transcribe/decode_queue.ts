/**
 * The decode queue of one recognizer: its tracks with a model chunk ready.
 *
 * @module
 */

/** A track as the queue sees it: a recognizer stream, and what to do once its chunks are ready. */
export interface QueuedTrack {
  // deno-lint-ignore no-explicit-any
  readonly stream: any;
  /** Decodes every ready chunk of the stream and emits what it heard. */
  decodeReady(): void;
}

/**
 * Tracks with a model chunk ready, decoded together once the audio that came
 * in one go (a worker's hand-off carries every track's last 20 ms) is in:
 * back to back, the model's weights stay in the CPU caches, and where the
 * encoder takes a batch, in one `decodeStreams` call. Nothing waits for a
 * timer, so no word comes later for it.
 */
export class DecodeQueue {
  // deno-lint-ignore no-explicit-any
  readonly #recognizer: any;
  /** The encoder takes several streams at once (read from the model file at start-up). */
  readonly #batch: boolean;
  /** Model chunks decoded so far, over every stream. */
  chunksDecoded = 0;
  #ready = new Set<QueuedTrack>();
  #scheduled = false;
  #cancelled = false;

  // deno-lint-ignore no-explicit-any
  constructor(recognizer: any, batch: boolean) {
    this.#recognizer = recognizer;
    this.#batch = batch;
  }

  add(track: QueuedTrack): void {
    this.#ready.add(track);
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => this.#flush());
  }

  /** Decodes every chunk of `stream` that is ready. */
  // deno-lint-ignore no-explicit-any
  decodeAll(stream: any): void {
    while (this.#recognizer.isReady(stream)) {
      this.#recognizer.decode(stream);
      this.chunksDecoded++;
    }
  }

  /** Takes `track` out of the queue; true when it was waiting to be decoded. */
  take(track: QueuedTrack): boolean {
    return this.#ready.delete(track);
  }

  cancel(): void {
    this.#cancelled = true;
    this.#ready.clear();
  }

  #flush(): void {
    this.#scheduled = false;
    if (this.#cancelled) return;
    const ready = [...this.#ready];
    this.#ready.clear();
    if (this.#batch && ready.length > 1) {
      try {
        let streams = ready.map((t) => t.stream).filter((s) => this.#recognizer.isReady(s));
        while (streams.length) {
          this.#recognizer.decodeStreams(streams);
          this.chunksDecoded += streams.length;
          streams = streams.filter((s) => this.#recognizer.isReady(s));
        }
      } catch {
        // Each track decodes on its own below and reports its own fault.
      }
    }
    for (const track of ready) track.decodeReady();
  }
}
