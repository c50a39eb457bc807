/**
 * Downloads a model's release archive into the cache: streamed to a temp file
 * in the cache dir, its SHA-256 checked, unpacked with the system `tar` into a
 * temp folder in the cache dir, checked, and only then renamed into place, so a
 * crash never leaves a half model under the final name. Temp names start with
 * `.partial-`; leftovers older than a day are removed by the next download.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { basename, dirname, join } from "node:path";
import { isDir, tryFindModelFiles } from "./model_files.ts";

/**
 * Download progress: bytes received so far and the total from Content-Length
 * (undefined when the server sends none). The last call has `received === total`.
 * `end`, when present, is called once the download is over, also after a failure.
 */
export type ProgressCallback = ((received: number, total: number | undefined) => void) & {
  end?: () => void;
};

/** `.onnx` files smaller than this are not models (Git LFS pointers, error pages). */
const MIN_ONNX_BYTES = 16 * 1024;
/** A download that receives nothing for this long is abandoned. */
const IDLE_TIMEOUT_MS = 60_000;
/** Leftover temp files of crashed downloads older than this are removed. */
const STALE_TEMP_MS = 24 * 60 * 60 * 1000;
const TEMP_PREFIX = ".partial-";

/** A download step failed; the message is the reason shown to the user. */
export class DownloadError extends Error {}

export interface DownloadJob {
  name: string;
  url: string;
  cacheDir: string;
  target: string;
  sha256?: string;
  size?: number;
  fetch: typeof fetch;
  onProgress?: ProgressCallback;
  tar: string;
}

export async function downloadModel(job: DownloadJob): Promise<void> {
  try {
    await Deno.mkdir(job.cacheDir, { recursive: true });
  } catch (error) {
    throw new DownloadError(`cannot create ${job.cacheDir}: ${errorText(error)}`);
  }
  await removeStaleTemps(job.cacheDir);
  const tag = `${TEMP_PREFIX}${job.name}-${Date.now().toString(36)}-${
    crypto.randomUUID().slice(0, 8)
  }`;
  const archive = join(job.cacheDir, `${tag}.tar.bz2`);
  const unpackDir = join(job.cacheDir, tag);
  try {
    const digest = await fetchToFile(job, archive);
    if (job.sha256 && digest !== job.sha256) {
      throw new DownloadError(
        `checksum mismatch for ${job.url}: expected sha256 ${job.sha256}, got ${digest}`,
      );
    }
    await Deno.mkdir(unpackDir);
    await untar(job.tar, archive, unpackDir);
    await Deno.remove(archive);
    const modelDir = pickUnpackedFolder(unpackDir, job.name);
    const files = tryFindModelFiles(modelDir);
    if (!files) {
      throw new DownloadError(
        `the archive from ${job.url} has no sherpa-onnx streaming transducer (encoder, decoder, joiner .onnx and tokens.txt)`,
      );
    }
    for (const path of [files.encoder, files.decoder, files.joiner]) {
      checkOnnx(path);
    }
    await moveIntoPlace(modelDir, job.target);
  } finally {
    await Deno.remove(archive).catch(() => {});
    await Deno.remove(unpackDir, { recursive: true }).catch(() => {});
  }
}

/** Streams the response to `path`; returns the body's SHA-256 (hex). */
async function fetchToFile(job: DownloadJob, path: string): Promise<string> {
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const armTimer = () => {
    clearTimeout(timer);
    timer = setTimeout(() => controller.abort(), IDLE_TIMEOUT_MS);
  };
  let file: Deno.FsFile | undefined;
  try {
    armTimer();
    let response: Response;
    try {
      response = await job.fetch(job.url, { signal: controller.signal });
    } catch (error) {
      throw new DownloadError(`cannot reach ${job.url}: ${errorText(error)}`);
    }
    if (!response.ok || !response.body) {
      await response.body?.cancel();
      throw new DownloadError(
        `HTTP ${response.status}${
          response.statusText ? ` ${response.statusText}` : ""
        } from ${job.url}`,
      );
    }
    const lengthHeader = response.headers.get("content-length");
    const encoded = Boolean(response.headers.get("content-encoding"));
    const total = lengthHeader && !encoded ? Number(lengthHeader) : undefined;
    if (job.size !== undefined && total !== undefined && total !== job.size) {
      await response.body.cancel();
      throw new DownloadError(
        `${job.url} is ${total} bytes, expected ${job.size}: not the published archive`,
      );
    }
    file = await Deno.open(path, { write: true, createNew: true });
    const hash = createHash("sha256");
    let received = 0;
    job.onProgress?.(0, total);
    try {
      for await (const chunk of response.body) {
        armTimer();
        hash.update(chunk);
        for (let off = 0; off < chunk.length;) off += await file.write(chunk.subarray(off));
        received += chunk.length;
        job.onProgress?.(received, total);
      }
    } catch (error) {
      throw new DownloadError(
        `download of ${job.url} broke off after ${received} bytes: ${
          controller.signal.aborted ? "no data for 60 s" : errorText(error)
        }`,
      );
    }
    if (total !== undefined && received !== total) {
      throw new DownloadError(
        `download of ${job.url} was cut short: got ${received} of ${total} bytes`,
      );
    }
    if (job.size !== undefined && received !== job.size) {
      throw new DownloadError(
        `${job.url} is ${received} bytes, expected ${job.size}: not the published archive`,
      );
    }
    if (total === undefined) job.onProgress?.(received, received);
    return hash.digest("hex");
  } finally {
    clearTimeout(timer);
    file?.close();
  }
}

