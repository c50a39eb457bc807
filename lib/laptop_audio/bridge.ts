/**
 * The laptop audio bridge: the person at the laptop talks into the call
 * through their microphone and hears it on their speaker, both through ffmpeg
 * child processes (no native modules, any OS). One bridge at a time: the
 * laptop has one pair of ears.
 *
 * @module
 */
import { floatToMulaw, mulawToFloat32 } from "../audio/mulaw.ts";
import { silenceFrame } from "../audio/framing.ts";
import type { Logger } from "../log.ts";
import { clearMessage, markMessage, mediaMessage } from "../twilio/protocol.ts";
import { type AudioEndpoint, describeEndpoint, probeDevice } from "./devices.ts";
import { readWavFile, toCallAudio } from "../audio/wav.ts";
import { describeFfmpeg, findFfmpeg } from "./find_ffmpeg.ts";
import { Microphone } from "./microphone.ts";
import { Speaker } from "./speaker.ts";
import { ECHO_CANCELLER_DEFAULTS, EchoCanceller } from "./echo_canceller.ts";
import { ALIGNED_FILTER_LENGTH, EchoTimeline, WARMUP_FILTER_LENGTH } from "./echo_timeline.ts";
import { type RoomSettings, SimulatedRoom } from "./room.ts";
import { loadSpeexDsp } from "./speexdsp.ts";

/** RMS (full scale 1.0) above which a 20 ms frame counts as speech (about −40 dBFS). */
export const SPEECH_RMS = 0.01;
/** Silence this long ends a spoken burst. */
export const BURST_HANGOVER_MS = 400;
/** Bursts shorter than this (clicks, bumps) get no mark. */
export const MIN_BURST_MS = 100;

/**
 * Energy-based burst detection on 20 ms µ-law frames: `frame` returns true
 * when a spoken burst has just ended (after {@link BURST_HANGOVER_MS} of quiet).
 */
export class BurstDetector {
  #speechFrames = 0;
  #quietFrames = 0;
  #samples = new Float32Array(160);

