/**
 * The microphone half of the bridge: an ffmpeg process captures the input
 * (device or file) as µ-law 8 kHz, and frames go out every 20 ms, scheduled
 * against the start time so a long call never drifts and never bursts.
 *
 * @module
 */
import { BATCH_BYTES, FRAME_BYTES, FRAME_MS, silenceFrame } from "../audio/framing.ts";
import type { Logger } from "../log.ts";
import { type AudioEndpoint, capturePlans } from "./devices.ts";
import { Supervisor } from "./ffmpeg.ts";

/** A live device queue above this many frames is trimmed (latency stays low). */
const DEVICE_MAX_FRAMES = 10;
/** …down to this many. */
const DEVICE_KEEP_FRAMES = 3;
/** A file is read ahead by at most this many frames (ffmpeg waits on the pipe meanwhile). */
const FILE_READ_AHEAD = 50;
/** Frames queued before the queue is drawn from (again): ffmpeg reads a file in chunks of up to
 * ~130 ms and its resampler holds some back, so a file needs more than a live device. */
const PREFILL_FRAMES = { file: 12, device: 3 };
/**
 * Frames sent ahead of their time (100 ms), so Twilio's playback buffer holds that much: a late
 * timer, a stall of our event loop or a network hiccup shorter than that never lets it run dry
 * and play silence inside the laptop's words. Sent just in time, 3 of 4 simulated 30 s calls had
 * such a 20 ms hole (tests/bridge_test.ts), and the transcript lost words to it.
 */
export const LEAD_FRAMES = 5;
/** At most this many frames go out per timer tick while catching up after a stall. */
const CATCH_UP_PER_TICK = 2;
/** Further behind than this (a long stall), the clock jumps instead of catching up. */
const MAX_BEHIND_FRAMES = 50;

/** Options of a {@link Microphone}. */
export interface MicrophoneOptions {
  endpoint: AudioEndpoint;
  ffmpeg: string;
  log: Logger;
  /** Sends one 160-byte frame into the call. */
  send(frame: Uint8Array): void;
  /**
   * Transforms each captured frame before it is queued (echo cancellation), in capture order;
   * `endMs` estimates when its last sample was captured (`performance.now()` ms, from the
   * arrival of ffmpeg's output).
   */
  process?(frame: Uint8Array, endMs: number): Uint8Array;
  /**
   * File input only: send frames as soon as ffmpeg decodes them and let
   * Twilio buffer them (simulated calls faster than real time). Otherwise
   * frames are paced by the clock.
   */
  unpaced?: boolean;
  /** Called when an unpaced file has been sent in full. */
  onFileEnd?(): void;
  /**
   * The file input already decoded to µ-law 8 kHz (a WAV read without
   * ffmpeg, when ffmpeg is missing): sent the same way, with no process.
   */
  decoded?: Uint8Array;
}

/** Where captured audio comes from: an ffmpeg process, or audio decoded in-process. */
type CaptureSource = Pick<Supervisor, "pids" | "pid" | "restarts" | "close">;

/** Hands pre-decoded audio to the microphone in ffmpeg-sized chunks, honouring its back-pressure. */
class DecodedSource implements CaptureSource {
  readonly pids: number[] = [];
  readonly pid = undefined;
  readonly restarts = 0;
  #closed = false;
  #done: Promise<void>;

  constructor(
    bytes: Uint8Array,
    onData: (chunk: Uint8Array) => Promise<void>,
    onEnd: (reason: "ended") => void,
  ) {
    this.#done = (async () => {
      await Promise.resolve();
      for (let at = 0; at < bytes.length && !this.#closed; at += BATCH_BYTES) {
        await onData(bytes.subarray(at, at + BATCH_BYTES));
      }
      if (!this.#closed) onEnd("ended");
    })();
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#done;
  }
}

/** Captures the laptop's microphone (or a file) and sends it into the call. */
export class Microphone {
  #o: MicrophoneOptions;
  #queue: Uint8Array[] = [];
  #partial = new Uint8Array(0);
  #receivedBytes = 0;
  #closed = false;
  #wake: (() => void) | null = null;
  #supervisor: CaptureSource;
  #pacer: Promise<void> = Promise.resolve();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #tick: (() => void) | null = null;
  #unpaced: boolean;
  #primed = false;
  #ended = false;
  /** Frames the pacer has sent, {@link LEAD_FRAMES} ahead of the clock. */
  #sent = 0;
  /** Frames sent into the call (audio and silence). */
  framesSent = 0;
  /** Silence sent because the source fell behind (after it had started, before its end). */
  underruns = 0;

