/**
 * The transcriber interface every engine implements.
 *
 * An engine is created once per process (loading a model per call is too
 * slow); it opens one {@link TrackTranscriber} per track of a call. Audio goes
 * in as G.711 µ-law at 8 kHz, exactly as Twilio sends it; partial and final
 * {@link Transcript}s come out with times in ms from the start of that track.
 * Engines know nothing of Twilio, sockets or calls.
 *
 * @module
 */

/** Which side of the call a track carries: inbound is the phone party, outbound the laptop. */
export type Track = "inbound" | "outbound";

/** How people see a track's speaker: in the printer, the exports and the dashboard. */
export const TRACK_LABELS: Readonly<Record<Track, string>> = {
  inbound: "Inbound",
  outbound: "Outbound",
};

/**
 * A transcript's speaker as people read it: the track's label, with the
 * speaker within the track and the language when the engine gave them
 * (`Inbound (B, es)`, `Inbound (B)`, `Inbound`).
 */
export function speakerName(
  t: { track: Track; speaker?: string | null; language?: string | null },
): string {
  const more = [t.speaker, t.language].filter(Boolean);
  return more.length ? `${TRACK_LABELS[t.track]} (${more.join(", ")})` : TRACK_LABELS[t.track];
}

/** One recognized word, with times in ms from the start of its track's audio. */
export interface Word {
  text: string;
  startMs: number;
  endMs: number;
  confidence?: number;
}

/** A partial (still changing) or final (settled) piece of one track's transcript. */
export interface Transcript {
  type: "partial" | "final";
  track: Track;
  text: string;
  startMs: number;
  endMs: number;
  words: Word[];
  /** Which engine produced it, when an engine combines several (hybrid, an engine per track). */
  engine?: string;
  /**
   * Who said it within its track, when the engine labels speakers (AssemblyAI's
   * `speaker_labels`: `A`, `B`, …; a transfer or an IVR then an agent on one track).
   */
  speaker?: string;
  /** The language detected, when the engine detects it (AssemblyAI's `language_code`, e.g. `es`). */
  language?: string;
}

/** Receives what a track transcriber recognizes, and any fault it hits. */
export interface TranscriptSink {
  onTranscript(transcript: Transcript): void;
  /** A fault worth reporting; the call goes on. */
  onError?(error: Error): void;
}

/** What a call asks of its tracks' transcription, on top of the engine's settings. */
export interface TrackOptions {
  /** The call's own key terms (its stream's `keyterms` parameter), added to the engine's. */
  keyterms?: readonly string[];
}

/** Transcribes one track of one call. */
export interface TrackTranscriber {
  /** Feeds µ-law 8 kHz audio (any length; usually one 160-byte frame). */
  write(mulaw: Uint8Array): void;
  /** Ends the track: flushes the last words as a final, then releases resources. */
  close(): Promise<void>;
}

/** A loaded engine: opens one transcriber per track. */
export interface TranscriberEngine {
  /** Short name for logs and the store, e.g. `local` or `assemblyai`. */
  readonly name: string;
  /** Opens a track; an engine that wraps others passes `options` on to each. */
  open(track: Track, sink: TranscriptSink, options?: TrackOptions): TrackTranscriber;
  /**
   * Resolves once the engine has taken in the audio written so far, all but
   * a second or so per track: whoever sends recorded audio faster than real
   * time (the simulator's fast mode) awaits it between frames, so audio goes
   * as fast as the engine decodes and none is dropped. Required: an engine
   * that wraps others must wait for each of them (an engine that takes audio
   * as it comes resolves at once).
   */
  whenCaughtUp(): Promise<void>;
  /** Releases the engine (model, sockets) when the process is done with it. */
  dispose(): Promise<void>;
}
