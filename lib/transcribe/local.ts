/**
 * The local engine: sherpa-onnx decoding in decoder workers, one thread and
 * one copy of the model each (see {@link LocalEngineOptions.workers}), so
 * all cores decode and the server's event loop only relays audio. A track
 * stays on one worker; new tracks go to the worker with the fewest.
 *
 * @module
 */
import { ByteBatcher, FRAME_BYTES } from "../audio/framing.ts";
import type {
  Track,
  TrackOptions,
  TrackTranscriber,
  TranscriberEngine,
  TranscriptSink,
} from "./engine.ts";
import { LocalDecoder } from "./local_decoder.ts";
import { LOCAL_DEFAULTS, type LocalEngineOptions } from "./local_engine_options.ts";
import type { FromWorker, LoadMessage } from "./local_worker.ts";
import { COUNTER_SLOTS, COUNTERS, type DecoderCommand, encodeCommand } from "./decoder_channel.ts";
import { SharedRing } from "../async/shared_ring.ts";
import { sleep } from "../async/sleep.ts";
import type { ModelFiles } from "../model/model_files.ts";
import { UserError } from "../user_error.ts";
import { waitAtMost } from "../async/wait_at_most.ts";

/**
 * Audio for a worker waits up to this long and goes into its ring together:
 * every flush wakes the worker's thread, so a worker wakes once per tick, not
 * once per track (3× fewer wakes with 16 tracks a worker; the event loop
 * used ~10% less CPU in the benchmark).
 */
const SEND_MS = 20;
/** {@link LocalEngine.whenCaughtUp}: at most this much audio per track queued and not decoded. */
const CAUGHT_UP_SECONDS = 1;
/**
 * Room in a worker's ring: 1 MiB is about 5 s of audio for 24 tracks; more
 * waits in the engine's outbox (bounded by `maxLagSeconds`).
 */
const RING_BYTES = 2 ** 20;

/** Loads the model (once per worker) and opens one transcriber per track. */
export class LocalEngine implements TranscriberEngine {
  readonly name = "local";
  readonly model: ModelFiles;
  readonly options: LocalEngineOptions;
  readonly #workers: DecoderWorker[];
  /** With `workers: 0`: decoding on this thread. */
  readonly #decoder: LocalDecoder | null;
  #nextId = 0;

  private constructor(
    model: ModelFiles,
    options: LocalEngineOptions,
    workers: DecoderWorker[],
    decoder: LocalDecoder | null,
  ) {
    this.model = model;
    this.options = options;
    this.#workers = workers;
    this.#decoder = decoder;
  }

  /** Starts the workers and loads the model in each; rejects with the model's error. */
  static async start(
    model: ModelFiles,
    options: Partial<LocalEngineOptions> = {},
  ): Promise<LocalEngine> {
    const resolved = { ...LOCAL_DEFAULTS, ...options };
    if (!Number.isInteger(resolved.workers) || resolved.workers < 0) {
      throw new RangeError(
        `workers must be a whole number (0 decodes on the server's thread), got ${resolved.workers}`,
      );
    }
    if (resolved.workers === 0) {
      return new LocalEngine(model, resolved, [], new LocalDecoder(model, resolved));
    }
    const workers = Array.from(
      { length: resolved.workers },
      () => new DecoderWorker(resolved.maxLagSeconds),
    );
    const loads = await Promise.allSettled(workers.map((w) => w.load(model, resolved)));
    const failed = loads.find((l) => l.status === "rejected");
    if (failed) {
      for (const worker of workers) worker.terminate();
      throw (failed as PromiseRejectedResult).reason;
    }
    return new LocalEngine(model, resolved, workers, null);
  }

