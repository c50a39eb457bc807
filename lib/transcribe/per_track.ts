/**
 * An engine per track (`TRANSCRIBER_INBOUND` / `TRANSCRIBER_OUTBOUND`), e.g.
 * AssemblyAI for the phone party and the local engine for the laptop side:
 * one cloud session per call instead of two.
 *
 * @module
 */
import type { Track, TrackTranscriber, TranscriberEngine, TranscriptSink } from "./engine.ts";

/** Opens each track on its own engine and marks its transcripts with that engine's name. */
export class PerTrackEngine implements TranscriberEngine {
  readonly name: string;
  readonly #engines: Record<Track, TranscriberEngine>;
  readonly #owned: TranscriberEngine[];

  /** `owned`: every engine to dispose with this one (each once). */
  constructor(engines: Record<Track, TranscriberEngine>, owned: TranscriberEngine[]) {
    this.#engines = engines;
    this.#owned = [...new Set(owned)];
    this.name = engines.inbound === engines.outbound
      ? engines.inbound.name
      : `inbound:${engines.inbound.name},outbound:${engines.outbound.name}`;
  }

  open(track: Track, sink: TranscriptSink): TrackTranscriber {
    const engine = this.#engines[track].name;
    return this.#engines[track].open(track, {
      onTranscript: (t) => sink.onTranscript(t.engine ? t : { ...t, engine }),
      onError: sink.onError && ((e) => sink.onError!(e)),
    });
  }

  /** Caught up once every engine is: a track's engine cannot be outrun through the other's. */
  async whenCaughtUp(): Promise<void> {
    await Promise.all(this.#owned.map((engine) => engine.whenCaughtUp()));
  }

  async dispose(): Promise<void> {
    // Wrappers first (a hybrid engine's cloud), then what they wrap.
    for (const engine of this.#owned) await engine.dispose();
  }
}
