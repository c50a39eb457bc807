/**
 * A call recording on disk: a stereo 16-bit PCM WAV at 8 kHz (left:
 * inbound, right: outbound) that grows while the call lasts, and the lock
 * file beside it that says a server is still writing it.
 *
 * The header's sizes are rewritten after each batch, so a crash leaves a
 * file whose header lags its data by one batch at most; {@link repairRecording}
 * sets the sizes from the data on disk. The lock file holds an OS file lock
 * while a server writes: on shared storage an instance tells a live
 * recording of another instance (locked) from one a killed server left (the
 * file is there, but no one holds its lock).
 *
 * @module
 */

/** Samples a second per channel. */
export const RECORDING_RATE = 8000;
/** Bytes of one stereo frame (two 16-bit samples). */
export const FRAME_BYTES = 4;
/** Bytes of the WAV header before the samples. */
export const HEADER_BYTES = 44;
/** Bytes of audio per ms. */
export const BYTES_PER_MS = (RECORDING_RATE * FRAME_BYTES) / 1000;

/** The header of a stereo 16-bit 8 kHz WAV holding `dataBytes` of samples. */
export function stereoWavHeader(dataBytes: number): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES);
  const view = new DataView(out.buffer);
  const text = (at: number, s: string) => {
    for (let i = 0; i < 4; i++) out[at + i] = s.charCodeAt(i);
  };
  text(0, "RIFF");
  view.setUint32(4, 36 + dataBytes, true);
  text(8, "WAVE");
  text(12, "fmt ");
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 2, true); // stereo
  view.setUint32(24, RECORDING_RATE, true);
  view.setUint32(28, RECORDING_RATE * FRAME_BYTES, true);
  view.setUint16(32, FRAME_BYTES, true);
  view.setUint16(34, 16, true);
  text(36, "data");
  view.setUint32(40, dataBytes, true);
  return out;
}

/** Audio bytes a recording of `fileBytes` holds (whole frames only). */
export function recordedBytes(fileBytes: number): number {
  const data = Math.max(0, fileBytes - HEADER_BYTES);
  return data - (data % FRAME_BYTES);
}

/** Duration of a recording file of `fileBytes`, in ms. */
export function recordedMs(fileBytes: number): number {
  return recordedBytes(fileBytes) / BYTES_PER_MS;
}

/**
 * Fixes the header of a recording a killed server left open: sizes set to
 * the whole frames on disk (a torn last frame is cut off). Returns its
 * duration in ms.
 */
export function repairRecording(path: string): number {
  const file = Deno.openSync(path, { read: true, write: true });
  try {
    const { size } = file.statSync();
    const data = recordedBytes(size);
    if (size !== HEADER_BYTES + data) file.truncateSync(HEADER_BYTES + data);
    file.seekSync(0, Deno.SeekMode.Start);
    writeAllSync(file, stereoWavHeader(data));
    return data / BYTES_PER_MS;
  } finally {
    file.close();
  }
}

/**
 * Takes the lock file at `path`: an exclusive OS lock (`flock`; on NFS and
 * SMB a byte-range lock) on `<CallSid>.lock`, which the kernel releases when
 * its process dies, however it dies. Returns the open, locked file (keep it
 * open while writing, then {@link releaseLock}), or null when a live process
 * holds it. `stale` tells whether the file was there already (left by a
 * writer that is gone).
 *
 * Done in place, as are the recording's own opening and closing: a few
 * metadata operations at a call's start. As async ops each was a hop to a
 * blocking thread, and calls starting together kept dozens of those threads
 * (and their memory) alive.
 */
export function takeLock(path: string): { file: Deno.FsFile; stale: boolean } | null {
  for (let attempt = 0; attempt < 3; attempt++) {
    let stale = true;
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(path, { read: true, write: true, createNew: true });
      stale = false;
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
      try {
        file = Deno.openSync(path, { read: true, write: true });
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) continue; // released meanwhile: take it anew
        throw error;
      }
    }
    if (!file.tryLockSync(true)) {
      file.close();
      return null;
    }
    // The holder may have removed the file just before we locked it: then the lock is on a
    // file no one else will open, and the path may already be someone else's.
    const held = file.statSync();
    let named: Deno.FileInfo | null = null;
    try {
      named = Deno.statSync(path);
    } catch {
      // removed meanwhile
    }
    if (named && named.ino === held.ino && named.dev === held.dev) {
      const owner = JSON.stringify({ host: Deno.hostname(), pid: Deno.pid, at: Date.now() });
      file.truncateSync(0);
      writeAllSync(file, new TextEncoder().encode(owner));
      return { file, stale };
    }
    file.close();
  }
  return null;
}

/** Removes a lock taken with {@link takeLock}, then lets it go. */
export function releaseLock(path: string, file: Deno.FsFile): void {
  try {
    Deno.removeSync(path);
  } catch {
    // already gone
  }
  file.close();
}

/** Writes all of `bytes` at the file's position. */
export async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length;) done += await file.write(bytes.subarray(done));
}

/** Writes all of `bytes` at the file's position, in place (for small writes to the page cache). */
export function writeAllSync(file: Deno.FsFile, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.length;) done += file.writeSync(bytes.subarray(done));
}
