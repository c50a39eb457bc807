/**
 * An engine that transcribes nothing: it only counts what it is handed. The
 * relay benchmark uses it to measure what the server costs per frame with
 * recognition taken out of the picture.
 *
 * @module
 */
import type { Track, TrackTranscriber, TranscriberEngine, TranscriptSink } from "./engine.ts";

/** What a {@link NullEngine} has been handed so far. */
export interface NullEngineCounts {
  tracksOpened: number;
  tracksClosed: number;
  /** `write` calls (frames, plus any gap-filling silence). */
  writes: number;
  bytes: number;
}

/** Options of a {@link NullEngine}. */
export interface NullEngineOptions {
  /** Sees every write, e.g. to time frames; must not keep `mulaw` (callers may reuse it). */
  onWrite?: (track: Track, mulaw: Uint8Array) => void;
}

/** Accepts audio, emits no transcripts, counts tracks, writes and bytes. */
export class NullEngine implements TranscriberEngine {
  readonly name = "null";
  readonly counts: NullEngineCounts = { tracksOpened: 0, tracksClosed: 0, writes: 0, bytes: 0 };
  readonly #onWrite?: (track: Track, mulaw: Uint8Array) => void;

  constructor(options: NullEngineOptions = {}) {
    this.#onWrite = options.onWrite;
  }

  open(track: Track, _sink: TranscriptSink): TrackTranscriber {
    const counts = this.counts;
    const onWrite = this.#onWrite;
    counts.tracksOpened++;
    let closed = false;
    return {
      write(mulaw: Uint8Array): void {
        if (closed) return;
        counts.writes++;
        counts.bytes += mulaw.length;
        onWrite?.(track, mulaw);
      },
      close(): Promise<void> {
        if (!closed) counts.tracksClosed++;
        closed = true;
        return Promise.resolve();
      },
    };
  }

  /** It takes audio as it comes: always caught up. */
  whenCaughtUp(): Promise<void> {
    return Promise.resolve();
  }

  dispose(): Promise<void> {
    return Promise.resolve();
  }
}
