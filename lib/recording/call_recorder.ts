/**
 * One call's recording and audio quality, fed with each track's timeline
 * output (the silence filled into gaps, then the payload) exactly as the
 * transcribers get it.
 *
 * Feeding only queues the bytes: every {@link FLUSH_MS} (and at the end) the
 * queued audio of both tracks is measured, interleaved into stereo and
 * written in one batch, then the WAV header is rewritten. No file operation
 * runs per frame, and a crash loses half a second at most.
 *
 * Both channels advance together up to the audio both tracks have. A track
 * more than {@link MAX_LAG_MS} behind the other (it stopped sending) is
 * padded with silence; when its audio resumes, the timeline has filled the
 * same stretch with silence, which is then skipped.
 *
 * @module
 */
import { MULAW_SILENCE, mulawDecodeSample } from "../audio/mulaw.ts";
import type { CallAudioSummary } from "./call_audio_summary.ts";
import type { Logger } from "../log.ts";
import type { Track } from "../transcribe/engine.ts";
import {
  BYTES_PER_MS,
  HEADER_BYTES,
  releaseLock,
  repairRecording,
  stereoWavHeader,
  takeLock,
  writeAll,
  writeAllSync,
} from "./recording_file.ts";
import { TrackQuality } from "./track_quality.ts";

/**
 * How often queued audio is written (and the most a crash loses), in ms.
 * Half a second, not a second: what every call holds between two writes is
 * halved (at 200 calls, 84–94 → 69–74 KiB a call after a full collection),
 * for two more small writes a second per call.
 */
export const FLUSH_MS = 500;
/** How often each track's level is reported while the call lasts, in ms. */
export const LEVELS_MS = 1000;
/** The most audio one batch writes, in ms (a long gap is written over several batches). */
export const MAX_BATCH_MS = 60_000;
/** A track this far behind the other is padded with silence, in ms. */
export const MAX_LAG_MS = 1000;

/** Each track's level over the last flush (dBFS), null when it received nothing. */
export type TrackLevels = Record<Track, number | null>;

/** Where a call's recording goes; none when recording is off. */
export interface RecordingTarget {
  path: string;
  lockPath: string;
}

/** Options of a {@link CallRecorder}. */
export interface CallRecorderOptions {
  callSid: string;
  /** The files to write; omitted, only quality is measured. */
  target?: RecordingTarget;
  log: Logger;
  /** Each track's level every {@link LEVELS_MS} (or each flush, if longer) while the call lasts. */
  onLevels?: (levels: TrackLevels) => void;
  /** After the recording is closed, with its size in bytes (the folder's limit is checked then). */
  onClosed?: (bytes: number) => void;
  flushMs?: number;
}

/**
 * Payloads are copied into blocks of this many bytes (1.25 flushes' audio)
 * that the recorder owns: a frame is never kept, since holding 50 small objects a
 * second per track until the flush made the garbage collector copy and
 * promote them (the relay's CPU per frame went from 16 to 26 µs at 200
 * calls). After each flush what is left of a track's block moves to its
 * start, so a block holds one flush's audio and a quarter more for a late
 * timer.
 */
const BLOCK_BYTES = FLUSH_MS * 10;

/** One track's audio not yet written. */
interface Channel {
  /** Pieces of blocks, and counts of silence bytes, in timeline order. */
  queue: Array<Uint8Array | number>;
  /** The block payloads are copied into, and what of it is filled and what already queued. */
  block: Uint8Array;
  /**
   * The block before, reused once nothing of it is queued: a new block a
   * second per track lived past the young generation and waited for a full
   * collection to be freed (200 calls kept about 30 MB of them in malloc).
   */
  spare: Uint8Array | null;
  blockFill: number;
  blockQueued: number;
  /** Bytes of `queue[0]` already taken. */
  headOffset: number;
  queued: number;
  /** Bytes already written as padding, to drop from what comes next. */
  skip: number;
  quality: TrackQuality;
}

const LAG_BYTES = MAX_LAG_MS * 8;

/** Records one call; {@link end} it once. */
export class CallRecorder {
  #options: CallRecorderOptions;
  #channels: Record<Track, Channel>;
  #file: Promise<Deno.FsFile | null>;
  /** The file once open, while nothing else is queued on it: a batch is then written at once. */
  #openFile: Deno.FsFile | null = null;
  /** File operations chained on {@link #writing} and not yet done. */
  #queuedOps = 0;
  /** Audio bytes in the file before this call (a call that restarted appends). */
  #existingBytes = 0;
  #writtenBytes = 0;
  #writing: Promise<void> = Promise.resolve();
  #timer: ReturnType<typeof setTimeout>;
  /** Flushes between two level reports, and those since the last. */
  #flushesPerLevel: number;
  #flushesSinceLevel = 0;
  #ended: Promise<CallAudioSummary> | null = null;
  #failed = false;
  /** The locked lock file, held while the recording is written. */
  #lock: Deno.FsFile | null = null;
  /** Frames (per channel) handed to the file so far. */
  #takenFrames = 0;
  /** Spans to silence not yet taken from the queue, in frames of the call. */
  #silences: Array<{ channel: 0 | 1; start: number; end: number }> = [];

