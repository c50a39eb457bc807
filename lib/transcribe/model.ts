/**
 * Finds the sherpa-onnx streaming transducer model on disk and, on a user's
 * machine, downloads it on first use.
 *
 * Resolution order (see {@link resolveModel}):
 * 1. `SHERPA_MODEL_DIR` (`modelDir`), used as is;
 * 2. the configured model's folder (`modelName`) under the shared models folder
 *    (`<projectRoot>/../shared/models/`);
 * 3. when the model name was not set explicitly, any streaming transducer folder in
 *    the shared models folder (so the offline demo and CI find what is there);
 * 4. `<cacheDir>/<modelName>`;
 * 5. a download of the release archive into the cache dir.
 *
 * The download is streamed to a temp file in the cache dir, its SHA-256 checked,
 * unpacked with the system `tar` into a temp folder in the cache dir, checked,
 * and only then renamed into place, so a crash never leaves a half model under
 * the final name. Temp names start with `.partial-`; leftovers older than a day
 * are removed by the next download.
 *
 * Pinned checksum: the default model's archive
 * (`sherpa-onnx-streaming-zipformer-en-20M-2023-02-17.tar.bz2` of the k2-fsa/sherpa-onnx
 * `asr-models` release) is pinned to SHA-256
 * `9c559283e8498d3fe95913c79ca1cb454bb26281ac2b102b41306c7d752765d9` and 127,887,156 bytes.
 * The k2-fsa release page could not be reached from where this was written, so the
 * values come from public projects that pin the same asset independently and agree:
 * about ten repositories' download scripts, manifests and tests carry that SHA-256
 * (one says it was checked against the `checksum.txt` published with the release and
 * re-hashed from the download), and three of them give the size 127,887,156 bytes.
 * The pin applies when the archive comes from the official URL (or when `sha256` is
 * passed). Other models and custom URLs (`SHERPA_MODEL_URL`) have no pin; for them the
 * archive is checked by unpacking it, finding encoder/decoder/joiner/tokens, and
 * requiring each `.onnx` to be a real file (not a Git LFS pointer or an HTML page).
 *
 * This file does not import sherpa-onnx: it only deals with files.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The four files an `OnlineRecognizer` transducer needs, as absolute paths. */
export interface ModelFiles {
  /** The model folder. */
  dir: string;
  /** The folder's name (the model's name for release archives). */
  name: string;
  encoder: string;
  decoder: string;
  joiner: string;
  tokens: string;
}

/** Paths (absolute, or relative to the model folder) that replace the found files. */
export type ModelOverrides = Partial<Record<"encoder" | "decoder" | "joiner" | "tokens", string>>;

/** Where {@link resolveModel} found the model. */
export type ModelSource = "env" | "shared" | "cache" | "download";

/** A resolved model and where it came from. */
export type ResolvedModel = ModelFiles & { source: ModelSource };

/**
 * Download progress: bytes received so far and the total from Content-Length
 * (undefined when the server sends none). The last call has `received === total`.
 * `end`, when present, is called once the download is over, also after a failure.
 */
export type ProgressCallback = ((received: number, total: number | undefined) => void) & {
  end?: () => void;
};

/** A model that cannot be found, downloaded or used; the message says what to do. */
export class ModelError extends Error {
  override name = "ModelError";
}

/** The model users get by default (same value as `DEFAULT_MODEL` in lib/config.ts). */
export const DEFAULT_MODEL_NAME = "sherpa-onnx-streaming-zipformer-en-20M-2023-02-17";

/** Where k2-fsa publishes its ASR model archives. */
export const RELEASE_BASE_URL =
  "https://github.com/k2-fsa/sherpa-onnx/releases/download/asr-models";

/** The official release archive for a model name. */
export function modelUrl(name: string): string {
  return `${RELEASE_BASE_URL}/${name}.tar.bz2`;
}

/** Known release archives: SHA-256 and size in bytes (evidence in the module comment). */
export const PINNED_ARCHIVES: Readonly<Record<string, { sha256: string; size: number }>> = {
  [DEFAULT_MODEL_NAME]: {
    sha256: "9c559283e8498d3fe95913c79ca1cb454bb26281ac2b102b41306c7d752765d9",
    size: 127_887_156,
  },
};

