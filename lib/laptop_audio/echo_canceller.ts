/**
 * Acoustic echo cancellation for the laptop leg: speexdsp's MDF adaptive
 * filter removes what the speaker played (the reference) from what the
 * microphone heard, and its preprocessor suppresses the echo left over.
 * MDF's own double-talk detection keeps the laptop user's speech.
 *
 * @module
 */
import { instantiateSpeexDsp, loadSpeexDsp, type SpeexDspExports } from "./speexdsp.ts";

// Request numbers from speex_echo.h and speex_preprocess.h.
const SPEEX_ECHO_SET_SAMPLING_RATE = 24;
const SPEEX_ECHO_GET_IMPULSE_RESPONSE_SIZE = 27;
const SPEEX_ECHO_GET_IMPULSE_RESPONSE = 29;
const SPEEX_PREPROCESS_SET_DENOISE = 0;
const SPEEX_PREPROCESS_SET_AGC = 2;
const SPEEX_PREPROCESS_SET_DEREVERB = 8;
const SPEEX_PREPROCESS_SET_NOISE_SUPPRESS = 18;
const SPEEX_PREPROCESS_SET_ECHO_SUPPRESS = 20;
const SPEEX_PREPROCESS_SET_ECHO_SUPPRESS_ACTIVE = 22;
const SPEEX_PREPROCESS_SET_ECHO_STATE = 24;

/** Options of an {@link EchoCanceller}. */
export interface EchoCancellerOptions {
  /** Samples per frame (default 160: 20 ms at 8 kHz, the bridge's frame). */
  frameSize?: number;
  /** Adaptive filter length in samples: the longest speaker-to-microphone delay plus the room's
   * tail it can cancel (default 4096: 512 ms at 8 kHz). */
  filterLength?: number;
  /** Sample rate in Hz (default 8000, the call's rate). */
  sampleRate?: number;
  /** Residual echo attenuation while only the far end talks, dB (default −45). */
  echoSuppressDb?: number;
  /** Residual echo attenuation during double talk, dB (default −5: in the bench, −15 cost the
   * laptop user's words in double talk, Outbound WER +4.6 points against −5, the same ERLE). */
  echoSuppressActiveDb?: number;
  /** Background noise attenuation, dB (default 0: none; the transcriber copes with noise, and
   * in the bench −3 dB already cost Outbound words). */
  noiseSuppressDb?: number;
}

/** The defaults of {@link EchoCancellerOptions}. */
export const ECHO_CANCELLER_DEFAULTS: Required<EchoCancellerOptions> = {
  frameSize: 160,
  filterLength: 4096,
  sampleRate: 8000,
  echoSuppressDb: -45,
  echoSuppressActiveDb: -5,
  noiseSuppressDb: 0,
};

/** One call's echo canceller: feed it each microphone frame with the speaker frame it may echo. */
export class EchoCanceller {
  /** Its settings. */
  readonly options: Readonly<Required<EchoCancellerOptions>>;
  #dsp: SpeexDspExports;
  #echo: number;
  #pre: number;
  #mic: number;
  #ref: number;
  #out: number;
  #closed = false;

