/**
 * Which servers sharing one SQLite database are alive: each holds an OS
 * file lock on `<DATA_DIR>/instances/<id>.lock` for as long as it runs. The
 * OS releases the lock when the process ends, even when it is killed, so a
 * lock another process can take belongs to a server that is gone, and a
 * lock it cannot take to one that is still serving calls.
 *
 * @module
 */
import { join } from "node:path";

/** A server's hold on its instance lock file. */
export class InstanceLock {
  readonly #file: Deno.FsFile;
  readonly #path: string;
  #held = true;

  private constructor(file: Deno.FsFile, path: string) {
    this.#file = file;
    this.#path = path;
  }

  /**
   * Takes the lock of instance `id` in `dataDir` (creating the folder) and
   * removes the lock files of instances that are gone.
   */
  static acquire(dataDir: string, id: string): InstanceLock {
    const dir = join(dataDir, "instances");
    Deno.mkdirSync(dir, { recursive: true });
    for (const entry of Deno.readDirSync(dir)) {
      if (entry.isFile && entry.name.endsWith(".lock") && entry.name !== `${id}.lock`) {
        InstanceLock.isAlive(dataDir, entry.name.slice(0, -".lock".length));
      }
    }
    const path = join(dir, `${id}.lock`);
    const file = Deno.openSync(path, { read: true, write: true, create: true });
    if (!file.tryLockSync(true)) {
      file.close();
      throw new Error(`instance ${id} is already running (${path} is locked)`);
    }
    return new InstanceLock(file, path);
  }

  /**
   * True while the server of instance `id` runs (its lock is held by a
   * process). A lock found free is the file of a gone server: it is removed.
   */
  static isAlive(dataDir: string, id: string): boolean {
    const path = join(dataDir, "instances", `${id}.lock`);
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(path, { read: true, write: true });
    } catch {
      // No lock file: the server stopped cleanly, or never ran with this folder.
      return false;
    }
    try {
      if (!file.tryLockSync(true)) return true;
      try {
        Deno.removeSync(path);
      } catch {
        // Another server removed it first, or the OS keeps open files (Windows): harmless.
      }
      return false;
    } finally {
      file.close();
    }
  }

  /** Releases the lock and removes its file (the server stopped cleanly). */
  release(): void {
    if (!this.#held) return;
    this.#held = false;
    try {
      Deno.removeSync(this.#path);
    } catch {
      // Already gone.
    }
    this.#file.close();
  }
}
