/**
 * Decoding for the local engine on the current thread: sherpa-onnx streaming
 * transducer, embedded through `sherpa-onnx-node` (Node-API, needs
 * `--allow-ffi`). {@link LocalEngine} runs one of these per decoder worker.
 *
 * One recognizer holds the model; each track gets its own stream. µ-law is
 * decoded to float at 8 kHz and upsampled to the model's 16 kHz.
 *
 * @module
 */
import sherpa from "sherpa-onnx-node";
import { ByteBatcher, FRAME_BYTES } from "../audio/framing.ts";
import { mulawToFloat32 } from "../audio/mulaw.ts";
import { Upsampler2x } from "../audio/upsample.ts";
import type {
  Track,
  TrackOptions,
  TrackTranscriber,
  TranscriberEngine,
  Transcript,
  TranscriptSink,
  Word,
} from "./engine.ts";
import type { ModelFiles } from "../model/model_files.ts";
import { UserError } from "../user_error.ts";
import { inspectOnnxModel } from "./onnx_model.ts";
import { readTokens, spellKeyterms } from "./keyterms.ts";
import type { SpeechDetector, SpeechEvent } from "./speech_detector.ts";
import { createVoiceDetector, type VoiceDetector } from "./voice_detector.ts";
import type { VoiceDetectorKind } from "./voice_detector_kind.ts";

/** Endpointing and decoding options of the local engine. */
export interface LocalEngineOptions {
  /** Seconds of trailing silence that end an utterance with no words (rule 1). */
  rule1MinTrailingSilence: number;
  /** Seconds of trailing silence that end an utterance after words (rule 2). */
  rule2MinTrailingSilence: number;
  /** Longest utterance in seconds before it is cut (rule 3). */
  rule3MinUtteranceLength: number;
  /** Inference threads of each recognizer. */
  numThreads: number;
  /**
   * Decoder workers, each a thread with its own copy of the model; a call's
   * tracks are spread over them. 0 decodes on the server's own thread.
   */
  workers: number;
  /**
   * How far a worker may fall behind real time, in seconds of audio per open
   * track, before new audio for its tracks is dropped (bounds memory when the
   * machine cannot keep up).
   */
  maxLagSeconds: number;
  /**
   * How late the model emits a token after the word starts, in ms; subtracted
   * from token times so `[start - end]` matches the audio.
   */
  tokenDelayMs: number;
  /**
   * The voice detector that hears the end of speech: `energy` (free; on a
   * noisy line it hears no end and the endpoint rules decide) or `silero`
   * (tells speech from noise, costs about as much CPU as this small model).
   */
  vad: VoiceDetectorKind;
  /**
   * Silence in ms after which the voice detector ends an utterance: the
   * stream is flushed (tail padding, so the model's look-ahead emits the last
   * words) and the final emitted at once. 0 leaves finals to the endpoint
   * rules, which stay the fallback either way. Lower: sooner finals, and more
   * sentences cut in two at a pause.
   */
  vadSilenceMs: number;
  /** Silero's speech probability threshold (0–1). */
  vadThreshold: number;
  /**
   * Words and phrases to bias decoding towards (`KEYTERMS`): with any, the
   * decoder runs `modified_beam_search` with them as hotwords; without,
   * `greedy_search` (cheaper).
   */
  keyterms: string[];
  /** How much a key term's tokens are boosted, per token (`KEYTERMS_SCORE`). */
  keytermsScore: number;
}

/** Defaults measured on the shared test speech (README, "Live latency and the engine's cost"). */
export const LOCAL_DEFAULTS: LocalEngineOptions = {
  rule1MinTrailingSilence: 2.4,
  rule2MinTrailingSilence: 0.8,
  rule3MinUtteranceLength: 20,
  numThreads: 1,
  workers: Math.max(1, navigator.hardwareConcurrency ?? 1),
  maxLagSeconds: 60,
  tokenDelayMs: 200,
  vad: "energy",
  vadSilenceMs: 320,
  vadThreshold: 0.5,
  keyterms: [],
  keytermsScore: 1.5,
};
/** Paths kept per beam with key terms (sherpa-onnx's default). */
const KEYTERM_ACTIVE_PATHS = 4;

