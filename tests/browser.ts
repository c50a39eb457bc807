/**
 * A real Chromium for browser tests, found the same way on every machine:
 * `CHROME_PATH` when set, else a system Chrome or Chromium, else the
 * Chromium shipped inside the pinned npm package `@sparticuz/chromium`
 * (Linux x64/arm64; unpacked to the temp folder in about 2 s on first use).
 * Where none can be had, {@link browserTest} registers the test as ignored
 * and says why, so it is counted as skipped, never passed.
 *
 * ```ts
 * browserTest("dashboard shows the call", async (browser) => {
 *   const page = await browser.newPage();
 *   ...
 * });
 * ```
 *
 * @module
 */
import fs from "node:fs";
import type { Browser } from "playwright-core";

// Node's existsSync never throws; Deno's throws NotCapable for /proc/sys paths unless run with
// --allow-all, and playwright-core probes /proc/sys/fs/binfmt_misc/WSLInterop when it loads.
const existsSync = fs.existsSync;
fs.existsSync = (path: fs.PathLike) => {
  try {
    return existsSync(path);
  } catch {
    return false;
  }
};
const { chromium } = await import("playwright-core");

/**
 * Flags for a headless Chromium on a closed network: no sandbox (CI runs as root), no GPU,
 * and none of the background fetches (updates, sync, field trials) that would try to go out.
 */
export const CHROMIUM_ARGS: readonly string[] = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Where a browser was found, or why none was. */
export type ChromiumLocation =
  | { path: string; source: "CHROME_PATH" | "system" | "@sparticuz/chromium" }
  | { path: undefined; why: string };

/** Program names and install paths of Chrome and Chromium, per OS. */
function systemCandidates(): string[] {
  switch (Deno.build.os) {
    case "darwin":
      return [
        "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
        "/Applications/Chromium.app/Contents/MacOS/Chromium",
      ];
    case "windows": {
      const roots = [Deno.env.get("PROGRAMFILES"), Deno.env.get("PROGRAMFILES(X86)")];
      return roots.filter((r) => r).flatMap((r) => [
        `${r}\\Google\\Chrome\\Application\\chrome.exe`,
        `${r}\\Chromium\\Application\\chrome.exe`,
      ]);
    }
    default:
      return onPath(["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]);
  }
}

/** Full paths of the named programs found in the folders of PATH, in PATH order. */
function onPath(names: string[]): string[] {
  const dirs = (Deno.env.get("PATH") ?? "").split(Deno.build.os === "windows" ? ";" : ":");
  return dirs.filter((d) => d).flatMap((dir) => names.map((name) => `${dir}/${name}`));
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/**
 * @sparticuz/chromium's `executablePath()`, made safe for test files run side by side: the
 * package unpacks to a fixed temp path and takes any file there as done, so a file run in
 * parallel with another could launch the other's half-written Chromium, and a run killed while
 * unpacking would leave a cut binary for good. Here the unpacking holds a lock folder (taken
 * over after two minutes, from a killed run), and a binary whose size is not the one recorded
 * after a complete unpack is unpacked again.
 */
async function unpackedChromium(unpack: () => Promise<string>): Promise<string> {
  const tmp = Deno.env.get("TMPDIR") || "/tmp";
  const lock = `${tmp}/callscribe-chromium-unpack.lock`;
  const sizeFile = `${tmp}/callscribe-chromium-unpacked-size`;
  for (;;) {
    try {
      await Deno.mkdir(lock);
      break;
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
      const since = await Deno.stat(lock).then(
        (s) => Date.now() - (s.mtime?.getTime() ?? 0),
        () => 0,
      );
      if (since > 120_000) await Deno.remove(lock).catch(() => {});
      else await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  try {
    const binary = `${tmp}/chromium`;
    const size = await Deno.stat(binary).then((s) => s.size, () => undefined);
    const complete = await Deno.readTextFile(sizeFile).then(Number, () => undefined);
    if (size !== undefined && size !== complete) await Deno.remove(binary);
    const path = await unpack();
    await Deno.writeTextFile(sizeFile, String((await Deno.stat(path)).size));
    return path;
  } finally {
    await Deno.remove(lock).catch(() => {});
  }
}

/** Finds a Chromium: `CHROME_PATH`, a system Chrome/Chromium, or `@sparticuz/chromium`. */
export async function findChromium(): Promise<ChromiumLocation> {
  const configured = Deno.env.get("CHROME_PATH");
  if (configured) {
    if (isFile(configured)) return { path: configured, source: "CHROME_PATH" };
    return { path: undefined, why: `CHROME_PATH is ${configured}, which is not a file` };
  }
  const system = systemCandidates().find(isFile);
  if (system) return { path: system, source: "system" };
  if (Deno.build.os !== "linux" || !["x86_64", "aarch64"].includes(Deno.build.arch)) {
    return {
      path: undefined,
      why: `no Chrome or Chromium is installed, and @sparticuz/chromium has no build for ` +
        `${Deno.build.os}/${Deno.build.arch} (install Chrome, or set CHROME_PATH)`,
    };
  }
  try {
    const { default: packaged } = await import("@sparticuz/chromium");
    const path = await unpackedChromium(() => packaged.executablePath());
    return { path, source: "@sparticuz/chromium" };
  } catch (error) {
    return {
      path: undefined,
      why: `no Chrome or Chromium is installed, and @sparticuz/chromium could not be unpacked: ` +
        (error as Error).message,
    };
  }
}

/** The browser the tests of this process use, found once. */
export const CHROMIUM: ChromiumLocation = await findChromium();

/**
 * Launches the found Chromium headless with {@link CHROMIUM_ARGS} and `extraArgs` (e.g. a host
 * mapping, fake media devices); throws when there is none.
 */
export async function launchChromium(extraArgs: readonly string[] = []): Promise<Browser> {
  if (CHROMIUM.path === undefined) throw new Error(`Cannot launch a browser: ${CHROMIUM.why}`);
  return await chromium.launch({
    executablePath: CHROMIUM.path,
    args: [...CHROMIUM_ARGS, ...extraArgs],
  });
}

/**
 * A Deno test that gets a launched browser (closed afterwards), launched with `options.args`
 * besides the usual flags. Without a browser the test is
 * registered as ignored (counted as skipped) and the reason is printed once.
 */
export function browserTest(
  name: string,
  fn: (browser: Browser) => Promise<void>,
  options: { args?: readonly string[] } = {},
): void {
  if (CHROMIUM.path === undefined) {
    console.warn(`skipped "${name}": ${CHROMIUM.why}`);
  }
  Deno.test({
    name,
    ignore: CHROMIUM.path === undefined,
    async fn() {
      const browser = await launchChromium(options.args);
      try {
        await fn(browser);
      } finally {
        await browser.close();
      }
    },
  });
}