  constructor(options: MicrophoneOptions) {
    this.#o = options;
    const file = options.endpoint.kind === "file";
    this.#unpaced = Boolean(options.unpaced && file);
    const onEnd = (reason: "ended" | "failed") => {
      this.#ended = true;
      if (reason !== "ended") return;
      // The file's last few ms, less than a frame, are sent too.
      this.#flushPartial();
      if (this.#unpaced) options.onFileEnd?.();
    };
    this.#supervisor = options.decoded
      ? new DecodedSource(options.decoded, (chunk) => this.#onData(chunk), onEnd)
      : new Supervisor({
        label: "microphone",
        log: options.log,
        ffmpeg: options.ffmpeg,
        // After a restart a file resumes where it was, not from the top.
        plans: (restart) =>
          capturePlans(options.endpoint, {
            ffmpeg: options.ffmpeg,
            seekMs: restart && file ? this.#receivedBytes / 8 : 0,
          }),
        onData: (chunk) => this.#onData(chunk),
        cleanExitIsEnd: file,
        onEnd,
      });
    if (!this.#unpaced) this.#pacer = this.#pace();
  }

  /** PIDs of every ffmpeg this microphone started. */
  get pids(): number[] {
    return this.#supervisor.pids;
  }

  /** PID of the running ffmpeg, if any. */
  get pid(): number | undefined {
    return this.#supervisor.pid;
  }

  /** ffmpeg restarts so far. */
  get restarts(): number {
    return this.#supervisor.restarts;
  }

  /** Drops audio captured but not yet sent (`clear`: Twilio drops what it holds, the lead too). */
  dropQueued(): void {
    this.#queue = [];
    this.#sent -= LEAD_FRAMES;
  }

  /** Stops sending and ends ffmpeg. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#tick?.();
    this.#wake?.();
    await this.#supervisor.close();
    await this.#pacer;
  }

  async #onData(chunk: Uint8Array): Promise<void> {
    if (this.#closed) return;
    this.#receivedBytes += chunk.length;
    let bytes = chunk;
    if (this.#partial.length) {
      bytes = new Uint8Array(this.#partial.length + chunk.length);
      bytes.set(this.#partial);
      bytes.set(chunk, this.#partial.length);
    }
    const arrived = performance.now();
    let at = 0;
    for (; at + FRAME_BYTES <= bytes.length; at += FRAME_BYTES) {
      let frame: Uint8Array = bytes.slice(at, at + FRAME_BYTES);
      // The chunk's last byte was captured about when it arrived; earlier bytes 1/8 ms each before.
      if (this.#o.process) {
        frame = this.#o.process(frame, arrived - (bytes.length - at - FRAME_BYTES) / 8);
      }
      if (this.#unpaced) this.#emit(frame);
      else this.#queue.push(frame);
    }
    this.#partial = bytes.slice(at);
    if (this.#unpaced) return;
    if (this.#o.endpoint.kind === "device") {
      if (this.#queue.length > DEVICE_MAX_FRAMES) {
        this.#queue.splice(0, this.#queue.length - DEVICE_KEEP_FRAMES);
      }
      return;
    }
    // A file is read no further ahead than needed; ffmpeg blocks on the full pipe meanwhile.
    while (this.#queue.length >= FILE_READ_AHEAD && !this.#closed) {
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = null;
    }
  }

  #flushPartial(): void {
    if (!this.#partial.length) return;
    const frame = silenceFrame();
    frame.set(this.#partial);
    this.#partial = new Uint8Array(0);
    if (this.#unpaced) this.#emit(frame);
    else this.#queue.push(frame);
  }

  #emit(frame: Uint8Array): void {
    this.framesSent++;
    this.#o.send(frame);
  }

  /** The next queued frame once primed; silence while filling up (start, restart, end of file). */
  #nextFrame(): Uint8Array {
    const prefill = PREFILL_FRAMES[this.#o.endpoint.kind === "file" ? "file" : "device"];
    if (!this.#primed && (this.#queue.length >= prefill || this.#ended)) this.#primed = true;
    const frame = this.#primed ? this.#queue.shift() : undefined;
    if (!frame) {
      if (this.#primed && !this.#ended) this.underruns++;
      this.#primed = false;
      return silenceFrame();
    }
    return frame;
  }

  /**
   * Sends frame k at start + (k − {@link LEAD_FRAMES})·20 ms: scheduled against the start, so
   * timer lateness never adds up.
   */
  async #pace(): Promise<void> {
    const start = performance.now();
    while (!this.#closed) {
      const due = Math.floor((performance.now() - start) / FRAME_MS) + 1 + LEAD_FRAMES;
      if (due - this.#sent > MAX_BEHIND_FRAMES) this.#sent = due - 1;
      const count = Math.min(due - this.#sent, CATCH_UP_PER_TICK);
      for (let i = 0; i < count; i++) {
        this.#emit(this.#nextFrame());
        this.#sent++;
      }
      if (this.#queue.length < FILE_READ_AHEAD) this.#wake?.();
      const behind = due - this.#sent > 0;
      const wait = behind
        ? FRAME_MS / 2
        : Math.max(0, start + (this.#sent - LEAD_FRAMES) * FRAME_MS - performance.now());
      await new Promise<void>((resolve) => {
        this.#tick = resolve;
        this.#timer = setTimeout(resolve, wait);
      });
      this.#tick = null;
    }
  }
}
