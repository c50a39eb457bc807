/**
 * The four files of a sherpa-onnx streaming transducer in a folder, found by
 * their usual names. This file does not import sherpa-onnx: it only deals with files.
 *
 * @module
 */
import { basename, isAbsolute, join, resolve } from "node:path";
import { UserError } from "../user_error.ts";

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
      throw new UserError(
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
        throw new UserError(
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
    throw new UserError(
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

export function isDir(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

/** `findModelFiles`, or undefined when the folder is missing or incomplete. */
export function tryFindModelFiles(dir: string, overrides?: ModelOverrides): ModelFiles | undefined {
  try {
    return findModelFiles(dir, overrides);
  } catch (error) {
    if (error instanceof UserError) return undefined;
    throw error;
  }
}