/** `.onnx` files smaller than this are not models (Git LFS pointers, error pages). */
const MIN_ONNX_BYTES = 16 * 1024;
/** A download that receives nothing for this long is abandoned. */
const IDLE_TIMEOUT_MS = 60_000;
/** Leftover temp files of crashed downloads older than this are removed. */
const STALE_TEMP_MS = 24 * 60 * 60 * 1000;
const TEMP_PREFIX = ".partial-";

type Role = "encoder" | "decoder" | "joiner";
const ROLES: readonly Role[] = ["encoder", "decoder", "joiner"];
const OVERRIDE_ENV = {
  encoder: "SHERPA_ENCODER",
  decoder: "SHERPA_DECODER",
  joiner: "SHERPA_JOINER",
  tokens: "SHERPA_TOKENS",
} as const;

/**
 * Finds the encoder, decoder, joiner and tokens of a sherpa-onnx streaming
 * transducer in `dir` by their usual names (`*encoder*.onnx`, …, `tokens.txt`).
 * When several match, the int8 encoder and joiner are preferred, and the float
 * decoder (int8 decoders are known to hurt accuracy); then a `*fix*` file (a
 * patched copy put next to the original), then the name. Overrides win.
 */
export function findModelFiles(dir: string, overrides: ModelOverrides = {}): ModelFiles {
  const abs = resolve(dir);
  let names: string[] = [];
  try {
    names = [...Deno.readDirSync(abs)].filter((e) => e.isFile || e.isSymlink).map((e) => e.name);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
      throw new ModelError(
        `Model folder ${abs} does not exist. Set SHERPA_MODEL_DIR to a sherpa-onnx streaming transducer folder (with encoder, decoder and joiner .onnx files and tokens.txt).`,
      );
    }
    throw error;
  }
  const found: Partial<Record<Role | "tokens", string>> = {};
  for (const role of ROLES) found[role] = pickOnnx(names, role);
  found.tokens = names.includes("tokens.txt")
    ? "tokens.txt"
    : names.filter((n) => /tokens.*\.txt$/i.test(n)).sort()[0];

  const missing: (Role | "tokens")[] = [];
  const files = {} as Record<Role | "tokens", string>;
  for (const key of [...ROLES, "tokens"] as const) {
    const override = overrides[key];
    if (override) {
      const path = isAbsolute(override) ? override : join(abs, override);
      if (!isFile(path)) {
        throw new ModelError(
          `The ${key} file ${path} (set by ${OVERRIDE_ENV[key]}) does not exist.`,
        );
      }
      files[key] = path;
    } else if (found[key]) {
      files[key] = join(abs, found[key]);
    } else {
      missing.push(key);
    }
  }
  if (missing.length > 0) {
    const what = missing.map((k) => k === "tokens" ? "tokens.txt" : `${k} (*${k}*.onnx)`);
    const vars = missing.map((k) => OVERRIDE_ENV[k]).join(", ");
    throw new ModelError(
      `Model folder ${abs} has no ${
        what.join(", no ")
      }. Set SHERPA_MODEL_DIR to a complete sherpa-onnx streaming transducer folder, or ${vars} to the file${
        missing.length > 1 ? "s" : ""
      }.`,
    );
  }
  return { dir: abs, name: basename(abs), ...files };
}

