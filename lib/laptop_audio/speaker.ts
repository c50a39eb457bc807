/**
 * The speaker half of the bridge: the call's audio (what the other party
 * says) plays on the laptop's output through ffmpeg, behind a small jitter
 * buffer, or is written to a WAV file.
 *
 * @module
 */
import { FRAME_MS, silenceFrame } from "../audio/framing.ts";
import { writeMulawWav } from "../audio/wav.ts";
import type { Logger } from "../log.ts";
import { type AudioEndpoint, playbackPlans } from "./devices.ts";
import { Supervisor } from "./ffmpeg.ts";

/** Frames buffered before playback starts (60 ms absorbs network jitter). */
const PREFILL_FRAMES = 3;
/** More than this buffered (network burst, slow device) is trimmed back to the prefill. */
const MAX_FRAMES = 12;
/** This long without audio and playback pauses until the next prefill. */
const IDLE_FRAMES = 25;

/** Options of a {@link Speaker}. */
export interface SpeakerOptions {
  endpoint: AudioEndpoint;
  ffmpeg: string;
  log: Logger;
  /** Called with each frame written to the device and its due time (`performance.now()` ms):
   * the echo canceller's reference. */
  onWrite?(frame: Uint8Array, dueMs: number): void;
}

/** Plays the call's audio on the laptop (or writes it to a WAV file). */
export class Speaker {
  #file: MulawWavFile | null = null;
  #supervisor: Supervisor | null = null;
  #queue: Uint8Array[] = [];
  #playing = false;
  #closed = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #tick: (() => void) | null = null;
  #loop: Promise<void> = Promise.resolve();
  #onWrite?: (frame: Uint8Array, dueMs: number) => void;
  /** Frames received from the call. */
  framesReceived = 0;
  #fileFrames = 0;
  /** Frames of silence played because the network was late. */
  underruns = 0;

  constructor(options: SpeakerOptions) {
    const { endpoint } = options;
    this.#onWrite = options.onWrite;
    if (endpoint.kind === "file") {
      this.#file = new MulawWavFile(endpoint.path);
    } else if (endpoint.kind === "device") {
      this.#supervisor = new Supervisor({
        label: "speaker",
        log: options.log,
        ffmpeg: options.ffmpeg,
        plans: () => Promise.resolve(playbackPlans(endpoint)),
        stdin: true,
      });
    }
  }

  /** PIDs of every process this speaker started. */
  get pids(): number[] {
    return this.#supervisor?.pids ?? [];
  }

  /** PID of the running playback process, if any. */
  get pid(): number | undefined {
    return this.#supervisor?.pid;
  }

  /**
   * Frames of the call's audio written to the file, or played: taken by a
   * playback process that kept running (not one that died opening the device).
   */
  get framesPlayed(): number {
    return this.#file ? this.#fileFrames : this.#supervisor?.audioPlayed ?? 0;
  }

  /** ffmpeg restarts so far. */
  get restarts(): number {
    return this.#supervisor?.restarts ?? 0;
  }

  /** Queues one frame of the call's audio. */
  play(frame: Uint8Array): void {
    if (this.#closed) return;
    this.framesReceived++;
    // A file has no clock to keep up with: Twilio's frames already form a continuous timeline.
    if (this.#file) {
      this.#fileFrames++;
      return this.#file.write(frame);
    }
    if (!this.#supervisor) return;
    this.#queue.push(frame);
    if (this.#queue.length > MAX_FRAMES) this.#queue.splice(0, this.#queue.length - PREFILL_FRAMES);
    if (!this.#playing && this.#queue.length >= PREFILL_FRAMES) {
      this.#playing = true;
      this.#loop = this.#playout();
    }
  }

  /** Stops playback, ends ffmpeg and finishes the WAV file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#tick?.();
    await this.#loop;
    this.#file?.close();
    await this.#supervisor?.close();
  }

  /** Writes a frame every 20 ms against the clock; silence fills a late network. */
  async #playout(): Promise<void> {
    const start = performance.now();
    let written = 0;
    let idle = 0;
    while (!this.#closed) {
      const due = Math.floor((performance.now() - start) / FRAME_MS) + 1;
      if (due - written > IDLE_FRAMES) written = due - 1;
      while (written < due) {
        const frame = this.#queue.shift();
        if (frame) idle = 0;
        else {
          idle++;
          this.underruns++;
        }
        const played = frame ?? silenceFrame();
        this.#supervisor?.write(played, frame !== undefined);
        this.#onWrite?.(played, start + written * FRAME_MS);
        written++;
      }
      if (idle >= IDLE_FRAMES) break;
      const wait = Math.max(0, start + written * FRAME_MS - performance.now());
      await new Promise<void>((resolve) => {
        this.#tick = resolve;
        this.#timer = setTimeout(resolve, wait);
      });
      this.#tick = null;
    }
    this.#playing = false;
  }
}

/** A µ-law WAV file written as the call goes, its sizes fixed up on close. */
export class MulawWavFile {
  #file: Deno.FsFile;
  #header: Uint8Array;
  #bytes = 0;
  #closed = false;

  constructor(path: string) {
    this.#header = writeMulawWav(new Uint8Array(0));
    this.#file = Deno.openSync(path, { write: true, create: true, truncate: true });
    this.#file.writeSync(this.#header);
  }

  /** Appends µ-law bytes. */
  write(bytes: Uint8Array): void {
    if (this.#closed) return;
    let at = 0;
    while (at < bytes.length) at += this.#file.writeSync(bytes.subarray(at));
    this.#bytes += bytes.length;
  }

  /** Fixes the RIFF, fact and data sizes and closes the file. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const header = this.#header.slice();
    const view = new DataView(header.buffer);
    view.setUint32(4, header.length - 8 + this.#bytes, true);
    for (let at = 12; at + 8 <= header.length;) {
      const id = String.fromCharCode(...header.subarray(at, at + 4));
      const size = view.getUint32(at + 4, true);
      if (id === "fact") view.setUint32(at + 8, this.#bytes, true);
      if (id === "data") view.setUint32(at + 4, this.#bytes, true);
      at += 8 + size + (size % 2);
    }
    this.#file.seekSync(0, Deno.SeekMode.Start);
    this.#file.writeSync(header);
    this.#file.close();
  }
}
