/**
 * One call: its tracks, each aligned to the call's clock and fed to its own
 * transcriber. A session owns everything of its call, so one call's failure
 * never touches another.
 *
 * @module
 */
import { TrackTimeline } from "../audio/timeline.ts";
import { fillSilence } from "../audio/timeline.ts";
import type {
  Track,
  TrackOptions,
  TrackTranscriber,
  TranscriberEngine,
  Transcript,
} from "../transcribe/engine.ts";
import type { CallInfo, CallListener } from "./events.ts";
import type { CallAudioSummary, LaptopInput } from "../recording/call_audio_summary.ts";
import type { RedactPolicy } from "../redact/policies.ts";
import { TrackRedactor } from "../redact/track_redactor.ts";

/** Hears a call's audio as placed on its timeline (the recording and its quality figures). */
export interface CallAudioSink {
  /** `silenceBytes` of gap filled before `payload`, for one track; called per frame, so cheap. */
  write(track: Track, silenceBytes: number, payload: Uint8Array): void;
  /** The call ended: finish up and summarize. */
  end(): Promise<CallAudioSummary>;
  /** Silences `[startMs, endMs)` of a track (redacted words), also audio already written. */
  silence?(track: Track, startMs: number, endMs: number): void;
}

/**
 * Audio silenced around redacted words in the recording, in ms: an engine
 * dates words from their tokens, which may fall a quarter second inside the
 * word at either end (measured on the test calls: 230 ms after the onset of
 * the first, about 200 ms before the end of the last).
 */
export const REDACT_MARGIN_MS = { before: 400, after: 400 };

/** Options of a session. */
export interface CallSessionOptions {
  flushTimeoutMs?: number;
  /** Makes the call's audio sink (recording, quality), if any. */
  audio?: (info: CallInfo) => CallAudioSink;
  /** `REDACT`: the policies every transcript is redacted with before it is emitted. */
  redact?: readonly RedactPolicy[];
}

interface TrackState {
  timeline: TrackTimeline;
  transcriber: TrackTranscriber;
  /** Holds and redacts the track's transcripts (when redaction is on). */
  redactor: TrackRedactor | null;
  /** Writes the transcriber threw on (reported once; the call goes on). */
  writeErrors: number;
}

/**
 * How long ending a call waits for each track's last words. Generous: a cloud
 * engine may still be replaying buffered audio in real time. A transcriber
 * that never finishes must not keep the call (or a shutdown) open forever.
 */
export const FLUSH_TIMEOUT_MS = 90_000;

/** Gap silence is fed in pieces of this many bytes (8 s). */
const SILENCE_PIECE = 64_000;

/** A transcriber that could not be opened: the track is not transcribed, the call goes on. */
const NO_TRANSCRIBER: TrackTranscriber = { write() {}, close: () => Promise.resolve() };

/** A live call: feed it media, end it once, and it reports through its listener. */
export class CallSession {
  readonly info: CallInfo;
  #engine: TranscriberEngine;
  #emit: CallListener;
  #tracks = new Map<Track, TrackState>();
  #ended: Promise<void> | null = null;
  /** Stream SIDs attached to this call (transcription and laptop legs). */
  readonly streams = new Set<string>();
  /** What the call asks of its tracks (its stream's `keyterms`), set before they open. */
  trackOptions: TrackOptions = {};
  /** What its laptop leg sent, set when that leg's stream starts (null: no laptop leg). */
  laptopInput: LaptopInput | null = null;

  #flushTimeoutMs: number;
  #audio: CallAudioSink | null;
  #redact: readonly RedactPolicy[];

  constructor(
    info: CallInfo,
    engine: TranscriberEngine,
    emit: CallListener,
    options: CallSessionOptions = {},
  ) {
    this.info = info;
    this.#engine = engine;
    this.#emit = emit;
    this.#flushTimeoutMs = options.flushTimeoutMs ?? FLUSH_TIMEOUT_MS;
    this.#audio = options.audio?.(info) ?? null;
    this.#redact = options.redact ?? [];
    emit({ type: "call-started", call: info, at: Date.now() });
  }

  /** True once the call has ended (or is ending). */
  get ended(): boolean {
    return this.#ended !== null;
  }