function pickOnnx(names: string[], role: Role): string | undefined {
  const candidates = names.filter((n) => n.toLowerCase().endsWith(".onnx") && n.includes(role));
  const wantInt8 = role !== "decoder";
  const score = (n: string) =>
    (/\.int8\./i.test(n) === wantInt8 ? 0 : 4) + (/fix/i.test(n) ? 0 : 2) +
    (n.startsWith(role) ? 0 : 1);
  return candidates.sort((a, b) => score(a) - score(b) || a.localeCompare(b))[0];
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

function isDir(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

/** `findModelFiles`, or undefined when the folder is missing or incomplete. */
function tryFind(dir: string, overrides?: ModelOverrides): ModelFiles | undefined {
  try {
    return findModelFiles(dir, overrides);
  } catch (error) {
    if (error instanceof ModelError) return undefined;
    throw error;
  }
}

/** The shared models folder: `<projectRoot>/../shared/models/`, if this file is on disk. */
export function defaultSharedModelsDir(): string | undefined {
  const url = new URL("../../../shared/models/", import.meta.url);
  return url.protocol === "file:" ? fileURLToPath(url) : undefined;
}

/**
 * The per-user model cache: `$XDG_CACHE_HOME/callscribe/models` or
 * `~/.cache/callscribe/models` on Linux, `~/Library/Caches/callscribe/models` on
 * macOS, `%LOCALAPPDATA%\callscribe\models` on Windows.
 */
export function defaultCacheDir(
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
  os: string = Deno.build.os,
): string {
  const home = env("HOME") || env("USERPROFILE");
  if (os === "windows") {
    const local = env("LOCALAPPDATA") || (home ? join(home, "AppData", "Local") : undefined);
    if (local) return join(local, "callscribe", "models");
  } else if (os === "darwin") {
    if (home) return join(home, "Library", "Caches", "callscribe", "models");
  } else {
    const xdg = env("XDG_CACHE_HOME");
    if (xdg && isAbsolute(xdg)) return join(xdg, "callscribe", "models");
    if (home) return join(home, ".cache", "callscribe", "models");
  }
  throw new ModelError(
    "Cannot tell where to keep downloaded models (no home folder). Set SHERPA_CACHE_DIR, or SHERPA_MODEL_DIR to a sherpa-onnx streaming transducer folder.",
  );
}

/** Options of {@link resolveModel}. */
export interface ResolveModelOptions {
  /** `SHERPA_MODEL_DIR`: used as is, wins over everything. */
  modelDir?: string;
  /** The model's name (folder and archive name); default {@link DEFAULT_MODEL_NAME}. */
  modelName?: string;
  /** True when the user chose the name (then other shared models are not used instead). */
  modelNameExplicit?: boolean;
  /** Where downloads go; default {@link defaultCacheDir}. */
  cacheDir?: string;
  /** Default {@link defaultSharedModelsDir}. */
  sharedModelsDir?: string;
  /** Default {@link modelUrl}(modelName). */
  downloadUrl?: string;
  /** Expected SHA-256 of the archive; default the pin for the official URL, if any. */
  sha256?: string;
  fetch?: typeof fetch;
  onProgress?: ProgressCallback;
  overrides?: ModelOverrides;
  /** The `tar` command (for tests). */
  tarCommand?: string;
}

/** Finds the model (or downloads it); see the module comment for the order. */
export async function resolveModel(opts: ResolveModelOptions = {}): Promise<ResolvedModel> {
  const overrides = opts.overrides ?? {};
  if (opts.modelDir) {
    return { ...findModelFiles(opts.modelDir, overrides), source: "env" };
  }
  const name = opts.modelName || DEFAULT_MODEL_NAME;
  if (name.includes("/") || name.includes("\\") || name.startsWith(".")) {
    throw new ModelError(
      `SHERPA_MODEL must be a model name such as ${DEFAULT_MODEL_NAME}, got "${name}".`,
    );
  }

  const shared = opts.sharedModelsDir ?? defaultSharedModelsDir();
  if (shared && isDir(shared)) {
    const byName = tryFind(join(shared, name), overrides);
    if (byName) return { ...byName, source: "shared" };
    if (!opts.modelNameExplicit) {
      const dirs = [...Deno.readDirSync(shared)]
        .filter((e) => e.isDirectory && !e.name.startsWith("."))
        .map((e) => e.name)
        .sort();
      for (const dir of dirs) {
        const any = tryFind(join(shared, dir), overrides);
        if (any) return { ...any, source: "shared" };
      }
    }
  }

  const cacheDir = resolve(opts.cacheDir ?? defaultCacheDir());
  const target = join(cacheDir, name);
  const cached = tryFind(target, overrides);
  if (cached) return { ...cached, source: "cache" };

  const url = opts.downloadUrl || modelUrl(name);
  const pin = url === modelUrl(name) ? PINNED_ARCHIVES[name] : undefined;
  const expected = opts.sha256 ? { sha256: opts.sha256.toLowerCase() } : pin;
  try {
    await download({
      name,
      url,
      cacheDir,
      target,
      sha256: expected?.sha256,
      size: opts.sha256 ? undefined : pin?.size,
      fetch: opts.fetch ?? globalThis.fetch,
      onProgress: opts.onProgress,
      tar: opts.tarCommand ?? "tar",
    });
  } catch (error) {
    const reason = error instanceof DownloadError ? error.message : errorText(error);
    throw new ModelError(
      `No speech model found and it could not be downloaded (${reason}). Set SHERPA_MODEL_DIR to a sherpa-onnx streaming transducer folder, or download ${url} and unpack it into ${cacheDir}`,
      { cause: error },
    );
  } finally {
    opts.onProgress?.end?.();
  }
  return { ...findModelFiles(target, overrides), source: "download" };
}

/** A download step failed; the message is the reason shown to the user. */
class DownloadError extends Error {}

interface DownloadJob {
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

async function download(job: DownloadJob): Promise<void> {
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
    const files = tryFind(modelDir);
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
  if (!tryFind(target) && isDir(target)) {
    const aside = join(dirname(target), `${TEMP_PREFIX}old-${crypto.randomUUID().slice(0, 8)}`);
    await Deno.rename(target, aside).catch(() => {});
    await Deno.remove(aside, { recursive: true }).catch(() => {});
  }
  if (tryFind(target)) return;
  try {
    await Deno.rename(from, target);
  } catch (error) {
    if (tryFind(target)) return; // another process won the race
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
function errorText(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause;
  if (cause instanceof Error && cause.message) {
    return cause.message.replace(/^error sending request for url \([^)]*\): /, "");
  }
  return error.message;
}

/** Where {@link progressBar} draws; defaults to stderr. */
export interface ProgressBarOptions {
  write?: (text: string) => void;
  isTTY?: boolean;
  width?: number;
}

/**
 * A download progress bar on stderr: redrawn in place with `\r` on a terminal
 * (at most every 100 ms), a line per 10% otherwise (per 10 MB when the size is
 * unknown). Ends with a newline when the download completes or stops.
 */
export function progressBar(label: string, options: ProgressBarOptions = {}): ProgressCallback {
  const encoder = new TextEncoder();
  const write = options.write ?? ((text: string) => {
    try {
      Deno.stderr.writeSync(encoder.encode(text));
    } catch {
      // stderr closed: nothing to show
    }
  });
  const tty = options.isTTY ?? safeIsTerminal();
  const width = options.width ?? 30;
  let lastDraw = 0;
  let lastStep = -1;
  let open = false; // a TTY line without its newline
  let done = false;
  const mb = (n: number) => (n / 1e6).toFixed(1);

  const callback: ProgressCallback = (received, total) => {
    if (done) return;
    const finished = total !== undefined && received >= total;
    const fraction = total ? Math.min(1, received / total) : undefined;
    const amount = total !== undefined ? `${mb(received)}/${mb(total)} MB` : `${mb(received)} MB`;
    if (tty) {
      const now = Date.now();
      if (!finished && now - lastDraw < 100 && open) return;
      lastDraw = now;
      const bar = fraction === undefined
        ? ""
        : `[${"#".repeat(Math.round(fraction * width)).padEnd(width, ".")}] ${
          String(Math.floor(fraction * 100)).padStart(3)
        }% `;
      write(`\r${label} ${bar}${amount}\x1b[K`);
      open = true;
    } else {
      if (finished) {
        if (lastStep !== 10 || fraction === undefined) write(`${label}: 100% (${amount})\n`);
      } else {
        // A line per 10%, or per 10 MB when the size is unknown.
        const step = fraction !== undefined
          ? Math.floor(fraction * 10)
          : Math.floor(received / 1e7);
        if (step > lastStep) {
          lastStep = step;
          write(`${label}: ${fraction !== undefined ? `${step * 10}% ` : ""}(${amount})\n`);
        }
      }
    }
    if (finished) {
      done = true;
      if (open) write("\n");
      open = false;
    }
  };
  callback.end = () => {
    if (open) write("\n");
    open = false;
    done = true;
  };
  return callback;
}

function safeIsTerminal(): boolean {
  try {
    return Deno.stderr.isTerminal();
  } catch {
    return false;
  }
}