  constructor(options: CallRecorderOptions) {
    this.#options = options;
    const channel = (): Channel => ({
      queue: [],
      block: new Uint8Array(BLOCK_BYTES),
      spare: null,
      blockFill: 0,
      blockQueued: 0,
      headOffset: 0,
      queued: 0,
      skip: 0,
      quality: new TrackQuality(),
    });
    this.#channels = { inbound: channel(), outbound: channel() };
    let file: Deno.FsFile | null = null;
    if (options.target) {
      try {
        file = this.#open(options.target);
      } catch (error) {
        this.#fail(error as Error);
      }
    }
    this.#openFile = file;
    this.#file = Promise.resolve(file);
    // Calls that start together (a load balancer's burst) flush at different moments: their
    // batches, done in one tick, would hold up every stream's frames.
    const flushMs = options.flushMs ?? FLUSH_MS;
    this.#flushesPerLevel = Math.max(1, Math.round(LEVELS_MS / flushMs));
    this.#timer = setTimeout(() => {
      this.#timer = setInterval(() => this.#flush(false), flushMs);
      this.#flush(false);
    }, Math.random() * flushMs);
  }

  /** Queues `silenceBytes` of filled gap, then a copy of `payload`. */
  write(track: Track, silenceBytes: number, payload: Uint8Array): void {
    if (this.#ended) return;
    const channel = this.#channels[track];
    if (silenceBytes > 0) {
      sealBlock(channel);
      channel.queue.push(silenceBytes);
      channel.queued += silenceBytes;
      channel.quality.addGap(silenceBytes / 8);
    }
    if (channel.blockFill + payload.length > channel.block.length) {
      nextBlock(channel, payload.length);
    }
    channel.block.set(payload, channel.blockFill);
    channel.blockFill += payload.length;
    channel.queued += payload.length;
  }

  /**
   * Silences `[startMs, endMs)` of a track (redacted words): audio still
   * queued is zeroed as it is written, audio already written is overwritten
   * in the file. Every other sample stays as it was.
   */
  silence(track: Track, startMs: number, endMs: number): void {
    if (this.#ended) {
      this.#options.log.error(
        `call ${this.#options.callSid}: redacted words came after its recording was closed; ` +
          `${track} ${startMs}-${endMs} ms is not silenced`,
      );
      return;
    }
    const channel = track === "inbound" ? 0 : 1;
    const start = Math.max(0, Math.floor(startMs * 8));
    const end = Math.ceil(endMs * 8);
    if (end <= start) return;
    if (start < this.#takenFrames) {
      const upTo = Math.min(end, this.#takenFrames);
      this.#queue(() => this.#zero(channel, start, upTo));
    }
    if (end > this.#takenFrames) {
      this.#silences.push({ channel, start: Math.max(start, this.#takenFrames), end });
    }
  }

  /** Zeroes one channel's frames `[start, end)` already in the file (within what it holds). */
  async #zero(channel: 0 | 1, start: number, end: number): Promise<void> {
    const file = await this.#file;
    if (!file || this.#failed) return;
    const frames = Math.min(end, this.#writtenBytes / 4) - start;
    if (frames <= 0) return;
    const at = HEADER_BYTES + this.#existingBytes + start * 4;
    const data = new Uint8Array(frames * 4);
    file.seekSync(at, Deno.SeekMode.Start);
    for (let done = 0; done < data.length;) {
      const n = await file.read(data.subarray(done));
      if (n === null) break;
      done += n;
    }
    const pcm = new Int16Array(data.buffer);
    for (let i = channel; i < pcm.length; i += 2) pcm[i] = 0;
    file.seekSync(at, Deno.SeekMode.Start);
    await writeAll(file, data);
  }

  /** Writes what is queued, closes the file and releases its lock; the call's audio summary. */
  end(): Promise<CallAudioSummary> {
    this.#ended ??= (async () => {
      clearTimeout(this.#timer); // the first flush or, once it ran, the interval (one set of timer ids)
      // One batch at a time: memory stays bounded however much is queued.
      while (this.#flush(true) > 0) await this.#writing;
      await this.#writing;
      const file = await this.#file;
      if (file) {
        this.#openFile = null;
        file.close();
        releaseLock(this.#options.target!.lockPath, this.#lock!);
        this.#options.onClosed?.(HEADER_BYTES + this.#existingBytes + this.#writtenBytes);
      }
      return {
        quality: {
          inbound: this.#channels.inbound.quality.stats(),
          outbound: this.#channels.outbound.quality.stats(),
        },
        recordedMs: file && !this.#failed
          ? (this.#existingBytes + this.#writtenBytes) / BYTES_PER_MS
          : null,
      };
    })();
    return this.#ended;
  }

  /** Takes the lock (or a stale one), then opens the WAV (repairing and appending to an old one). */
  #open(target: RecordingTarget): Deno.FsFile | null {
    const lock = takeLock(target.lockPath);
    if (!lock) {
      this.#options.log.warn(
        `call ${this.#options.callSid} is not recorded here: another server is recording it (${target.lockPath})`,
      );
      return null;
    }
    this.#lock = lock.file;
    try {
      return this.#openWav(target.path);
    } catch (error) {
      releaseLock(target.lockPath, lock.file);
      this.#lock = null;
      throw error;
    }
  }

  #openWav(path: string): Deno.FsFile {
    try {
      const file = Deno.openSync(path, { read: true, write: true, createNew: true });
      writeAllSync(file, stereoWavHeader(0));
      return file;
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
      // The same call again (its stream restarted): keep what was recorded, append to it.
      this.#existingBytes = repairRecording(path) * BYTES_PER_MS;
      return Deno.openSync(path, { read: true, write: true });
    }
  }

  /**
   * Measures the queued audio and queues its write: what both tracks have
   * (all of it at the end), at most {@link MAX_BATCH_MS} at once so that a
   * long gap never becomes one huge buffer. Returns the bytes per track taken.
   */
  #flush(final: boolean): number {
    const { inbound, outbound } = this.#channels;
    sealBlock(inbound);
    sealBlock(outbound);
    const available = (c: Channel) => Math.max(0, c.queued - c.skip);
    let bytes = Math.min(available(inbound), available(outbound));
    const lead = Math.max(available(inbound), available(outbound));
    if (final || lead - bytes > LAG_BYTES) bytes = lead;
    bytes = Math.min(bytes, MAX_BATCH_MS * 8);
    const left = this.#take(inbound, bytes, scratchBytes("left", bytes));
    const right = this.#take(outbound, bytes, scratchBytes("right", bytes));
    compactBlock(inbound);
    compactBlock(outbound);
    if (!final && ++this.#flushesSinceLevel >= this.#flushesPerLevel) {
      this.#flushesSinceLevel = 0;
      this.#options.onLevels?.({
        inbound: inbound.quality.takeLevel(),
        outbound: outbound.quality.takeLevel(),
      });
    }
    const first = this.#takenFrames;
    this.#takenFrames += bytes;
    if (bytes === 0 || !this.#options.target || this.#failed) return bytes;
    // Written at once from the shared scratch when the file is free (the usual case: no batch
    // allocated per call per flush); otherwise a copy waits its turn.
    const now = this.#openFile !== null && this.#queuedOps === 0;
    // Interleaved 16-bit little-endian (every platform Deno runs on is little-endian).
    const pcm = now ? scratchPcm(bytes * 2) : new Int16Array(bytes * 2);
    for (let i = 0, j = 0; i < bytes; i++, j += 2) {
      pcm[j] = mulawDecodeSample(left[i]);
      pcm[j + 1] = mulawDecodeSample(right[i]);
    }
    if (this.#silences.length) this.#silenceBatch(pcm, first, first + bytes);
    const data = new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength);
    if (now) {
      try {
        this.#append(this.#openFile!, data);
      } catch (error) {
        this.#fail(error as Error);
      }
    } else {
      this.#queue(async () => {
        const file = await this.#file;
        if (file) this.#append(file, data);
      });
    }
    return bytes;
  }

  /** Zeroes the pending silences within frames `[first, last)` of a batch; drops those done. */
  #silenceBatch(pcm: Int16Array, first: number, last: number): void {
    for (const span of this.#silences) {
      for (let f = Math.max(span.start, first); f < Math.min(span.end, last); f++) {
        pcm[(f - first) * 2 + span.channel] = 0;
      }
    }
    this.#silences = this.#silences.filter((span) => span.end > last);
  }

  /** Chains a file operation after those queued; a failure stops the recording. */
  #queue(operation: () => Promise<void>): void {
    this.#queuedOps++;
    this.#writing = this.#writing.then(operation).catch((error) => this.#fail(error)).finally(
      () => this.#queuedOps--,
    );
  }

  /** `bytes` of a channel's timeline into `out` (silence where it has none yet, owed as skip). */
  #take(channel: Channel, bytes: number, out: Uint8Array): Uint8Array {
    out.fill(MULAW_SILENCE);
    let at = 0;
    while (channel.queue.length && (channel.skip > 0 || at < bytes)) {
      const item = channel.queue[0];
      const length = typeof item === "number" ? item : item.length;
      const used = Math.min(
        length - channel.headOffset,
        channel.skip > 0 ? channel.skip : bytes - at,
      );
      if (typeof item !== "number") {
        const part = item.subarray(channel.headOffset, channel.headOffset + used);
        channel.quality.addAudio(part);
        if (channel.skip === 0) out.set(part, at);
      }
      if (channel.skip > 0) channel.skip -= used;
      else at += used;
      channel.queued -= used;
      channel.headOffset += used;
      if (channel.headOffset === length) {
        channel.queue.shift();
        channel.headOffset = 0;
      }
    }
    channel.skip += bytes - at;
    return out;
  }

  #append(file: Deno.FsFile, data: Uint8Array): void {
    if (this.#failed) return;
    // Seeking only sets the file's offset (no disk or network I/O, even on NFS), so it is done
    // in place: as async ops, the two seeks cost the relay about 7% of its CPU. The batch (16
    // KB) and the header go to the page cache in place too: an async file write is a hop to a
    // blocking thread and back, about 4× the CPU of the write itself (measured: 80 against 20 µs
    // a batch of a second), twice a second per call.
    file.seekSync(HEADER_BYTES + this.#existingBytes + this.#writtenBytes, Deno.SeekMode.Start);
    writeAllSync(file, data);
    this.#writtenBytes += data.length;
    file.seekSync(0, Deno.SeekMode.Start);
    writeAllSync(file, stereoWavHeader(this.#existingBytes + this.#writtenBytes));
  }

  /** A disk problem stops the recording (said once); the call and its quality go on. */
  #fail(error: Error): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#options.log.error(
      `recording of call ${this.#options.callSid} stopped: ${error.message}; the call goes on`,
    );
  }
}

