/**
 * One track of the local engine: µ-law in, decoded to float at 8 kHz and
 * upsampled to the model's 16 kHz, fed to the recognizer's stream while the
 * voice detector hears speech (silence between utterances is skipped, and
 * the stream's clock kept against the track's), transcripts out.
 *
 * @module
 */
import { ByteBatcher, FRAME_BYTES } from "../audio/framing.ts";
import { mulawToFloat32 } from "../audio/mulaw.ts";
import { Upsampler2x } from "../audio/upsample.ts";
import type { Track, TrackTranscriber, Transcript, TranscriptSink } from "./engine.ts";
import type { DecodeQueue } from "./decode_queue.ts";
import type { LocalEngineOptions } from "./local_engine_options.ts";
import { MODEL_RATE, type RecognizerResult } from "./recognizer.ts";
import { sentenceCase, tokensToWords } from "./tokens_to_words.ts";
import { endsSpeech, type VoiceDetector } from "./voice_detector.ts";

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
 * With a voice detector, the model is fed only from a little before speech
 * starts until the detector ends it: the silence between utterances (half a
 * call or more, while the other side talks) is not decoded. The detector
 * says "speech" after 100 ms of loud frames, and words start softly, so at
 * least this many 20 ms frames heard before are fed first: with 500–800 ms
 * (this, and up to a chunk more) the shared sets' WER stays within half a
 * point of decoding everything; 200–520 ms lost 1.4 points on two of them.
 */
const PRE_ROLL_FRAMES = 25;
/** A final of at most this many words gets a new stream after it (see `#flushUtterance`). */
const NEW_STREAM_MAX_WORDS = 4;

/**
 * One track's transcription on a recognizer: runs its voice detector, feeds
 * the stream (skipping silence a whole model chunk at a time), and emits
 * partials and finals with word times on the track's clock.
 */
export class LocalTrack implements TrackTranscriber {
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

  /**
   * A track on a stream of `recognizer`: `vad` is its voice detector (null:
   * none, the model hears everything), `release` runs once at close, and
   * silence is skipped `skipFrames` 20 ms frames at a time.
   */
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

  /** The track's recognizer stream (null once closed). */
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
      // The detector takes the call's 8 kHz or the model's 16 kHz, whichever it was made for.
      const vad = this.#vad;
      if (vad) ended = endsSpeech(vad.push(vad.sampleRate === MODEL_RATE ? pcm : samples));
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
        const result: RecognizerResult = recognizer.getResult(this.#stream);
        if (result.text !== this.#lastPartial) {
          this.#lastPartial = result.text;
          if (result.text.trim()) this.#sink.onTranscript(this.#toTranscript("partial", result));
        }
      }
    });
  }

  #emitFinal(): void {
    const result: RecognizerResult = this.#recognizer.getResult(this.#stream);
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

  #toTranscript(type: Transcript["type"], result: RecognizerResult): Transcript {
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