  /** Opens a transcriber for a track; done when the transcription stream starts. */
  openTrack(track: Track): void {
    if (this.#tracks.has(track) || this.ended) return;
    let transcriber = NO_TRANSCRIBER;
    const sink = {
      onTranscript: (transcript: Transcript) =>
        this.#emit({ type: "transcript", call: this.info, transcript }),
      onError: (error: Error) =>
        this.#emit({ type: "call-error", call: this.info, message: error.message }),
    };
    // Redaction sits right at the engine's output: no listener ever sees an unredacted word.
    const redactor = this.#redact.length
      ? new TrackRedactor(sink, {
        policies: this.#redact,
        caughtUp: () => this.#engine.whenCaughtUp(),
        marginMs: REDACT_MARGIN_MS.after,
        onRedacted: ({ startMs, endMs }) =>
          this.#audio?.silence?.(
            track,
            Math.max(0, startMs - REDACT_MARGIN_MS.before),
            endMs + REDACT_MARGIN_MS.after,
          ),
      })
      : null;
    try {
      transcriber = this.#engine.open(track, redactor ?? sink, this.trackOptions);
    } catch (error) {
      this.#error(`the ${track} track cannot be transcribed: ${(error as Error).message}`);
    }
    this.#tracks.set(track, {
      timeline: new TrackTimeline(),
      transcriber,
      redactor,
      writeErrors: 0,
    });
  }

  /** Feeds one media payload placed at `timestampMs` of its track. */
  media(track: Track, timestampMs: number, payload: Uint8Array): void {
    if (this.ended) return;
    if (!this.#tracks.has(track)) this.openTrack(track);
    const state = this.#tracks.get(track)!;
    const { silenceBytes } = state.timeline.place(timestampMs, payload);
    this.#audio?.write(track, silenceBytes, payload);
    // In pieces of the shared silence buffer: a long gap never allocates its whole length.
    for (let left = silenceBytes; left > 0; left -= SILENCE_PIECE) {
      this.#write(track, state, fillSilence(Math.min(left, SILENCE_PIECE)));
    }
    this.#write(track, state, payload);
  }

  /** An engine that throws must not end the call (or close Twilio's stream): report it once. */
  #write(track: Track, state: TrackState, bytes: Uint8Array): void {
    try {
      state.transcriber.write(bytes);
    } catch (error) {
      if (state.writeErrors++ === 0) {
        this.#error(
          `the ${track} transcriber failed: ${(error as Error).message}; the call goes on`,
        );
      }
    }
  }

  #error(message: string): void {
    this.#emit({ type: "call-error", call: this.info, message });
  }

  /**
   * Ends the call once: every transcriber flushes its last words, then
   * `call-ended` is emitted. Later calls return the same promise.
   */
  end(reason: string): Promise<void> {
    this.#ended ??= (async () => {
      const closing = [...this.#tracks].map(([track, t]) =>
        this.#close(track, t.transcriber).finally(() => t.redactor?.flush())
      );
      // With redaction, the recording closes after the last finals: their words are silenced.
      const closed = this.#redact.length ? Promise.allSettled(closing) : Promise.resolve();
      const audio = closed.then(() => this.#audio?.end()).catch((error) => {
        this.#error(`finishing the call's audio failed: ${(error as Error).message}`);
        return undefined;
      });
      const results = await Promise.allSettled(closing);
      for (const result of results) {
        if (result.status === "rejected") {
          this.#error(`flushing a track failed: ${(result.reason as Error)?.message}`);
        }
      }
      const at = Date.now();
      const summary = await audio;
      this.#emit({
        type: "call-ended",
        call: this.info,
        at,
        reason,
        audio: summary && { ...summary, laptopInput: this.laptopInput },
      });
    })();
    return this.#ended;
  }

  /** Closes a transcriber, giving up (reported) after the flush timeout. */
  async #close(track: Track, transcriber: TrackTranscriber): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), this.#flushTimeoutMs);
    });
    try {
      const outcome = await Promise.race([
        Promise.resolve().then(() => transcriber.close()),
        timeout,
      ]);
      if (outcome === "timeout") {
        this.#error(
          `the ${track} transcriber did not finish within ${this.#flushTimeoutMs} ms; ` +
            "ending the call without its last words",
        );
      }
    } finally {
      clearTimeout(timer);
    }
  }
}