/** Scratch space of {@link CallRecorder}'s flush, shared by every call (one flush runs at a time). */
const scratch = { left: new Uint8Array(0), right: new Uint8Array(0), pcm: new Int16Array(0) };

/** A batch longer than this (a long gap, the end of a call) gets arrays of its own, not kept. */
const SCRATCH_MAX_BYTES = 4 * BLOCK_BYTES;

/** `length` bytes of one channel's scratch. */
function scratchBytes(which: "left" | "right", length: number): Uint8Array {
  if (length > SCRATCH_MAX_BYTES) return new Uint8Array(length);
  if (scratch[which].length < length) scratch[which] = new Uint8Array(length);
  return scratch[which].subarray(0, length);
}

/** `length` samples of the shared interleaving scratch. */
function scratchPcm(length: number): Int16Array {
  if (length > 2 * SCRATCH_MAX_BYTES) return new Int16Array(length);
  if (scratch.pcm.length < length) scratch.pcm = new Int16Array(length);
  return scratch.pcm.subarray(0, length);
}

/** Seals a channel's full block and starts another with room for `bytes`: its spare when free. */
function nextBlock(channel: Channel, bytes: number): void {
  sealBlock(channel);
  const full = channel.block;
  const spare = channel.spare;
  const free = spare !== null && spare.length >= bytes &&
    !channel.queue.some((item) => typeof item !== "number" && item.buffer === spare.buffer);
  channel.block = free ? spare : new Uint8Array(Math.max(BLOCK_BYTES, bytes));
  // A payload larger than a block got one of its own: not kept.
  channel.spare = full.length === BLOCK_BYTES ? full : free ? null : spare;
  channel.blockFill = 0;
  channel.blockQueued = 0;
}