  /** A canceller on its own instance of `speexdsp` (compiled by {@link loadSpeexDsp}). */
  constructor(speexdsp: WebAssembly.Module, options: EchoCancellerOptions = {}) {
    this.options = checkOptions(options);
    const dsp = instantiateSpeexDsp(speexdsp);
    this.#dsp = dsp;
    const { frameSize, filterLength, sampleRate } = this.options;
    this.#echo = dsp.speex_echo_state_init_mc(frameSize, filterLength, 1, 1);
    this.#pre = dsp.speex_preprocess_state_init(frameSize, sampleRate);
    const bytes = frameSize * 2;
    this.#mic = dsp.malloc(bytes);
    this.#ref = dsp.malloc(bytes);
    this.#out = dsp.malloc(bytes);
    const int = dsp.malloc(4);
    const set = (
      ctl: (s: number, r: number, p: number) => number,
      st: number,
      r: number,
      v: number,
    ) => {
      new Int32Array(dsp.memory.buffer, int, 1)[0] = v;
      ctl(st, r, int);
    };
    const echoCtl = dsp.speex_echo_ctl.bind(dsp);
    const preCtl = dsp.speex_preprocess_ctl.bind(dsp);
    set(echoCtl, this.#echo, SPEEX_ECHO_SET_SAMPLING_RATE, sampleRate);
    // Mostly the echo: gain control and dereverberation would change the laptop user's voice
    // before the transcriber and the phone party hear it. The denoiser must be on, as it applies
    // the residual echo suppression too; its own noise attenuation is kept small.
    set(preCtl, this.#pre, SPEEX_PREPROCESS_SET_DENOISE, 1);
    set(preCtl, this.#pre, SPEEX_PREPROCESS_SET_NOISE_SUPPRESS, this.options.noiseSuppressDb);
    set(preCtl, this.#pre, SPEEX_PREPROCESS_SET_AGC, 0);
    set(preCtl, this.#pre, SPEEX_PREPROCESS_SET_DEREVERB, 0);
    set(preCtl, this.#pre, SPEEX_PREPROCESS_SET_ECHO_SUPPRESS, this.options.echoSuppressDb);
    set(
      preCtl,
      this.#pre,
      SPEEX_PREPROCESS_SET_ECHO_SUPPRESS_ACTIVE,
      this.options.echoSuppressActiveDb,
    );
    dsp.free(int);
    dsp.speex_preprocess_ctl(this.#pre, SPEEX_PREPROCESS_SET_ECHO_STATE, this.#echo);
  }

  /** Loads speexdsp (once per process) and makes a canceller. */
  static async create(options: EchoCancellerOptions = {}): Promise<EchoCanceller> {
    return new EchoCanceller(await loadSpeexDsp(), options);
  }

  /**
   * Cancels one frame: `mic` is what the microphone captured, `reference` what the speaker
   * played at the same time (the echo in `mic` lags it by up to the filter length).
   * Returns the microphone frame without the echo, in `out` if given.
   */
  process(mic: Int16Array, reference: Int16Array, out?: Int16Array): Int16Array {
    const n = this.options.frameSize;
    if (this.#closed) throw new Error("Cannot cancel echo: the canceller is closed");
    if (mic.length !== n || reference.length !== n) {
      throw new RangeError(
        `Cannot cancel echo: frames must have ${n} samples, got ${mic.length} and ${reference.length}`,
      );
    }
    const heap = this.#dsp.memory.buffer;
    new Int16Array(heap, this.#mic, n).set(mic);
    new Int16Array(heap, this.#ref, n).set(reference);
    this.#dsp.speex_echo_cancellation(this.#echo, this.#mic, this.#ref, this.#out);
    this.#dsp.speex_preprocess_run(this.#pre, this.#out);
    const result = out ?? new Int16Array(n);
    // The memory may have grown (a new buffer): view it afresh.
    result.set(new Int16Array(this.#dsp.memory.buffer, this.#out, n));
    return result;
  }

  /** The adaptive filter's current estimate of the echo path (one tap per sample of lag). */
  impulseResponse(): Int32Array {
    const dsp = this.#dsp;
    const size = dsp.malloc(4);
    dsp.speex_echo_ctl(this.#echo, SPEEX_ECHO_GET_IMPULSE_RESPONSE_SIZE, size);
    const length = new Int32Array(dsp.memory.buffer, size, 1)[0];
    dsp.free(size);
    const taps = dsp.malloc(length * 4);
    dsp.speex_echo_ctl(this.#echo, SPEEX_ECHO_GET_IMPULSE_RESPONSE, taps);
    const result = new Int32Array(dsp.memory.buffer, taps, length).slice();
    dsp.free(taps);
    return result;
  }

  /** Frees the native state; the canceller cannot be used after. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#dsp.speex_preprocess_state_destroy(this.#pre);
    this.#dsp.speex_echo_state_destroy(this.#echo);
  }
}

function checkOptions(options: EchoCancellerOptions): Required<EchoCancellerOptions> {
  const settings = { ...ECHO_CANCELLER_DEFAULTS, ...options };
  const { frameSize, filterLength } = settings;
  if (!Number.isInteger(frameSize) || frameSize < 64 || frameSize > 1024) {
    throw new RangeError(`Cannot create echo canceller: frameSize ${frameSize} is not 64-1024`);
  }
  if (!Number.isInteger(filterLength) || filterLength < frameSize || filterLength > 65536) {
    throw new RangeError(
      `Cannot create echo canceller: filterLength ${filterLength} is not ${frameSize}-65536`,
    );
  }
  return settings;
}
