/**
 * The hybrid engine (`TRANSCRIBER=hybrid`): every track goes to the local
 * engine and to AssemblyAI at once. Partials come from the local engine as
 * soon as it has them (U3 Pro sends partials only in pauses, so a live view of
 * it alone looks frozen while someone talks); each turn's final is
 * AssemblyAI's, timed by its word times, and replaces the local partials of
 * that turn. Local finals are held: a cloud final covering their words drops
 * them; if AssemblyAI is in trouble (failed, reconnecting, or behind) while
 * they wait, their uncovered words are emitted instead, marked `local`, so no
 * word is lost. Every final carries `engine`.
 *
 * @module
 */
import type { AssemblyAIEngine, AssemblyAITrack } from "./assemblyai.ts";
import type {
  Track,
  TrackOptions,
  TrackTranscriber,
  TranscriberEngine,
  Transcript,
  TranscriptSink,
  Word,
} from "./engine.ts";

/** How long a local final waits for AssemblyAI's, ms (wall clock). */
export const HOLD_MS = 4000;
/** AssemblyAI is "behind" when more than this much audio waits to be sent, ms. */
const LAG_TROUBLE_MS = 1000;

/** Local partials and cloud finals, with the local finals standing in when the cloud cannot. */
export class HybridEngine implements TranscriberEngine {
  readonly name = "hybrid";
  readonly local: TranscriberEngine;
  readonly cloud: AssemblyAIEngine;
  readonly holdMs: number;

  /** `local` stays owned by the caller (it may serve other tracks); `cloud` is disposed with this engine. */
  constructor(local: TranscriberEngine, cloud: AssemblyAIEngine, holdMs = HOLD_MS) {
    this.local = local;
    this.cloud = cloud;
    this.holdMs = holdMs;
  }

  open(track: Track, sink: TranscriptSink, options?: TrackOptions): TrackTranscriber {
    return new HybridTrack(this, track, sink, options);
  }

  /** Caught up once both the local engine and AssemblyAI are: each hears every track. */
  async whenCaughtUp(): Promise<void> {
    await Promise.all([this.local.whenCaughtUp(), this.cloud.whenCaughtUp()]);
  }

  async dispose(): Promise<void> {
    await this.cloud.dispose();
  }
}

const middle = (w: Word) => (w.startMs + w.endMs) / 2;

interface Held {
  final: Transcript;
  timer: ReturnType<typeof setTimeout>;
}

class HybridTrack implements TrackTranscriber {
  readonly #sink: TranscriptSink;
  readonly #holdMs: number;
  readonly #local: TrackTranscriber;
  readonly #cloud: AssemblyAITrack;
  /** Cloud finals so far, as [start, end] track ms: local words inside them are covered. */
  #cloudSpans: Array<[number, number]> = [];
  #cloudEndMs = 0;
  /** Local words up to here were emitted as stand-ins: later cloud words there are dropped. */
  #localEndMs = 0;
  #held = new Set<Held>();
  #cloudFailed = false;
  /** Track ms of the latest audio written while AssemblyAI was in trouble (−∞: never). */
  #troubleAtMs = -Infinity;
  #writtenMs = 0;
  #closing: Promise<void> | null = null;

  constructor(engine: HybridEngine, track: Track, sink: TranscriptSink, options?: TrackOptions) {
    this.#sink = sink;
    this.#holdMs = engine.holdMs;
    this.#local = engine.local.open(track, {
      onTranscript: (t) => this.#onLocal(t),
      onError: (e) => sink.onError?.(e),
    }, options);
    this.#cloud = engine.cloud.open(track, {
      onTranscript: (t) => this.#onCloud(t),
      onError: (e) => {
        this.#cloudFailed = true;
        sink.onError?.(e);
        for (const held of [...this.#held]) this.#release(held);
      },
    }, options);
  }

  write(mulaw: Uint8Array): void {
    this.#writtenMs += mulaw.length / 8;
    this.#local.write(mulaw);
    try {
      this.#cloud.write(mulaw);
    } catch (error) {
      // The local engine goes on: its finals stand in.
      this.#cloudFailed = true;
      this.#sink.onError?.(error as Error);
    }
    if (
      this.#cloudFailed || this.#cloud.lagMs > LAG_TROUBLE_MS || this.#cloud.catchUpSessions > 0
    ) {
      this.#troubleAtMs = this.#writtenMs;
    }
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.allSettled([this.#local.close(), this.#cloud.close()]);
      // AssemblyAI's last turns never came (no Termination): what it did not cover stands in.
      if (!this.#cloud.endedCleanly) this.#troubleAtMs = Infinity;
      for (const held of [...this.#held]) this.#release(held);
    })();
    return this.#closing;
  }

  #onLocal(t: Transcript): void {
    if (t.type === "partial") {
      // Words an AssemblyAI final has already settled are not shown again.
      const words = t.words.filter((w) => middle(w) > this.#cloudEndMs);
      if (words.length > 0) this.#sink.onTranscript(this.#withWords(t, words, "local"));
      return;
    }
    if (this.#uncovered(t).length === 0) return;
    const held: Held = { final: t, timer: setTimeout(() => this.#release(held), this.#holdMs) };
    this.#held.add(held);
    if (this.#cloudFailed) this.#release(held);
  }

  #onCloud(t: Transcript): void {
    if (t.type === "partial") return; // The local engine's partials are sooner.
    const words = t.words.filter((w) => middle(w) > this.#localEndMs);
    this.#cloudSpans.push([t.startMs, t.endMs]);
    this.#cloudEndMs = Math.max(this.#cloudEndMs, t.endMs);
    for (const held of [...this.#held]) {
      if (this.#uncovered(held.final).length === 0) this.#drop(held);
    }
    if (words.length > 0) this.#sink.onTranscript(this.#withWords(t, words, "assemblyai"));
  }

  /** A held local final's wait is over: its uncovered words stand in if AssemblyAI was in trouble. */
  #release(held: Held): void {
    this.#drop(held);
    const t = held.final;
    const trouble = this.#cloudFailed || this.#troubleAtMs >= t.startMs - LAG_TROUBLE_MS;
    const words = this.#uncovered(t);
    if (!trouble || words.length === 0) return;
    this.#localEndMs = Math.max(this.#localEndMs, words.at(-1)!.endMs);
    this.#sink.onTranscript(this.#withWords(t, words, "local"));
  }

  #drop(held: Held): void {
    clearTimeout(held.timer);
    this.#held.delete(held);
  }

  /** Words of a local final no cloud final has covered. */
  #uncovered(t: Transcript): Word[] {
    return t.words.filter((w) => {
      const m = middle(w);
      return !this.#cloudSpans.some(([start, end]) => m >= start && m <= end);
    });
  }

  #withWords(t: Transcript, words: Word[], engine: string): Transcript {
    const text = words.length === t.words.length ? t.text : words.map((w) => w.text).join(" ");
    return {
      ...t,
      text,
      startMs: words[0].startMs,
      endMs: words.at(-1)!.endMs,
      words,
      engine,
    };
  }
}