async function untar(tar: string, archive: string, into: string): Promise<void> {
  // Run inside the target folder with a relative archive path: GNU tar would take
  // a Windows drive letter ("C:") for a remote host.
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(tar, {
      args: ["-xjf", join("..", basename(archive))],
      cwd: into,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new DownloadError(
        `the "${tar}" command was not found; it is needed to unpack the .tar.bz2 archive`,
      );
    }
    throw new DownloadError(`cannot run "${tar}": ${errorText(error)}`);
  }
  if (!output.success) {
    const detail = new TextDecoder().decode(output.stderr).trim().split("\n").slice(-2).join(" ");
    throw new DownloadError(
      `the archive could not be unpacked (${tar} exited with ${output.code}${
        detail ? `: ${detail}` : ""
      }); it may be damaged or incomplete`,
    );
  }
}

/** The model folder inside the unpacked archive: `<name>/`, its only folder, or the top. */
function pickUnpackedFolder(unpackDir: string, name: string): string {
  if (isDir(join(unpackDir, name))) return join(unpackDir, name);
  const entries = [...Deno.readDirSync(unpackDir)].filter((e) => !e.name.startsWith("."));
  if (entries.length === 1 && entries[0].isDirectory) return join(unpackDir, entries[0].name);
  return unpackDir;
}

function checkOnnx(path: string): void {
  const size = Deno.statSync(path).size;
  let head = "";
  const file = Deno.openSync(path);
  try {
    const buf = new Uint8Array(64);
    const n = file.readSync(buf) ?? 0;
    head = new TextDecoder().decode(buf.subarray(0, n));
  } finally {
    file.close();
  }
  if (size < MIN_ONNX_BYTES || head.startsWith("version https://git-lfs") || /^\s*</.test(head)) {
    throw new DownloadError(`${basename(path)} in the archive is not a model (${size} bytes)`);
  }
}

/**
 * Renames the checked folder to its final name. When another process put a
 * complete model there meanwhile, that one is kept; an incomplete folder left
 * there (by hand) is replaced.
 */
async function moveIntoPlace(from: string, target: string): Promise<void> {
  if (!tryFindModelFiles(target) && isDir(target)) {
    const aside = join(dirname(target), `${TEMP_PREFIX}old-${crypto.randomUUID().slice(0, 8)}`);
    await Deno.rename(target, aside).catch(() => {});
    await Deno.remove(aside, { recursive: true }).catch(() => {});
  }
  if (tryFindModelFiles(target)) return;
  try {
    await Deno.rename(from, target);
  } catch (error) {
    if (tryFindModelFiles(target)) return; // another process won the race
    throw new DownloadError(`cannot move the model into ${target}: ${errorText(error)}`);
  }
}

/** Removes `.partial-*` leftovers of crashed downloads that are over a day old. */
async function removeStaleTemps(cacheDir: string): Promise<void> {
  try {
    for await (const entry of Deno.readDir(cacheDir)) {
      if (!entry.name.startsWith(TEMP_PREFIX)) continue;
      const path = join(cacheDir, entry.name);
      const stat = await Deno.lstat(path).catch(() => undefined);
      const age = stat?.mtime ? Date.now() - stat.mtime.getTime() : 0;
      if (age > STALE_TEMP_MS) await Deno.remove(path, { recursive: true }).catch(() => {});
    }
  } catch {
    // best effort
  }
}

/** An error's message; for fetch's "fetch failed", the cause (DNS, refused, TLS…). */
export function errorText(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause;
  if (cause instanceof Error && cause.message) {
    return cause.message.replace(/^error sending request for url \([^)]*\): /, "");
  }
  return error.message;
}
