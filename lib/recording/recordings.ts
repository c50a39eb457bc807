/**
 * The recordings folder (`$DATA_DIR/recordings`): one `<CallSid>.wav` per
 * call, with a `<CallSid>.lock` beside it while a server writes it. The
 * folder may be shared storage for several instances, so nothing here
 * assumes one process: files are named by Call SID, a live recording is
 * known by the OS lock its server holds on its lock file, and the size limit
 * counts every file.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import { CallRecorder, type TrackLevels } from "./call_recorder.ts";
import { recordedMs, releaseLock, repairRecording, takeLock } from "./recording_file.ts";

/** Options of the recordings folder. */
export interface RecordingsOptions {
  /** The folder (created when needed). */
  dir: string;
  /** `RECORD_CALLS`: off, calls are only measured (quality), nothing is written. */
  enabled: boolean;
  /** `RECORDINGS_MAX_GB` in bytes: past it the oldest recordings are removed. */
  maxBytes: number;
  log: Logger;
  /** Each live call's track levels, once a second. */
  onLevels?: (callSid: string, levels: TrackLevels) => void;
}

/** A recording on disk. */
export interface RecordingInfo {
  path: string;
  bytes: number;
  durationMs: number;
}

/** The folder is scanned for the size limit at most this often (ms)... */
const MIN_SCAN_MS = 5_000;
/** ...and at least this often while calls end, for what other instances wrote (ms). */
const RESCAN_MS = 60_000;

/** Call SIDs are letters and digits (`CA` and 32 hex digits); anything else names no file. */
const SAFE_SID = /^[A-Za-z0-9]{1,64}$/;

/** The recordings of a server. */
export class Recordings {
  readonly dir: string;
  #options: RecordingsOptions;
  #trimming: Promise<void> = Promise.resolve();
  /** The folder's size as of the last scan, plus what this server wrote since. */
  #bytes = 0;
  #scannedAt = -Infinity;

  constructor(options: RecordingsOptions) {
    this.#options = options;
    this.dir = options.dir.replace(/\/+$/, "") || ".";
  }

  /** The folder of a data folder. */
  static folder(dataDir: string): string {
    return `${dataDir.replace(/\/+$/, "") || "."}/recordings`;
  }

  /** True when calls are recorded (`RECORD_CALLS`). */
  get enabled(): boolean {
    return this.#options.enabled;
  }

  /** The WAV path of a call, or null for a SID that cannot name a file. */
  path(callSid: string): string | null {
    return SAFE_SID.test(callSid) ? `${this.dir}/${callSid}.wav` : null;
  }

  /**
   * At server start: repairs every recording a killed server left open
   * (stale lock), then applies the size limit. Returns the repaired SIDs.
   */
  async start(): Promise<string[]> {
    if (!this.enabled) return [];
    await Deno.mkdir(this.dir, { recursive: true });
    const repaired: string[] = [];
    for await (const entry of Deno.readDir(this.dir)) {
      const sid = /^(.+)\.lock$/.exec(entry.name)?.[1];
      const path = sid && this.path(sid);
      if (!path) continue;
      const lockPath = `${this.dir}/${entry.name}`;
      const lock = takeLock(lockPath);
      if (!lock) continue; // a live server (this host or another) is writing it
      try {
        if (!lock.stale) continue; // released meanwhile: that recording was closed properly
        const ms = repairRecording(path);
        this.#options.log.warn(
          `recording ${path} was left open by a stopped server; repaired (${
            (ms / 1000).toFixed(1)
          } s)`,
        );
        repaired.push(sid);
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      } finally {
        releaseLock(lockPath, lock.file);
      }
    }
    await this.trim();
    return repaired;
  }

  /** A recorder for a call starting now (measuring only when recording is off). */
  open(callSid: string): CallRecorder {
    const path = this.enabled ? this.path(callSid) : null;
    const { log, onLevels } = this.#options;
    return new CallRecorder({
      callSid,
      log,
      target: path ? { path, lockPath: path.replace(/\.wav$/, ".lock") } : undefined,
      onLevels: onLevels && ((levels) => onLevels(callSid, levels)),
      onClosed: (bytes) => this.#written(bytes),
    });
  }

  /** A call's recording, or null when it has none. */
  async info(callSid: string): Promise<RecordingInfo | null> {
    const path = this.path(callSid);
    if (!path) return null;
    try {
      const { size, isFile } = await Deno.stat(path);
      return isFile ? { path, bytes: size, durationMs: recordedMs(size) } : null;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return null;
      throw error;
    }
  }

  /** Deletes a call's recording; false when there was none. */
  async remove(callSid: string): Promise<boolean> {
    const path = this.path(callSid);
    if (!path) return false;
    try {
      await Deno.remove(path);
      return true;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return false;
      throw error;
    }
  }

  /**
   * A recording of `bytes` was closed: the folder is scanned again when it
   * may be over the limit (at most every {@link MIN_SCAN_MS}), or when the
   * last scan is older than {@link RESCAN_MS} (other instances write too).
   * Never a scan per call: a folder of many thousand files would make that
   * quadratic.
   */
  #written(bytes: number): void {
    this.#bytes += bytes;
    const since = performance.now() - this.#scannedAt;
    if ((this.#bytes > this.#options.maxBytes && since >= MIN_SCAN_MS) || since >= RESCAN_MS) {
      this.trim().catch((error) => this.#options.log.error(`recordings: ${error.message}`));
    }
  }

  /**
   * Removes the oldest recordings (by last write) until the folder is under
   * `RECORDINGS_MAX_GB`; recordings still being written are kept. Each
   * removal is logged.
   */
  trim(): Promise<void> {
    const run = this.#trimming.then(() => this.#trim());
    this.#trimming = run.catch(() => {});
    return run;
  }

  /** Resolves once the size checks started so far are done (server shutdown waits for them). */
  settled(): Promise<void> {
    return this.#trimming;
  }

  async #trim(): Promise<void> {
    this.#scannedAt = performance.now();
    const files: Array<{ sid: string; path: string; bytes: number; mtime: number }> = [];
    const locked = new Set<string>();
    try {
      for await (const entry of Deno.readDir(this.dir)) {
        const lock = /^(.+)\.lock$/.exec(entry.name)?.[1];
        if (lock) locked.add(lock);
        const sid = /^(.+)\.wav$/.exec(entry.name)?.[1];
        if (!sid || !entry.isFile) continue;
        const path = `${this.dir}/${entry.name}`;
        const stat = await Deno.stat(path).catch(() => null);
        if (stat) files.push({ sid, path, bytes: stat.size, mtime: stat.mtime?.getTime() ?? 0 });
      }
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      throw error;
    }
    let total = files.reduce((sum, f) => sum + f.bytes, 0);
    this.#bytes = total;
    const limit = this.#options.maxBytes;
    if (total <= limit) return;
    files.sort((a, b) => a.mtime - b.mtime);
    for (const file of files) {
      if (total <= limit) break;
      if (locked.has(file.sid)) continue;
      await Deno.remove(file.path).catch(() => {});
      total -= file.bytes;
      this.#bytes = total;
      this.#options.log.warn(
        `recordings over RECORDINGS_MAX_GB (${
          formatGb(limit)
        }): removed the oldest, ${file.path} (${formatMb(file.bytes)})`,
      );
    }
  }
}

function formatGb(bytes: number): string {
  return `${+(bytes / 1e9).toPrecision(3)} GB`;
}

function formatMb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}
