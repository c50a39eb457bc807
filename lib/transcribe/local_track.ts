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
import type { SpeechDetector, SpeechEvent } from "./speech_detector.ts";
import { sentenceCase, tokensToWords } from "./tokens_to_words.ts";
import type { VoiceDetector } from "./voice_detector.ts";

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
 * One track's transcription on a recognizer: gates the voice detector, feeds
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
  /** Silero is listening (see {@link VAD_GATE_RMS}), and for how long it has heard no speech. */
  #vadOn = false;
  #vadIdleMs = 0;
  /**
   * The stream's clock against the track's, in ms: flush padding fed (not in
   * the track) minus silence skipped (not in the stream).
   */
  #streamAheadMs = 0;
  /** The model is being fed: speech is on, or the track has no voice detector. */
  #feeding: boolean;
  /** The last frames heard while not feeding (16 kHz), fed first when speech starts. */
  #preRoll: Float32Array[] = [];
  #skipFrames: number;
  #lastPartial = "";
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
        this.#stream.acceptWaveform({
          samples: new Float32Array(Math.round(MODEL_RATE * TAIL_SECONDS)),
          sampleRate: MODEL_RATE,
        });
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
        for (const frame of this.#preRoll) {
          this.#stream.acceptWaveform({ samples: frame, sampleRate: MODEL_RATE });
        }
        this.#preRoll = [];
      }
      if (this.#feeding) {
        this.#stream.acceptWaveform({ samples: pcm, sampleRate: MODEL_RATE });
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

  /** The VAD's end of speech: padding makes the model emit the last words, then the final. */
  #flushUtterance(): void {
    this.#guard(() => {
      const recognizer = this.#recognizer;
      this.#stream.acceptWaveform({
        samples: new Float32Array(FLUSH_SAMPLES),
        sampleRate: MODEL_RATE,
      });
      this.#queue.decodeAll(this.#stream);
      this.#emitFinal();
      recognizer.reset(this.#stream);
      this.#streamAheadMs += (FLUSH_SAMPLES / MODEL_RATE) * 1000;
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
    if (result.text.trim()) this.#sink.onTranscript(this.#toTranscript("final", result));
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

/** True when the detector's events end a stretch of speech. */
function endsSpeech(events: SpeechEvent[]): boolean {
  return events.some((e) => e.type === "speech-end");
}