  open(track: Track, sink: TranscriptSink, options?: TrackOptions): TrackTranscriber {
    if (this.#decoder) return this.#decoder.open(track, sink, options);
    const live = this.#workers.filter((w) => !w.failure);
    if (!live.length) return new FailedTrack(sink, this.#workers[0].failure!);
    const worker = live.reduce((a, b) => (b.tracks.size < a.tracks.size ? b : a));
    return worker.open(++this.#nextId, track, sink, options?.keyterms);
  }

  /**
   * How long the oldest audio not yet decoded has waited, in ms, on the
   * worker furthest behind (0 on one thread): what says whether decoding
   * keeps up with real time.
   */
  decodeDelayMs(): number {
    return Math.max(0, ...this.#workers.map((w) => w.decodeDelayMs()));
  }

  /** Model chunks decoded so far by every worker (see {@link LocalDecoder.chunksDecoded}). */
  async chunksDecoded(): Promise<number> {
    if (this.#decoder) return this.#decoder.chunksDecoded;
    const counts = await Promise.all(this.#workers.map((w) => w.chunksDecoded()));
    return counts.reduce((a, b) => a + b, 0);
  }

  /** Resolves when no worker has more than a second per track queued and not yet decoded. */
  async whenCaughtUp(): Promise<void> {
    for (const worker of this.#workers) await worker.whenCaughtUp();
  }

  async dispose(): Promise<void> {
    await this.#decoder?.dispose();
    await Promise.all(this.#workers.map((worker) => worker.stop()));
  }
}

/** One worker thread and the tracks it decodes. */
class DecoderWorker {
  readonly tracks = new Map<number, WorkerTrack>();
  /** Why the worker stopped, once it has. */
  failure: Error | undefined;
  readonly #worker = new Worker(new URL("./local_worker.ts", import.meta.url).href, {
    type: "module",
  });
  readonly #maxLagSeconds: number;
  readonly #ring = SharedRing.create(RING_BYTES);
  /** {@link COUNTERS}, shared with the worker. */
  readonly #counters = new Int32Array(new SharedArrayBuffer(4 * COUNTER_SLOTS));
  /** Commands waiting for the next flush (or for room in the ring), in order, with their µ-law bytes. */
  #outbox: Array<[Uint8Array, number]> = [];
  /** µ-law bytes in {@link #outbox}. */
  #outboxAudioBytes = 0;
  /** µ-law bytes put in the ring so far, wrapping like {@link COUNTERS.decodedBytes}. */
  #ringAudioBytes = 0;
  /** Flushes not yet all decoded: [{@link #ringAudioBytes} after it, when (performance.now())]. */
  #inFlight: Array<[number, number]> = [];
  #sendTimer: ReturnType<typeof setTimeout> | undefined;
  #loaded: PromiseWithResolvers<void> = Promise.withResolvers();
  #stopped: PromiseWithResolvers<void> | null = null;
  /** Asked for the worker's stats, answered in order. */
  #stats: Array<PromiseWithResolvers<number>> = [];

  constructor(maxLagSeconds: number) {
    this.#maxLagSeconds = maxLagSeconds;
    this.#worker.onmessage = ({ data }: MessageEvent<FromWorker>) => this.#receive(data);
    this.#worker.onerror = (event) => {
      // A fault in one worker ends its own tracks only; the server and other workers go on.
      event.preventDefault();
      this.#fail(new Error(`local engine worker failed: ${event.message}`));
    };
  }

  load(model: ModelFiles, options: LocalEngineOptions): Promise<void> {
    const message: LoadMessage = {
      model,
      options,
      ring: this.#ring.buffer,
      counters: this.#counters.buffer as SharedArrayBuffer,
    };
    this.#worker.postMessage(message);
    return this.#loaded.promise;
  }

  /** Throws (before anything is sent) on a track the worker could not read, see {@link encodeCommand}. */
  open(
    id: number,
    track: Track,
    sink: TranscriptSink,
    keyterms?: readonly string[],
  ): WorkerTrack {
    const command = encodeCommand({ op: "open", id, track, keyterms });
    const opened = new WorkerTrack(this, id, track, sink);
    this.tracks.set(id, opened);
    this.#enqueue(command);
    return opened;
  }

  /** Sends a command now, after the audio queued before it (a close ends the track after all its audio). */
  post(command: Exclude<DecoderCommand, { op: "audio" | "open" }>): void {
    this.#enqueue(encodeCommand(command));
  }

  #enqueue(command: Uint8Array): void {
    this.#outbox.push([command, 0]);
    this.#flush();
  }

  /** Queues a track's audio for the next flush. */
  sendAudio(id: number, mulaw: Uint8Array): void {
    this.#outbox.push([encodeCommand({ op: "audio", id, mulaw }), mulaw.length]);
    this.#outboxAudioBytes += mulaw.length;
    this.#sendTimer ??= setTimeout(() => this.#flush(), SEND_MS);
  }

  /** Moves the outbox into the ring, as far as there is room, and wakes the worker once. */
  #flush(): void {
    clearTimeout(this.#sendTimer);
    this.#sendTimer = undefined;
    let written = 0;
    for (const [command, audioBytes] of this.#outbox) {
      if (!this.#ring.tryWrite(command)) break;
      written++;
      this.#outboxAudioBytes -= audioBytes;
      this.#ringAudioBytes = (this.#ringAudioBytes + audioBytes) | 0;
    }
    if (written) {
      this.#outbox.splice(0, written);
      this.#inFlight.push([this.#ringAudioBytes, performance.now()]);
      this.#ring.notify();
    }
    // The ring is full (the worker is far behind): try again in a tick.
    if (this.#outbox.length) this.#sendTimer = setTimeout(() => this.#flush(), SEND_MS);
  }

  /** µ-law bytes sent and not yet decoded; drops the flushes the worker has decoded. */
  #lagBytes(): number {
    const decoded = Atomics.load(this.#counters, COUNTERS.decodedBytes);
    while (this.#inFlight.length && ((this.#inFlight[0][0] - decoded) | 0) <= 0) {
      this.#inFlight.shift();
    }
    return this.#outboxAudioBytes + ((this.#ringAudioBytes - decoded) | 0);
  }

  decodeDelayMs(): number {
    this.#lagBytes();
    const oldest = this.#inFlight[0];
    return oldest ? performance.now() - oldest[1] : 0;
  }

  /** The worker's count of decoded chunks, once it has handled the audio sent before (0 once failed). */
  chunksDecoded(): Promise<number> {
    if (this.failure) return Promise.resolve(0);
    const answer = Promise.withResolvers<number>();
    this.#stats.push(answer);
    this.post({ op: "stats" });
    return answer.promise;
  }

  /**
   * Resolves once at most {@link CAUGHT_UP_SECONDS} per track are queued and
   * not decoded. It checks every {@link SEND_MS}: the worker tells the
   * engine nothing as it decodes, and a sender that is ahead by a second
   * loses nothing to a few ms more.
   */
  async whenCaughtUp(): Promise<void> {
    while (!this.failure && this.lagSeconds() > CAUGHT_UP_SECONDS) await sleep(SEND_MS);
  }

  /** Seconds of audio per open track queued for this worker and not yet decoded. */
  lagSeconds(): number {
    return this.#lagBytes() / 8000 / Math.max(1, this.tracks.size);
  }

  get maxLagSeconds(): number {
    return this.#maxLagSeconds;
  }

  terminate(): void {
    this.#worker.terminate();
    this.#fail(new Error("local engine stopped"), false);
  }

  /**
   * Stops the worker once it is between commands (it skips the audio still
   * queued; at most 2 s), then terminates it: a process that exits while a
   * worker is inside sherpa-onnx aborts in ONNX Runtime.
   */
  async stop(): Promise<void> {
    if (!this.failure) {
      Atomics.store(this.#counters, COUNTERS.stopping, 1);
      this.#stopped = Promise.withResolvers();
      this.post({ op: "stop" });
      await waitAtMost(this.#stopped.promise, 2000);
    }
    this.terminate();
  }

  #receive(message: FromWorker): void {
    switch (message.op) {
      case "loaded":
        return this.#loaded.resolve();
      case "stopped":
        return this.#stopped?.resolve();
      case "stats":
        return this.#stats.shift()?.resolve(message.chunksDecoded);
      case "loadFailed":
        return this.#loaded.reject(
          message.userError ? new UserError(message.message) : new Error(message.message),
        );
      case "transcript":
        return this.tracks.get(message.id)?.sink.onTranscript(message.transcript);
      case "error":
        return this.tracks.get(message.id)?.sink.onError?.(new Error(message.message));
      case "closed":
        this.tracks.get(message.id)?.closed.resolve();
        this.tracks.delete(message.id);
        return;
    }
  }

  #fail(error: Error, report = true): void {
    if (this.failure) return;
    this.failure = error;
    // Audio still queued has nowhere to go.
    clearTimeout(this.#sendTimer);
    this.#sendTimer = undefined;
    this.#outbox = [];
    this.#outboxAudioBytes = 0;
    this.#loaded.reject(error);
    this.#loaded.promise.catch(() => {});
    for (const answer of this.#stats.splice(0)) answer.resolve(0);
    for (const track of this.tracks.values()) {
      if (report) track.sink.onError?.(error);
      track.closed.resolve();
    }
    this.tracks.clear();
  }
}

/** A track decoded in a worker: audio is batched here and sent; close waits for the final. */
class WorkerTrack implements TrackTranscriber {
  readonly sink: TranscriptSink;
  readonly closed: PromiseWithResolvers<void> = Promise.withResolvers();
  #worker: DecoderWorker;
  #id: number;
  #track: Track;
  /** Frame by frame, as the decoder takes it; a worker still gets one message per tick. */
  #batcher = new ByteBatcher(FRAME_BYTES);
  #dropping = false;
  #closing = false;

  constructor(worker: DecoderWorker, id: number, track: Track, sink: TranscriptSink) {
    this.#worker = worker;
    this.#id = id;
    this.#track = track;
    this.sink = sink;
  }

  write(mulaw: Uint8Array): void {
    if (this.#closing || this.#worker.failure) return;
    this.#batcher.push(mulaw, (batch) => this.#send(batch));
  }

  close(): Promise<void> {
    if (!this.#closing && !this.#worker.failure) {
      this.#closing = true;
      this.#send(this.#batcher.drain());
      this.#worker.post({ op: "close", id: this.#id });
    }
    return this.closed.promise;
  }

  /**
   * Sends `batch` to the worker, unless the worker already has more than
   * `maxLagSeconds` per track queued and not decoded (counted in bytes
   * sent minus bytes the worker reports decoded, so audio sent faster than
   * real time is fine as long as decoding keeps up).
   */
  #send(batch: Uint8Array): void {
    if (batch.length === 0) return;
    const lag = this.#worker.lagSeconds();
    if (
      lag > this.#worker.maxLagSeconds || (this.#dropping && lag > this.#worker.maxLagSeconds / 2)
    ) {
      if (!this.#dropping) {
        this.sink.onError?.(
          new Error(
            `local engine: ${
              Math.round(lag)
            } s of audio per track are queued and not yet decoded on the ${this.#track} ` +
              `track's worker (this machine cannot keep up); audio is dropped until it catches ` +
              `up. Take fewer calls at once, or set SHERPA_WORKERS to the number of cores.`,
          ),
        );
      }
      this.#dropping = true;
      return;
    }
    this.#dropping = false;
    this.#worker.sendAudio(this.#id, batch);
  }
}

/** What open() returns when every worker has failed: says so once, takes nothing. */
class FailedTrack implements TrackTranscriber {
  constructor(sink: TranscriptSink, failure: Error) {
    queueMicrotask(() => sink.onError?.(failure));
  }
  write(): void {}
  close(): Promise<void> {
    return Promise.resolve();
  }
}
