/**
 * Decoding for the local engine on the current thread: sherpa-onnx streaming
 * transducer, embedded through `sherpa-onnx-node` (Node-API, needs
 * `--allow-ffi`). {@link LocalEngine} runs one of these per decoder worker.
 *
 * The decoder keeps the recognizers (`recognizer.ts`: one holds the model),
 * each with its decode queue (`decode_queue.ts`), and opens a track
 * (`local_track.ts`) per call side with its voice detector.
 *
 * @module
 */
import type {
  Track,
  TrackOptions,
  TrackTranscriber,
  TranscriberEngine,
  TranscriptSink,
} from "./engine.ts";
import type { ModelFiles } from "../model/model_files.ts";
import { inspectOnnxModel } from "./onnx_model.ts";
import { DecodeQueue } from "./decode_queue.ts";
import { LOCAL_DEFAULTS, type LocalEngineOptions } from "./local_engine_options.ts";
import { LocalTrack } from "./local_track.ts";
import { createRecognizer, MODEL_RATE } from "./recognizer.ts";
import { createVoiceDetector } from "./create_voice_detector.ts";
import { GatedVoiceDetector } from "./gated_voice_detector.ts";
import type { VoiceDetector } from "./voice_detector.ts";

/** Voice detectors each decoder loads at start-up (a Silero one: ~3 MB); more are made as tracks need them. */
const DETECTORS_AT_START = 8;
/**
 * The encoder's chunk in 10 ms feature frames when its file does not say
 * (`decode_chunk_len`; 320 ms in the k2-fsa streaming zipformers).
 */
const DEFAULT_CHUNK_FRAMES = 32;

/** A recognizer (one copy of the model, one key-term list) and its tracks' decode queue. */
interface RecognizerEntry {
  // deno-lint-ignore no-explicit-any
  recognizer: any;
  queue: DecodeQueue;
  /** Open tracks decoding with it: a call's own list is freed with its last track. */
  tracks: number;
  /** Its key terms, sorted, one per line (its key in the decoder's map). */
  key: string;
}

const listKey = (terms: readonly string[]) => [...terms].sort().join("\n");

/**
 * Decodes on the thread it was created on; loads the model once, open() is
 * cheap, except for a call with key terms of its own: sherpa-onnx 1.13.8
 * takes an online stream's hotwords only from its recognizer, so such a
 * call's tracks get a recognizer of their own (a second copy of the model,
 * loaded when its first track opens, freed when its last closes).
 */
export class LocalDecoder implements TranscriberEngine {
  readonly name = "local";
  readonly model: ModelFiles;
  readonly options: LocalEngineOptions;
  /** By key-term list (sorted, one per line); the engine's own under its list. */
  readonly #recognizers = new Map<string, RecognizerEntry>();
  readonly #default: RecognizerEntry;
  readonly #takesBatch: boolean;
  /** Chunks decoded by recognizers already freed. */
  #chunksFreed = 0;
  /** Silence not fed to the model goes in steps of this many 20 ms frames (whole chunks). */
  readonly #skipFrames: number;
  /** Detectors of closed tracks, reset for the next (a Silero one loads its own copy of the model). */
  readonly #idleDetectors: VoiceDetector[] = [];

  constructor(model: ModelFiles, options: Partial<LocalEngineOptions> = {}) {
    this.model = model;
    this.options = { ...LOCAL_DEFAULTS, ...options };
    const encoder = inspectOnnxModel(model.encoder);
    this.#takesBatch = encoder.takesBatch;
    const recognizer = createRecognizer(model, this.options);
    const key = listKey(this.options.keyterms);
    this.#default = {
      recognizer,
      queue: new DecodeQueue(recognizer, this.#takesBatch),
      tracks: 0,
      key,
    };
    this.#recognizers.set(key, this.#default);
    const chunkFrames = encoder.chunkFrames ?? DEFAULT_CHUNK_FRAMES;
    // Silence is skipped a whole chunk at a time, so the model's chunks fall where they would
    // have on all of the audio: moving them moved a set's errors by several words either way.
    this.#skipFrames = chunkFrames % 2 ? chunkFrames : chunkFrames / 2;
    // Loading a Silero detector takes 30–250 ms (ONNX Runtime's session set-up), which would hold
    // up every track of this thread when a call comes in: load a few now, at start-up.
    if (this.options.vadSilenceMs > 0) {
      for (let i = 0; i < DETECTORS_AT_START; i++) this.#idleDetectors.push(this.#newDetector());
    }
  }

  /**
   * A voice detector for a track: the energy detector reads the call's 8 kHz;
   * Silero runs at 16 kHz, which the model has, and only while the line is
   * loud (it costs about as much CPU as the model's decoding).
   */
  #newDetector(): VoiceDetector {
    const { vad, vadSilenceMs, vadThreshold } = this.options;
    if (vad === "energy") {
      return createVoiceDetector({
        kind: vad,
        sampleRate: 8000,
        minSilenceMs: vadSilenceMs,
        threshold: vadThreshold,
      });
    }
    return new GatedVoiceDetector(createVoiceDetector({
      kind: vad,
      sampleRate: MODEL_RATE,
      minSilenceMs: vadSilenceMs,
      threshold: vadThreshold,
    }));
  }

  /**
   * The recognizer for the engine's key terms plus `extra`; a list the model
   * cannot spell is reported on `sink` and the track decodes with the engine's.
   */
  #recognizerFor(extra: readonly string[], sink: TranscriptSink): RecognizerEntry {
    const terms = [...new Set([...this.options.keyterms, ...extra])];
    const key = listKey(terms);
    let entry = this.#recognizers.get(key);
    if (!entry) {
      try {
        const recognizer = createRecognizer(this.model, { ...this.options, keyterms: terms });
        const queue = new DecodeQueue(recognizer, this.#takesBatch);
        entry = { recognizer, queue, tracks: 0, key };
        this.#recognizers.set(key, entry);
      } catch (error) {
        const message = `${(error as Error).message} This call's key terms are not used.`;
        queueMicrotask(() => sink.onError?.(new Error(message)));
        return this.#default;
      }
    }
    return entry;
  }

  open(track: Track, sink: TranscriptSink, trackOptions?: TrackOptions): TrackTranscriber {
    const entry = trackOptions?.keyterms?.length
      ? this.#recognizerFor(trackOptions.keyterms, sink)
      : this.#default;
    entry.tracks++;
    const done = () => {
      if (--entry.tracks > 0 || entry === this.#default) return;
      this.#chunksFreed += entry.queue.chunksDecoded;
      this.#recognizers.delete(entry.key);
    };
    const vad = this.options.vadSilenceMs > 0
      ? this.#idleDetectors.pop() ?? this.#newDetector()
      : null;
    return new LocalTrack(entry.recognizer, track, sink, {
      options: this.options,
      queue: entry.queue,
      vad,
      release: () => {
        if (vad) {
          vad.reset();
          this.#idleDetectors.push(vad);
        }
        done();
      },
      skipFrames: this.#skipFrames,
    });
  }

  /**
   * Model chunks decoded so far, over every track: the engine's work (with a
   * voice detector, silence between utterances is not decoded).
   */
  get chunksDecoded(): number {
    let chunks = this.#chunksFreed;
    for (const entry of this.#recognizers.values()) chunks += entry.queue.chunksDecoded;
    return chunks;
  }

  /** Audio is decoded on this thread as it is written (in a microtask): always caught up. */
  whenCaughtUp(): Promise<void> {
    return Promise.resolve();
  }

  dispose(): Promise<void> {
    for (const entry of this.#recognizers.values()) entry.queue.cancel();
    return Promise.resolve();
  }
}