/** The rate the models' features are computed at. */
const MODEL_RATE = 16000;
/** Silence fed after the last audio so the model emits its last tokens. */
const TAIL_SECONDS = 0.6;
/**
 * Silence fed at the voice detector's end of speech, so the model's chunk
 * (320 ms) and look-ahead cover the last word and it is emitted now. Over
 * every set at three chunk alignments: 0.4–0.5 s lost last words; 0.6 s
 * made the fewest errors (0.8 and 1.0 s no fewer, and cost more decoding).
 */
const FLUSH_SAMPLES = Math.round(MODEL_RATE * 0.6);
/**
 * Silero runs only from a 20 ms frame louder than this (RMS, about −50
 * dBFS: below any speech, above a quiet line's noise) until it has ended that
 * speech, or seen none for {@link VAD_IDLE_MS}: Silero costs about as much
 * as this small model's decoding, and a track is silent much of a call.
 */
const VAD_GATE_RMS = 0.003;
const VAD_IDLE_MS = 1000;
/** Silero detectors each decoder loads at start-up (~3 MB each); more are loaded as tracks need them. */
const DETECTORS_AT_START = 8;
/**
 * With a voice detector, the model is fed only from a little before speech
 * starts until the detector ends it: the silence between utterances (half a
 * call or more, while the other side talks) is not decoded. The detector
 * says "speech" after 100 ms of loud frames, and words start softly, so at
 * least this many 20 ms frames heard before are fed first: with 500–800 ms
 * (this, and up to a chunk more) the shared sets' WER stays within half a
 * point of decoding everything; 200–520 ms lost 1.4 points on two of them.
 */
const PRE_ROLL_FRAMES = 25;
/**
 * The encoder's chunk in 10 ms feature frames when its file does not say
 * (`decode_chunk_len`; 320 ms in the k2-fsa streaming zipformers).
 */
const DEFAULT_CHUNK_FRAMES = 32;
/** A final of at most this many words gets a new stream after it (see `#flushUtterance`). */
const NEW_STREAM_MAX_WORDS = 4;
/** Assumed length of a word's last token, in ms, for the word's end time. */
const LAST_TOKEN_MS = 160;
interface SherpaResult {
  text: string;
  tokens: string[];
  timestamps: number[];
  ys_probs?: number[];
  start_time: number;
}

/** The sherpa-onnx recognizer of a model with these options (one per decoder: it holds the model). */
// deno-lint-ignore no-explicit-any
export function createRecognizer(model: ModelFiles, options: LocalEngineOptions): any {
  const hotwords = keytermSettings(model, options.keyterms);
  const config = {
    featConfig: { sampleRate: MODEL_RATE, featureDim: 80 },
    modelConfig: {
      transducer: { encoder: model.encoder, decoder: model.decoder, joiner: model.joiner },
      tokens: model.tokens,
      numThreads: options.numThreads,
      provider: "cpu",
      debug: 0,
      ...(hotwords && { modelingUnit: "bpe", bpeVocab: hotwords.vocab }),
    },
    decodingMethod: hotwords ? "modified_beam_search" : "greedy_search",
    ...(hotwords && {
      maxActivePaths: KEYTERM_ACTIVE_PATHS,
      hotwordsBuf: hotwords.text,
      hotwordsBufSize: new TextEncoder().encode(hotwords.text).length,
      hotwordsScore: options.keytermsScore,
    }),
    enableEndpoint: true,
    rule1MinTrailingSilence: options.rule1MinTrailingSilence,
    rule2MinTrailingSilence: options.rule2MinTrailingSilence,
    rule3MinUtteranceLength: options.rule3MinUtteranceLength,
  };
  try {
    return new sherpa.OnlineRecognizer(config);
  } catch (error) {
    // sherpa-onnx prints its reason on stderr and throws only "Please check your config!".
    throw new UserError(
      `could not load the speech model (encoder ${model.encoder}, tokens ${model.tokens}): ` +
        `${(error as Error).message} See sherpa-onnx's reason above; check SHERPA_MODEL_DIR ` +
        `and the SHERPA_ENCODER/DECODER/JOINER/TOKENS paths.`,
    );
  } finally {
    if (hotwords) Deno.removeSync(hotwords.vocab);
  }
}

