/**
 * The files the browser loads under `/assets/`: the dashboard's scripts,
 * written in TypeScript (type-checked and linted with the rest) and served
 * with their types stripped by `node:module`'s `stripTypeScriptTypes`, built
 * into Deno (no build step, nothing downloaded, and it works the same in a
 * `deno compile` binary); its stylesheet; and the player's library from
 * node_modules. A script's path under `/assets/` is its path under `lib/`,
 * so the imports between them (`../../text/time_format.ts`) resolve in the
 * browser as they do here.
 *
 * @module
 */
import { stripTypeScriptTypes } from "node:module";

/** Each file by its path under `/assets/`, relative to this module. */
const FILES: Record<string, string> = {
  "server/static/dashboard.css": "./static/dashboard.css",
  "server/static/dashboard.ts": "./static/dashboard.ts",
  "server/static/player.ts": "./static/player.ts",
  "server/static/side_labels.ts": "./static/side_labels.ts",
  "server/static/softphone.ts": "./static/softphone.ts",
  "server/static/softphone_worklet.ts": "./static/softphone_worklet.ts",
  "text/time_format.ts": "../text/time_format.ts",
  "wavesurfer.esm.js": "../../node_modules/wavesurfer.js/dist/wavesurfer.esm.js",
  "regions.esm.js": "../../node_modules/wavesurfer.js/dist/plugins/regions.esm.js",
};

/** The paths served under `/assets/`. */
export const BROWSER_ASSETS: readonly string[] = Object.keys(FILES);

/**
 * The asset at `path` (one of {@link BROWSER_ASSETS}) as the browser gets it:
 * TypeScript as JavaScript (types blanked out, so lines and columns stay
 * where they are in the source), with its content type.
 */
export async function readBrowserAsset(
  path: string,
): Promise<{ body: Uint8Array<ArrayBuffer>; contentType: string }> {
  const file = FILES[path];
  if (!file) throw new Error(`Cannot serve /assets/${path}: not a browser asset`);
  const url = new URL(file, import.meta.url);
  if (path.endsWith(".css")) {
    return { body: await Deno.readFile(url), contentType: "text/css; charset=utf-8" };
  }
  const contentType = "text/javascript; charset=utf-8";
  if (!path.endsWith(".ts")) return { body: await Deno.readFile(url), contentType };
  const source = await Deno.readTextFile(url);
  const script = stripTypeScriptTypes(source, { mode: "strip" });
  return { body: new TextEncoder().encode(script), contentType };
}
