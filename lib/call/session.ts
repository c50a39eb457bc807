/**
 * One call: its tracks, each aligned to the call's clock and fed to its own
 * transcriber. A session owns everything of its call, so one call's failure
 * never touches another.
 *
 * @module
 */
import { TrackTimeline } from "../audio/timeline.ts";
import { fillSilence } from "../audio/timeline.ts";
import type { Track, TrackTranscriber, TranscriberEngine } from "../transcribe/engine.ts";
import type { CallInfo, CallListener } from "./events.ts";

interface TrackState {
  timeline: TrackTimeline;
  transcriber: TrackTranscriber;
}

/** A live call: feed it media, end it once, and it reports through its listener. */
export class CallSession {
  readonly info: CallInfo;
  #engine: TranscriberEngine;
  #emit: CallListener;
  #tracks = new Map<Track, TrackState>();
  #ended: Promise<void> | null = null;
  /** Stream SIDs attached to this call (transcription and laptop legs). */
  readonly streams = new Set<string>();

  constructor(info: CallInfo, engine: TranscriberEngine, emit: CallListener) {
    this.info = info;
    this.#engine = engine;
    this.#emit = emit;
    emit({ type: "call-started", call: info, at: Date.now() });
  }

  /** True once the call has ended (or is ending). */
  get ended(): boolean {
    return this.#ended !== null;
  }

  /** Opens a transcriber for a track; done when the transcription stream starts. */
  openTrack(track: Track): void {
    if (this.#tracks.has(track) || this.ended) return;
    const transcriber = this.#engine.open(track, {
      onTranscript: (transcript) => this.#emit({ type: "transcript", call: this.info, transcript }),
      onError: (error) =>
        this.#emit({ type: "call-error", call: this.info, message: error.message }),
    });
    this.#tracks.set(track, { timeline: new TrackTimeline(), transcriber });
  }

  /** Feeds one media payload placed at `timestampMs` of its track. */
  media(track: Track, timestampMs: number, payload: Uint8Array): void {
    if (this.ended) return;
    if (!this.#tracks.has(track)) this.openTrack(track);
    const state = this.#tracks.get(track)!;
    const { silenceBytes } = state.timeline.place(timestampMs, payload);
    if (silenceBytes > 0) state.transcriber.write(fillSilence(silenceBytes));
    state.transcriber.write(payload);
  }

  /**
   * Ends the call once: every transcriber flushes its last words, then
   * `call-ended` is emitted. Later calls return the same promise.
   */
  end(reason: string): Promise<void> {
    this.#ended ??= (async () => {
      const closing = [...this.#tracks.values()].map((t) => t.transcriber.close());
      const results = await Promise.allSettled(closing);
      for (const result of results) {
        if (result.status === "rejected") {
          this.#emit({
            type: "call-error",
            call: this.info,
            message: `flushing a track failed: ${(result.reason as Error)?.message}`,
          });
        }
      }
      this.#emit({ type: "call-ended", call: this.info, at: Date.now(), reason });
    })();
    return this.#ended;
  }
}
