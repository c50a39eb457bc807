/**
 * Which ffmpeg is used: FFMPEG_PATH alone when set, else the PATH's, else
 * the static build inside the npm package @ffmpeg-installer/ffmpeg. Each
 * case runs the binary it names.
 */
import assert from "node:assert/strict";
import { describeFfmpeg, findFfmpeg } from "../lib/laptop_audio/find_ffmpeg.ts";

/** Platforms @ffmpeg-installer/ffmpeg 1.1.0 ships a binary for. */
const SHIPPED = [
  "linux/x86_64",
  "linux/aarch64",
  "darwin/x86_64",
  "darwin/aarch64",
  "windows/x86_64",
]
  .includes(`${Deno.build.os}/${Deno.build.arch}`);

/** Runs `fn` with PATH set to `path` (Deno.Command looks programs up in the process's PATH). */
async function withPath<T>(path: string, fn: () => Promise<T>): Promise<T> {
  const saved = Deno.env.get("PATH");
  Deno.env.set("PATH", path);
  try {
    return await fn();
  } finally {
    if (saved === undefined) Deno.env.delete("PATH");
    else Deno.env.set("PATH", saved);
  }
}

/** The npm package's ffmpeg, found with a PATH that has no ffmpeg. */
async function shipped() {
  const empty = await Deno.makeTempDir();
  try {
    const found = await withPath(empty, () => findFfmpeg());
    assert.ok(found.path !== undefined, "why" in found ? found.why : "");
    return found;
  } finally {
    await Deno.remove(empty);
  }
}

Deno.test({
  name: "no ffmpeg on the PATH: the npm package's build is used, and it encodes µ-law",
  ignore: !SHIPPED,
  async fn() {
    const found = await shipped();
    assert.match(found.source, /^npm:@ffmpeg-installer\/[a-z0-9-]+@\d+\.\d+\.\d+$/);
    assert.match(
      describeFfmpeg(found),
      /^ffmpeg \S+ \(npm:@ffmpeg-installer\/.*, \/.*ffmpeg(\.exe)?\)$/,
    );
    // It really runs: one second of a tone through the µ-law encoder the bridge uses.
    const out = await new Deno.Command(found.path, {
      args: [
        ..."-hide_banner -loglevel error -f lavfi -i sine=frequency=440:duration=1".split(" "),
        ..."-ar 8000 -ac 1 -f mulaw -".split(" "),
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    assert.equal(out.stdout.length, 8000);
  },
});

Deno.test({
  name: "an ffmpeg on the PATH wins over the npm package's",
  ignore: !SHIPPED || Deno.build.os === "windows",
  async fn() {
    const binary = (await shipped()).path;
    const bin = await Deno.makeTempDir();
    try {
      await Deno.symlink(binary, `${bin}/ffmpeg`);
      const found = await withPath(bin, () => findFfmpeg());
      assert.deepEqual({ ...found, version: "" }, { path: "ffmpeg", source: "PATH", version: "" });
    } finally {
      await Deno.remove(bin, { recursive: true });
    }
  },
});

Deno.test({
  name: "FFMPEG_PATH is used when it runs",
  ignore: !SHIPPED,
  async fn() {
    const binary = (await shipped()).path;
    const found = await findFfmpeg(binary);
    assert.equal(found.path, binary);
    assert.equal(found.path !== undefined && found.source, "FFMPEG_PATH");
  },
});

Deno.test("FFMPEG_PATH that does not run is reported, not replaced by another ffmpeg", async () => {
  const found = await findFfmpeg("/no/such/ffmpeg");
  assert.equal(found.path, undefined);
  assert.match(
    "why" in found ? found.why : "",
    /^FFMPEG_PATH="\/no\/such\/ffmpeg" does not run .*set it to a working ffmpeg, or unset it/,
  );
});