/**
 * The hotwords of `keyterms` (one per line, in the model's case), and a
 * BPE vocabulary for sherpa-onnx to spell them with: a temporary file it
 * reads while the recognizer is created. The model ships `tokens.txt` only;
 * its pieces in id order are SentencePiece's BPE merges in order, so each
 * piece's score is minus its id, as in an exported `bpe.vocab`.
 */
function keytermSettings(
  model: ModelFiles,
  keyterms: readonly string[],
): { text: string; vocab: string } | undefined {
  if (keyterms.length === 0) return undefined;
  const tokens = readTokens(Deno.readTextFileSync(model.tokens));
  const spelled = spellKeyterms(tokens, keyterms);
  const vocab = Deno.makeTempFileSync({ prefix: "callscribe-bpe-", suffix: ".vocab" });
  Deno.writeTextFileSync(vocab, tokens.map((piece, id) => `${piece}\t${-id}\n`).join(""));
  return {
    text: spelled.map((pieces) => pieces.join("").slice(1).replaceAll("▁", " ")).join("\n"),
    vocab,
  };
}

/** A recognizer (one copy of the model, one key-term list) and its tracks' decode queue. */
interface Recognizer {
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
  readonly #recognizers = new Map<string, Recognizer>();
  readonly #default: Recognizer;
  readonly #takesBatch: boolean;
  /** Chunks decoded by recognizers already freed. */
  #chunksFreed = 0;
  /** Silence not fed to the model goes in steps of this many 20 ms frames (whole chunks). */
  readonly #skipFrames: number;
  /** Detectors of closed tracks, reset for the next (each loads its own copy of Silero). */
  readonly #idleDetectors: SpeechDetector[] = [];

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
    if (this.options.vadSilenceMs > 0 && this.options.vad === "silero") {
      for (let i = 0; i < DETECTORS_AT_START; i++) {
        this.#idleDetectors.push(this.#newDetector() as SpeechDetector);
      }
    }
  }

  #newDetector(): VoiceDetector {
    const { vad, vadSilenceMs, vadThreshold } = this.options;
    return createVoiceDetector({
      kind: vad,
      // The energy detector reads the call's 8 kHz; Silero runs at 16 kHz, which the model has.
      sampleRate: vad === "energy" ? 8000 : MODEL_RATE,
      minSilenceMs: vadSilenceMs,
      threshold: vadThreshold,
    });
  }

  /**
   * The recognizer for the engine's key terms plus `extra`; a list the model
   * cannot spell is reported on `sink` and the track decodes with the engine's.
   */
  #recognizerFor(extra: readonly string[], sink: TranscriptSink): Recognizer {
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
    let vad: VoiceDetector | null = null;
    let release = () => {};
    if (this.options.vadSilenceMs > 0 && this.options.vad === "energy") {
      vad = this.#newDetector();
    } else if (this.options.vadSilenceMs > 0) {
      const silero = this.#idleDetectors.pop() ?? this.#newDetector() as SpeechDetector;
      vad = silero;
      release = () => {
        silero.reset();
        this.#idleDetectors.push(silero);
      };
    }
    return new LocalTrack(entry.recognizer, track, sink, {
      options: this.options,
      queue: entry.queue,
      vad,
      release: () => {
        release();
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

/**
 * Tracks with a model chunk ready, decoded together once the audio that came
 * in one go (a worker's hand-off carries every track's last 20 ms) is in:
 * back to back, the model's weights stay in the CPU caches, and where the
 * encoder takes a batch, in one `decodeStreams` call. Nothing waits for a
 * timer, so no word comes later for it.
 */
class DecodeQueue {
  // deno-lint-ignore no-explicit-any
  readonly #recognizer: any;
  /** The encoder takes several streams at once (read from the model file at start-up). */
  readonly #batch: boolean;
  /** Model chunks decoded so far, over every stream. */
  chunksDecoded = 0;
  #ready = new Set<LocalTrack>();
  #scheduled = false;
  #cancelled = false;

  // deno-lint-ignore no-explicit-any
  constructor(recognizer: any, batch: boolean) {
    this.#recognizer = recognizer;
    this.#batch = batch;
  }

  add(track: LocalTrack): void {
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
  take(track: LocalTrack): boolean {
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

class LocalTrack implements TrackTranscriber {
  // deno-lint-ignore no-explicit-any
  #recognizer: any;
  // deno-lint-ignore no-explicit-any
  #stream: any;
  #track: Track;
  #sink: TranscriptSink;
  #options: LocalEngineOptions;
  /** Audio goes to the model (and the VAD) frame by frame: 100 ms batches made words 140 ms later. */
  #batcher = new ByteBatcher(FRAME_BYTES);
  #samples = new Float32Array(FRAME_BYTES);
  #upsampler = new Upsampler2x();
  #queue: DecodeQueue;
  /** The voice detector on this track's audio; null with `vadSilenceMs: 0`. */
  #vad: VoiceDetector | null;
  #release: () => void;
  /** Silero is listening (see {@link VAD_GATE_RMS}), and for how long it has heard no speech. */
  #vadOn = false;
  #vadIdleMs = 0;
  /**
   * The stream's clock against the track's, in ms: flush padding fed (not in
   * the track) minus silence skipped (not in the stream).
   */
  #streamAheadMs = 0;
  /** Audio fed to the current stream, in ms of its clock (its results' times count from it). */
  #streamFedMs = 0;
  /** The model is being fed: speech is on, or the track has no voice detector. */
  #feeding: boolean;
  /** The last frames heard while not feeding (16 kHz), fed first when speech starts. */
  #preRoll: Float32Array[] = [];
  #skipFrames: number;
  #lastPartial = "";
  /** Words of the last final emitted (0 once a new stream followed it). */
  #lastFinalWords = 0;
  #failed = false;
  #closed = false;

  constructor(
    // deno-lint-ignore no-explicit-any
    recognizer: any,
    track: Track,
    sink: TranscriptSink,
    parts: {
      options: LocalEngineOptions;
      queue: DecodeQueue;
      vad: VoiceDetector | null;
      release: () => void;
      skipFrames: number;
    },
  ) {
    this.#recognizer = recognizer;
    this.#stream = recognizer.createStream();
    this.#track = track;
    this.#sink = sink;
    this.#options = parts.options;
    this.#queue = parts.queue;
    this.#vad = parts.vad;
    this.#feeding = parts.vad === null;
    this.#release = parts.release;
    this.#skipFrames = parts.skipFrames;
  }

  // deno-lint-ignore no-explicit-any
  get stream(): any {
    return this.#stream;
  }

  write(mulaw: Uint8Array): void {
    if (this.#failed || this.#closed) return;
    this.#batcher.push(mulaw, (batch) => {
      if (this.#failed) return;
      // A chunk still waiting is decoded before more audio goes in, so endpoints are checked
      // chunk by chunk however fast audio arrives.
      if (this.#queue.take(this)) this.decodeReady();
      const speechEnded = this.#accept(batch);
      if (this.#failed) return;
      if (speechEnded) return this.#flushUtterance();
      this.#guard(() => {
        if (this.#recognizer.isReady(this.#stream)) this.#queue.add(this);
      });
    });
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#queue.take(this)) this.decodeReady();
    if (!this.#failed) {
      this.#guard(() => {
        this.#accept(this.#batcher.drain());
        if (!this.#feeding) return;
        this.#feed(new Float32Array(Math.round(MODEL_RATE * TAIL_SECONDS)));
        this.#stream.inputFinished();
        this.#queue.decodeAll(this.#stream);
        this.#emitFinal();
      });
    }
    this.#closed = true;
    this.#stream = null;
    this.#vad = null;
    this.#release();
    return Promise.resolve();
  }

  /**
   * Hands a batch of audio (decoded from µ-law and upsampled) to the VAD and,
   * while it hears speech, to the model; true when the VAD saw the end of
   * speech.
   */
  #accept(mulaw: Uint8Array): boolean {
    if (mulaw.length === 0) return false;
    const samples = mulawToFloat32(mulaw, this.#samples.subarray(0, mulaw.length));
    let ended = false;
    this.#guard(() => {
      const pcm = this.#upsampler.process(samples);
      if (this.#vad) ended = this.#listen(this.#vad, samples, pcm);
      if (!this.#feeding && this.#vad?.speaking) {
        this.#feeding = true;
        for (const frame of this.#preRoll) this.#feed(frame);
        this.#preRoll = [];
      }
      if (this.#feeding) {
        this.#feed(pcm);
        return;
      }
      this.#preRoll.push(pcm);
      if (this.#preRoll.length >= PRE_ROLL_FRAMES + this.#skipFrames) {
        for (const frame of this.#preRoll.splice(0, this.#skipFrames)) {
          this.#streamAheadMs -= (frame.length / MODEL_RATE) * 1000;
        }
      }
    });
    return ended;
  }

  /**
   * Runs the voice detector on a batch (8 kHz `samples`, 16 kHz `pcm`);
   * true at the end of speech. Silero runs only while the gate is open.
   */
  #listen(vad: VoiceDetector, samples: Float32Array, pcm: Float32Array): boolean {
    if (this.#options.vad === "energy") return endsSpeech(vad.push(samples));
    const silero = vad as SpeechDetector;
    if (!this.#vadOn) {
      let sum = 0;
      for (const x of samples) sum += x * x;
      if (Math.sqrt(sum / samples.length) < VAD_GATE_RMS) return false;
      this.#vadOn = true;
      this.#vadIdleMs = 0;
    }
    const ended = endsSpeech(silero.push(pcm));
    this.#vadIdleMs = silero.speaking ? 0 : this.#vadIdleMs + (samples.length / 8);
    if (ended || this.#vadIdleMs >= VAD_IDLE_MS) {
      silero.reset();
      this.#vadOn = false;
    }
    return ended;
  }

  /** Hands 16 kHz samples to the model's stream. */
  #feed(samples: Float32Array): void {
    this.#stream.acceptWaveform({ samples, sampleRate: MODEL_RATE });
    this.#streamFedMs += (samples.length / MODEL_RATE) * 1000;
  }

  /**
   * The VAD's end of speech: padding makes the model emit the last words,
   * then the final. sherpa-onnx's `reset` keeps the last tokens as the
   * decoder's context, and this model then drops a word that repeats the
   * previous utterance's last one: a card read digit by digit, 4111 1111
   * 1111 1111, came out as "Four", "One" (15 ones lost). After a short final
   * (a digit, a group of them, a letter, a "yes"), where the next utterance
   * often says the same word again, the next one gets a new stream and all
   * 16 digits come out. Long utterances keep the context (and their chunks'
   * place): word times of the shared sets moved with a new stream after each
   * (one end by 310 ms against 230), though their errors did not grow.
   */
  #flushUtterance(): void {
    this.#guard(() => {
      this.#feed(new Float32Array(FLUSH_SAMPLES));
      this.#queue.decodeAll(this.#stream);
      this.#emitFinal();
      this.#streamAheadMs += (FLUSH_SAMPLES / MODEL_RATE) * 1000;
      // The last final may have come from the endpoint rules just before (their reset keeps the
      // context too): a new stream can only start here, where all audio fed has been decoded.
      if (this.#lastFinalWords > 0 && this.#lastFinalWords <= NEW_STREAM_MAX_WORDS) {
        this.#lastFinalWords = 0;
        // The new stream's clock starts where the old one's audio ended; what the old stream
        // has not decoded is padding.
        this.#streamAheadMs -= this.#streamFedMs;
        this.#streamFedMs = 0;
        this.#stream = this.#recognizer.createStream();
      } else this.#recognizer.reset(this.#stream);
      this.#feeding = false;
    });
  }

  /** Decodes every ready model chunk, then emits the final at an endpoint or a changed partial. */
  decodeReady(): void {
    if (this.#failed || this.#closed) return;
    this.#guard(() => {
      const recognizer = this.#recognizer;
      this.#queue.decodeAll(this.#stream);
      if (recognizer.isEndpoint(this.#stream)) {
        this.#emitFinal();
        recognizer.reset(this.#stream);
      } else {
        const result: SherpaResult = recognizer.getResult(this.#stream);
        if (result.text !== this.#lastPartial) {
          this.#lastPartial = result.text;
          if (result.text.trim()) this.#sink.onTranscript(this.#toTranscript("partial", result));
        }
      }
    });
  }

  #emitFinal(): void {
    const result: SherpaResult = this.#recognizer.getResult(this.#stream);
    this.#lastPartial = "";
    if (!result.text.trim()) return;
    const final = this.#toTranscript("final", result);
    this.#lastFinalWords = final.words.length;
    this.#sink.onTranscript(final);
  }

  /** Runs native work; an engine fault stops this track only and is reported once. */
  #guard(work: () => void): void {
    try {
      work();
    } catch (error) {
      this.#failed = true;
      this.#sink.onError?.(
        new Error(`local engine failed on the ${this.#track} track: ${(error as Error).message}`),
      );
    }
  }

  #toTranscript(type: Transcript["type"], result: SherpaResult): Transcript {
    const words = tokensToWords(result, this.#options.tokenDelayMs + this.#streamAheadMs);
    const text = sentenceCase(words.map((w) => w.text).join(" "));
    return {
      type,
      track: this.#track,
      text,
      startMs: words[0]?.startMs ?? 0,
      endMs: words.at(-1)?.endMs ?? 0,
      words,
    };
  }
}

/** True when the detector's events end a stretch of speech. */
function endsSpeech(events: SpeechEvent[]): boolean {
  return events.some((e) => e.type === "speech-end");
}

/**
 * Groups BPE tokens into words (a token starting with a space starts a word)
 * and turns token times (seconds from the segment start) into ms from the
 * start of the track.
 */
export function tokensToWords(result: SherpaResult, tokenDelayMs: number): Word[] {
  const words: Word[] = [];
  const base = result.start_time * 1000 - tokenDelayMs;
  let current: { text: string; first: number; last: number; logProb: number; n: number } | null =
    null;
  const finish = () => {
    if (!current || !current.text) return;
    words.push({
      text: current.text.toLowerCase(),
      startMs: Math.max(0, Math.round(base + current.first * 1000)),
      endMs: Math.max(0, Math.round(base + current.last * 1000 + LAST_TOKEN_MS)),
      confidence: Math.round(Math.exp(current.logProb / current.n) * 1000) / 1000,
    });
  };
  result.tokens.forEach((token, i) => {
    const time = result.timestamps[i] ?? 0;
    const logProb = result.ys_probs?.[i] ?? 0;
    if (current === null || token.startsWith(" ")) {
      finish();
      current = { text: token.trim(), first: time, last: time, logProb, n: 1 };
    } else {
      current.text += token;
      current.last = time;
      current.logProb += logProb;
      current.n += 1;
    }
  });
  finish();
  // A word ends no later than the next one starts; times never go backwards.
  for (let i = 0; i < words.length; i++) {
    if (i > 0 && words[i].startMs < words[i - 1].startMs) words[i].startMs = words[i - 1].startMs;
    const next = words[i + 1];
    if (next && words[i].endMs > next.startMs) {
      words[i].endMs = Math.max(words[i].startMs, next.startMs);
    }
  }
  return words;
}

/** `WHY SHOULD I` -> `Why should I`: the model has no case or punctuation. */
export function sentenceCase(text: string): string {
  const lower = text.toLowerCase().replace(/\bi\b/g, "I").replace(/\bi'/g, "I'");
  return lower.charAt(0).toUpperCase() + lower.slice(1);
}
