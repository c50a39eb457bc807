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
 * The download itself is `download.ts`.
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
import { isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { DownloadError, downloadModel, errorText, type ProgressCallback } from "./download.ts";
import {
  findModelFiles,
  isDir,
  type ModelFiles,
  type ModelOverrides,
  tryFindModelFiles,
} from "./model_files.ts";
import { UserError } from "../user_error.ts";

/** Where {@link resolveModel} found the model. */
export type ModelSource = "env" | "shared" | "cache" | "download";

/** A resolved model and where it came from. */
export type ResolvedModel = ModelFiles & { source: ModelSource };

/** The model users get by default (downloaded from the sherpa-onnx release on first use). */
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
  throw new UserError(
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

/** Whether `name` can be a model's folder and archive name (no path, not hidden). */
export function isModelName(name: string): boolean {
  return name !== "" && !name.includes("/") && !name.includes("\\") && !name.startsWith(".");
}

/** Finds the model (or downloads it); see the module comment for the order. */
export async function resolveModel(opts: ResolveModelOptions = {}): Promise<ResolvedModel> {
  const overrides = opts.overrides ?? {};
  if (opts.modelDir) {
    return { ...findModelFiles(opts.modelDir, overrides), source: "env" };
  }
  const name = opts.modelName || DEFAULT_MODEL_NAME;
  if (!isModelName(name)) {
    throw new RangeError(`modelName must be a folder name, got "${name}"`);
  }

  const shared = opts.sharedModelsDir ?? defaultSharedModelsDir();
  if (shared && isDir(shared)) {
    const byName = tryFindModelFiles(join(shared, name), overrides);
    if (byName) return { ...byName, source: "shared" };
    if (!opts.modelNameExplicit) {
      const dirs = [...Deno.readDirSync(shared)]
        .filter((e) => e.isDirectory && !e.name.startsWith("."))
        .map((e) => e.name)
        .sort();
      for (const dir of dirs) {
        const any = tryFindModelFiles(join(shared, dir), overrides);
        if (any) return { ...any, source: "shared" };
      }
    }
  }

  const cacheDir = resolve(opts.cacheDir ?? defaultCacheDir());
  const target = join(cacheDir, name);
  const cached = tryFindModelFiles(target, overrides);
  if (cached) return { ...cached, source: "cache" };

  const url = opts.downloadUrl || modelUrl(name);
  const pin = url === modelUrl(name) ? PINNED_ARCHIVES[name] : undefined;
  const expected = opts.sha256 ? { sha256: opts.sha256.toLowerCase() } : pin;
  try {
    await downloadModel({
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
    throw new UserError(
      `No speech model found and it could not be downloaded (${reason}). Set SHERPA_MODEL_DIR to a sherpa-onnx streaming transducer folder, or download ${url} and unpack it into ${cacheDir}`,
      { cause: error },
    );
  } finally {
    opts.onProgress?.end?.();
  }
  return { ...findModelFiles(target, overrides), source: "download" };
}