/**
 * Moves what a flush left of a channel's block (a frame the other track has
 * not matched yet, or nothing) to the block's start: each track then keeps
 * one block, not a block and a spare. Left as it is while audio of an earlier block is still queued.
 */
function compactBlock(channel: Channel): void {
  const block = channel.block;
  let start = channel.blockFill;
  for (let i = 0; i < channel.queue.length; i++) {
    const item = channel.queue[i];
    if (typeof item === "number") continue;
    if (item.buffer !== block.buffer) return;
    start = Math.min(start, item.byteOffset + (i === 0 ? channel.headOffset : 0));
  }
  if (start === 0) return;
  block.copyWithin(0, start, channel.blockFill);
  channel.queue = channel.queue.map((item, i) => {
    if (typeof item === "number") return item;
    const from = item.byteOffset + (i === 0 ? channel.headOffset : 0) - start;
    return block.subarray(from, item.byteOffset + item.length - start);
  });
  if (typeof channel.queue[0] !== "number") channel.headOffset = 0;
  channel.blockFill -= start;
  channel.blockQueued -= start;
}

/** Queues the part of a channel's block filled since it was last queued. */
function sealBlock(channel: Channel): void {
  if (channel.blockFill === channel.blockQueued) return;
  channel.queue.push(channel.block.subarray(channel.blockQueued, channel.blockFill));
  channel.blockQueued = channel.blockFill;
}