  /** Feeds one frame; true when the burst it belongs to has just ended. */
  frame(mulaw: Uint8Array): boolean {
    const samples = mulaw.length === 160 ? this.#samples : new Float32Array(mulaw.length);
    mulawToFloat32(mulaw, samples);
    let sum = 0;
    for (const s of samples) sum += s * s;
    const speech = Math.sqrt(sum / samples.length) > SPEECH_RMS;
    if (speech) {
      this.#speechFrames++;
      this.#quietFrames = 0;
      return false;
    }
    if (this.#speechFrames === 0) return false;
    this.#quietFrames++;
    if (this.#quietFrames * 20 < BURST_HANGOVER_MS) return false;
    const long = this.#speechFrames * 20 >= MIN_BURST_MS;
    this.#speechFrames = 0;
    this.#quietFrames = 0;
    return long;
  }

  /** True while inside a burst long enough to be marked. */
  get speaking(): boolean {
    return this.#speechFrames * 20 >= MIN_BURST_MS;
  }
}

/** Counters of one bridge. */
export interface BridgeStats {
  framesSent: number;
  /** Silence the microphone had to send because its ffmpeg fell behind. */
  micUnderruns: number;
  framesPlayed: number;
  marksSent: number;
  marksEchoed: number;
  /** Marks sent whose audio Twilio has not played yet. */
  outstandingMarks: number;
  clears: number;
  restarts: { microphone: number; speaker: number };
  /** Microphone frames the echo canceller processed (0 when it is off). */
  echoCancelledFrames: number;
}

/** What a bridge needs from the call's bidirectional stream. */
export interface BridgeStream {
  callSid: string;
  streamSid: string;
  /** Sends one text message to Twilio on the `/audio` socket. */
  send(text: string): void;
}

/** Options of an {@link AudioBridge}. */
export interface AudioBridgeOptions {
  input: AudioEndpoint;
  output: AudioEndpoint;
  ffmpeg: string;
  log: Logger;
  /** File input is sent as fast as decoded (Twilio buffers it); for runs faster than real time. */
  unpacedFileInput?: boolean;
  /** The input file decoded in-process (a WAV, when ffmpeg is missing). */
  decodedInput?: Uint8Array;
  /** Cancel the speaker's echo from the microphone with this compiled speexdsp. */
  speexdsp?: WebAssembly.Module;
  /** Simulate a room: the microphone hears the speaker's output through it. */
  room?: RoomSettings;
}

/**
 * A microphone frame captured more than this far from where its sample count puts it (a device
 * that dropped audio, a restart) moves the microphone's place on the echo timeline.
 */
const REALIGN_SAMPLES = 1200;

/** One call's bridge: microphone → call, call → speaker, marks and clear. */
export class AudioBridge {
  readonly stream: BridgeStream;
  /** What this bridge sends into the call: a device, a file, or nothing (`none`). */
  readonly input: AudioEndpoint["kind"];
  #log: Logger;
  #mic: Microphone | null = null;
  #speaker: Speaker | null = null;
  #burst = new BurstDetector();
  #outstanding = new Set<string>();
  #marksSent = 0;
  #marksEchoed = 0;
  #clears = 0;
  #closed: Promise<void> | null = null;
  #echo: EchoTimeline | null = null;
  /** The echo timeline's origin (`performance.now()` ms); its unit is one 8 kHz sample. */
  #origin = performance.now();
  /** Where the microphone's first sample sits on the echo timeline (devices). */
  #micOrigin: number | null = null;
  #micSamples = 0;
  #room: SimulatedRoom | null = null;
  /** Room: the laptop user's speech waiting for the speaker audio it overlaps. */
  #speech: Uint8Array[] = [];
  #speechEnded = false;
  #roomFrames = 0;
  #speakerFrames = 0;

  constructor(stream: BridgeStream, options: AudioBridgeOptions) {
    this.stream = stream;
    this.input = options.input.kind;
    this.#log = options.log;
    if (options.speexdsp) {
      const speexdsp = options.speexdsp;
      this.#echo = new EchoTimeline(
        new EchoCanceller(speexdsp),
        {
          warmup: new EchoCanceller(speexdsp, { filterLength: WARMUP_FILTER_LENGTH }),
          aligned: () => new EchoCanceller(speexdsp, { filterLength: ALIGNED_FILTER_LENGTH }),
        },
      );
    }
    if (options.room) this.#room = new SimulatedRoom(options.room);
    const cancelDevice = this.#echo && !this.#room && options.input.kind === "device" &&
      options.output.kind === "device";
    if (options.input.kind !== "none") {
      this.#mic = new Microphone({
        endpoint: options.input,
        ffmpeg: options.ffmpeg,
        log: options.log,
        unpaced: options.unpacedFileInput,
        decoded: options.decodedInput,
        send: (frame) => this.#room ? this.#hear(frame) : this.#sendFrame(frame),
        process: cancelDevice ? (frame, endMs) => this.#cancelCaptured(frame, endMs) : undefined,
        onFileEnd: () => {
          if (this.#room) {
            this.#speechEnded = true;
            this.#drainRoom();
          } else if (this.#burst.speaking) this.#mark();
        },
      });
    }
    if (options.output.kind !== "none") {
      this.#speaker = new Speaker({
        endpoint: options.output,
        ffmpeg: options.ffmpeg,
        log: options.log,
        onWrite: cancelDevice
          ? (frame, dueMs) => this.#echo?.played(frame, Math.round((dueMs - this.#origin) * 8))
          : undefined,
      });
    }
  }

  /** Plays one inbound frame (what the other party says) on the speaker. */
  play(mulaw: Uint8Array): void {
    this.#speaker?.play(mulaw);
    if (!this.#room || this.#closed) return;
    this.#room.play(mulawToFloat32(mulaw));
    this.#echo?.played(mulaw, this.#speakerFrames * mulaw.length);
    this.#speakerFrames++;
    // With no microphone input, the room's microphone still hears the speaker.
    if (!this.#mic) this.#speech.push(silenceFrame());
    this.#drainRoom();
  }

  /** Twilio played the audio up to a mark we sent. */
  markEchoed(name: string): void {
    if (this.#outstanding.delete(name)) this.#marksEchoed++;
  }

  /** Drops queued audio: ours not yet sent, and Twilio's not yet played (`clear`). */
  clear(): void {
    this.#clears++;
    this.#mic?.dropQueued();
    this.stream.send(clearMessage(this.stream.streamSid));
    this.#log.info(
      `call ${this.stream.callSid}: cleared queued audio (${this.#outstanding.size} mark(s) outstanding)`,
    );
  }

  /** Counters so far. */
  stats(): BridgeStats {
    return {
      framesSent: this.#mic?.framesSent ?? 0,
      micUnderruns: this.#mic?.underruns ?? 0,
      framesPlayed: this.#speaker?.framesPlayed ?? 0,
      marksSent: this.#marksSent,
      marksEchoed: this.#marksEchoed,
      outstandingMarks: this.#outstanding.size,
      clears: this.#clears,
      restarts: { microphone: this.#mic?.restarts ?? 0, speaker: this.#speaker?.restarts ?? 0 },
      echoCancelledFrames: this.#echo?.frames ?? 0,
    };
  }

  /** PIDs of the ffmpeg processes running now, by role. */
  livePids(): { microphone?: number; speaker?: number } {
    return { microphone: this.#mic?.pid, speaker: this.#speaker?.pid };
  }

  /** PIDs of every process this bridge ever started. */
  allPids(): number[] {
    return [...(this.#mic?.pids ?? []), ...(this.#speaker?.pids ?? [])];
  }

  /** Ends both processes and waits until they are gone. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      await Promise.all([this.#mic?.close(), this.#speaker?.close()]);
      this.#echo?.close();
      const s = this.stats();
      this.#log.info(
        `call ${this.stream.callSid}: audio bridge closed (${s.framesSent} frames sent, ` +
          `${s.micUnderruns} late, ${s.framesPlayed} played, ${s.marksSent} marks, ` +
          `${s.outstandingMarks} unanswered)`,
      );
    })();
    return this.#closed;
  }

  /**
   * A device frame against the speaker's timeline. The microphone's place on it follows its
   * sample count (steady, unlike arrival times), moved only when the two disagree by far.
   */
  #cancelCaptured(frame: Uint8Array, endMs: number): Uint8Array {
    const arrivedAt = (endMs - this.#origin) * 8;
    this.#micSamples += frame.length;
    if (
      this.#micOrigin === null ||
      Math.abs(this.#micOrigin + this.#micSamples - arrivedAt) > REALIGN_SAMPLES
    ) this.#micOrigin = Math.round(arrivedAt) - this.#micSamples;
    return this.#echo!.cancel(frame, this.#micOrigin + this.#micSamples);
  }

  /** Room: the laptop user says `frame`; it is heard once the speaker audio it overlaps is in. */
  #hear(frame: Uint8Array): void {
    if (this.#closed) return;
    this.#speech.push(frame);
    this.#drainRoom();
  }

  /**
   * Room: microphone frame k is made once speaker frames up to k + 1 have been written (the
   * room's echo comes at least 50 ms late, so nothing it needs is missing), and is cancelled
   * against those up to k − 2: the speaker's timeline is its frame count, the microphone's its
   * own. The speaker written ahead is its device buffer, as on a laptop: correcting a fast
   * speaker clock, the echo timeline reads the reference later than the microphone's place (by
   * 30 ms after 5 min at 100 ppm). It never reads past what is written, but stepping back when
   * it gets there costs the canceller a re-learnt echo: with the lead, the first after 600 s at
   * 100 ppm (with only up to k − 2 written, it read silence: 9 dB left after 4 min in the bench).
   */
  #drainRoom(): void {
    if (this.#closed) return;
    const room = this.#room!;
    while (this.#speech.length && this.#roomFrames + 2 <= this.#speakerFrames) {
      const speech = this.#speech.shift()!;
      const heard = floatToMulaw(room.capture(mulawToFloat32(speech)));
      const end = (this.#roomFrames - 1) * speech.length;
      this.#roomFrames++;
      this.#sendFrame(this.#echo ? this.#echo.cancel(heard, end) : heard);
    }
    if (this.#speechEnded && !this.#speech.length && this.#burst.speaking) {
      this.#speechEnded = false;
      this.#mark();
    }
  }

  #sendFrame(frame: Uint8Array): void {
    this.stream.send(mediaMessage(this.stream.streamSid, frame));
    if (this.#burst.frame(frame)) this.#mark();
  }

  #mark(): void {
    const name = `speech-${++this.#marksSent}`;
    this.#outstanding.add(name);
    this.stream.send(markMessage(this.stream.streamSid, name));
  }
}

/** Options of the {@link BridgeManager}. */
export interface BridgeManagerOptions {
  input: AudioEndpoint;
  output: AudioEndpoint;
  log: Logger;
  /** The ffmpeg program (`FFMPEG_PATH`); by default found by {@link findFfmpeg}. */
  ffmpeg?: string;
  unpacedFileInput?: boolean;
  /** `AEC`: cancel the speaker's echo when there are a microphone and a speaker device (default true). */
  echoCancellation?: boolean;
  /** `--room`: simulate a room between the speaker and the microphone (simulated calls). */
  room?: RoomSettings;
}

/** Hands the one laptop bridge to one call at a time, and ends every process on shutdown. */
export class BridgeManager {
  #o: BridgeManagerOptions & {
    ffmpeg: string;
    decodedInput?: Uint8Array;
    speexdsp?: WebAssembly.Module;
  };
  #available: boolean;
  #active: AudioBridge | null = null;
  #closing = new Set<Promise<void>>();

  private constructor(
    options: BridgeManagerOptions & {
      ffmpeg: string;
      decodedInput?: Uint8Array;
      speexdsp?: WebAssembly.Module;
    },
    available: boolean,
  ) {
    this.#o = options;
    this.#available = available;
  }

  /**
   * Finds ffmpeg once (when any device or file is configured) and names the
   * one it uses. Without ffmpeg a WAV file input is still read in-process
   * (a note, not a problem: the demo needs no ffmpeg); devices are off.
   * Echo cancellation is set up (and said) when there are a microphone and a speaker device,
   * or a simulated room.
   */
  static async create(options: BridgeManagerOptions): Promise<BridgeManager> {
    const wanted = options.input.kind !== "none" || options.output.kind !== "none" ||
      options.room !== undefined;
    if (!wanted) return new BridgeManager({ ...options, ffmpeg: "ffmpeg" }, false);
    const found = await findFfmpeg(options.ffmpeg);
    const devices = options.input.kind === "device" && options.output.kind === "device" &&
      found.path !== undefined;
    const speexdsp = await BridgeManager.#echoCanceller(options, devices || Boolean(options.room));
    if (options.room) {
      options.log.info(
        `audio bridge: simulated room (delay ${options.room.delayMs} ms, RT60 ${options.room.rt60S} s, ` +
          `gain ${options.room.gainDb} dB, noise ${options.room.noiseDb} dBFS, drift ` +
          `${options.room.driftPpm} ppm, seed ${options.room.seed}) between the speaker and the microphone`,
      );
    }
    if (found.path !== undefined) {
      // A device that cannot be opened is said now, once, not found out mid-call.
      const [input, output] = await Promise.all([
        probeDevice(options.input, "input", found.path),
        probeDevice(options.output, "output", found.path),
      ]);
      for (
        const [why, role, name] of [[input, "microphone", "AUDIO_INPUT"], [
          output,
          "speaker",
          "AUDIO_OUTPUT",
        ]]
      ) {
        if (why === null) continue;
        const value = describeEndpoint(role === "microphone" ? options.input : options.output);
        options.log.warn(
          `${name}: the ${role} (${value}) cannot be opened here (${why}); calls go on without it. ` +
            "`deno task serve --list-devices` shows the devices ffmpeg sees",
        );
      }
      if (input !== null) options = { ...options, input: { kind: "none" } };
      if (output !== null) options = { ...options, output: { kind: "none" } };
      if (options.input.kind === "none" && options.output.kind === "none") {
        return new BridgeManager({ ...options, ffmpeg: found.path }, false);
      }
      options.log.info(
        `audio bridge: microphone ${describeEndpoint(options.input)}, speaker ${
          describeEndpoint(options.output)
        }, ${describeFfmpeg(found)}`,
      );
      return new BridgeManager({ ...options, ffmpeg: found.path, speexdsp }, true);
    }
    const decodedInput = options.input.kind === "file"
      ? await readWavFile(options.input.path).then(toCallAudio, () => undefined)
      : undefined;
    const output = options.output.kind === "file" ? options.output : { kind: "none" as const };
    const usable = decodedInput !== undefined || output.kind === "file" ||
      options.room !== undefined;
    const anyDevice = options.input.kind === "device" || options.output.kind === "device";
    const says = anyDevice ? options.log.warn : options.log.info;
    says(
      (usable
        ? `the audio bridge reads and writes WAV files in-process (no ffmpeg)`
        : `the laptop audio bridge (microphone and speaker) is off`) +
        `; calls are still transcribed. Devices and other formats need ffmpeg: ${found.why}`,
    );
    return new BridgeManager({
      ...options,
      ffmpeg: "ffmpeg",
      decodedInput,
      input: decodedInput ? options.input : { kind: "none" },
      output,
      speexdsp,
    }, usable);
  }

  /** speexdsp compiled when the echo canceller is wanted and on, with the one line saying so. */
  static async #echoCanceller(
    options: BridgeManagerOptions,
    wanted: boolean,
  ): Promise<WebAssembly.Module | undefined> {
    if (!wanted) return undefined;
    if (options.echoCancellation === false) {
      options.log.info(
        "echo cancellation: off (AEC=off); without headphones the other party hears " +
          "themselves and their words show up on the Outbound track",
      );
      return undefined;
    }
    try {
      const module = await loadSpeexDsp();
      const { filterLength, sampleRate } = ECHO_CANCELLER_DEFAULTS;
      options.log.info(
        `echo cancellation: on (speexdsp 1.2.1, ${(filterLength / sampleRate) * 1000} ms ` +
          `filter, residual echo suppression); AEC=off turns it off`,
      );
      return module;
    } catch (error) {
      options.log.warn(`echo cancellation: off: ${(error as Error).message}`);
      return undefined;
    }
  }

  /** True when calls get a bridge (something configured and ffmpeg found). */
  get enabled(): boolean {
    return this.#available;
  }

  /** The bridged call's bridge, if any. */
  get active(): AudioBridge | null {
    return this.#active;
  }

  /** A bridge for this call, or null (none configured, no ffmpeg, or busy with another call). */
  open(stream: BridgeStream): AudioBridge | null {
    if (!this.#available) return null;
    if (this.#active) {
      this.#o.log.warn(
        `call ${stream.callSid}: the laptop audio bridge is busy with call ` +
          `${this.#active.stream.callSid}; this call is transcribed without it`,
      );
      return null;
    }
    const bridge = new AudioBridge(stream, this.#o);
    this.#active = bridge;
    return bridge;
  }

  /** Ends a bridge (its call's audio stream ended); the laptop is free again. */
  release(bridge: AudioBridge): Promise<void> {
    if (this.#active === bridge) this.#active = null;
    const closing = bridge.close();
    this.#closing.add(closing);
    closing.finally(() => this.#closing.delete(closing));
    return closing;
  }

  /** `clear` on the bridged call; false when no call is bridged. */
  clear(): boolean {
    if (!this.#active) return false;
    this.#active.clear();
    return true;
  }

  /** Ends every bridge and waits until all their processes are gone. */
  async closeAll(): Promise<void> {
    if (this.#active) this.release(this.#active);
    await Promise.all([...this.#closing]);
  }
}
