/**
 * Which ffmpeg the audio bridge runs: `FFMPEG_PATH` when set, else `ffmpeg`
 * on the PATH, else the static build shipped inside the pinned npm package
 * `@ffmpeg-installer/ffmpeg` (ffmpeg 4.1 for Linux, macOS and Windows; no
 * download at install time). The shipped build has no PulseAudio and no
 * ffplay, so a system ffmpeg is preferred when there is one.
 *
 * @module
 */

/** How to get an ffmpeg, per OS: printed when none runs. */
const FFMPEG_INSTALL_HINT =
  "install it (Debian/Ubuntu: sudo apt install ffmpeg; macOS: brew install ffmpeg; " +
  "Windows: winget install ffmpeg), or set FFMPEG_PATH to its full path";

/** An ffmpeg that ran `-version`. */
export interface FfmpegFound {
  path: string;
  /** From its `-version` banner, e.g. `6.1.1-3ubuntu5` or `N-47683-g0e8eb07980-static`. */
  version: string;
  /** Where it came from: the setting, the PATH, or the npm package (name and version). */
  source: "FFMPEG_PATH" | "PATH" | `npm:${string}`;
}

/** No ffmpeg runs: `why` names what was tried and how to fix it. */
export interface FfmpegMissing {
  path: undefined;
  why: string;
}

/**
 * For start-up lines, e.g.
 * `ffmpeg N-47683-g0e8eb07980-static (npm:@ffmpeg-installer/linux-x64@4.1.0, /…/ffmpeg)`.
 */
export function describeFfmpeg(found: FfmpegFound): string {
  return `ffmpeg ${found.version} (${found.source}, ${found.path})`;
}

/** The version in `ffmpeg -version`'s first line, or undefined when the program does not run. */
async function ffmpegVersion(program: string): Promise<string | undefined> {
  try {
    const out = await new Deno.Command(program, {
      args: ["-version"],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!out.success) return undefined;
    const first = new TextDecoder().decode(out.stdout).split("\n")[0];
    return /^ffmpeg version (\S+)/.exec(first)?.[1] ?? "(unknown version)";
  } catch {
    return undefined;
  }
}

/**
 * The ffmpeg to use. `configured` (FFMPEG_PATH) is used alone when given: a
 * broken setting is reported, not silently replaced by another ffmpeg.
 */
export async function findFfmpeg(configured?: string): Promise<FfmpegFound | FfmpegMissing> {
  if (configured) {
    const version = await ffmpegVersion(configured);
    if (version) return { path: configured, version, source: "FFMPEG_PATH" };
    return {
      path: undefined,
      why: `FFMPEG_PATH="${configured}" does not run (${configured} -version failed); ` +
        "set it to a working ffmpeg, or unset it to use ffmpeg on the PATH or the one shipped " +
        "in the npm package @ffmpeg-installer/ffmpeg",
    };
  }
  const system = await ffmpegVersion("ffmpeg");
  if (system) return { path: "ffmpeg", version: system, source: "PATH" };
  const shipped = await shippedFfmpeg();
  if (typeof shipped !== "string") {
    const version = await ffmpegVersion(shipped.path);
    if (version) return { path: shipped.path, version, source: shipped.source };
  }
  return {
    path: undefined,
    why: `ffmpeg was not found: none on the PATH, and ${
      typeof shipped === "string"
        ? shipped
        : `the one in the npm package (${shipped.path}) does not run`
    }; ${FFMPEG_INSTALL_HINT}`,
  };
}

/** The binary of `@ffmpeg-installer/<os>-<arch>`, or why there is none. */
async function shippedFfmpeg(): Promise<{ path: string; source: `npm:${string}` } | string> {
  let path: string;
  try {
    ({ path } = (await import("@ffmpeg-installer/ffmpeg")).default);
  } catch (error) {
    // Its index throws a plain string for a platform it has no build for.
    return `the npm package @ffmpeg-installer/ffmpeg has no ffmpeg for ${Deno.build.os}/` +
      `${Deno.build.arch} (${error instanceof Error ? error.message : String(error)})`;
  }
  const dir = path.slice(0, Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\")) + 1);
  try {
    const pkg = JSON.parse(await Deno.readTextFile(`${dir}package.json`));
    return { path, source: `npm:${pkg.name}@${pkg.version}` };
  } catch {
    return { path, source: "npm:@ffmpeg-installer/ffmpeg" };
  }
}
