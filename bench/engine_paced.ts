/**
 * Our engine alone, as the server drives it: {@link LocalEngine} with its
 * decoder workers, every track fed 20 ms frames in real time (track i
 * starting `(i × 7) mod 16` frames late, as in the server run), no server,
 * socket, store or recording. Its CPU against raw sherpa-onnx
 * (`engine_raw.ts`, in as many processes as workers) is the engine's cost;
 * the server run's CPU adds the relay, the store and the recorder on top.
 *
 * Usage: `engine_paced.ts <tracks.json> [--aligned]` (a JSON array of raw
 * µ-law file paths). `--aligned` starts every track on the same frame, so a
 * worker's tracks finish their chunks on the same hand-off and are decoded
 * back to back (what that saves, and why the engine does not do it, is in
 * the README's Cost bullet). Prints `{cpuUs, audioMs, tracks, threads, maxDecodeDelayMs,
 * finals, chunksDecoded}` on stdout; settings come from the environment, as
 * for the server.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { loadConfig } from "../app/config.ts";
import { findModel } from "../app/engine.ts";
import { FRAME_BYTES } from "../lib/audio/framing.ts";
import { LocalEngine } from "../lib/transcribe/local.ts";
import { ownCpuUs, report, sleep, threadCpuUs } from "./common.ts";

const { values: flags, positionals } = parseArgs({
  allowPositionals: true,
  options: { aligned: { type: "boolean" } },
});
if (positionals.length !== 1) {
  console.error(
    "Usage: deno run -A bench/engine_paced.ts <tracks.json> [--aligned]\n" +
      "  tracks.json: a JSON array of paths to raw 8 kHz µ-law files, one per track",
  );
  Deno.exit(2);
}
const paths: string[] = JSON.parse(Deno.readTextFileSync(positionals[0]));
const tracks = paths.map((path, i) => ({
  mulaw: Deno.readFileSync(path),
  startFrame: flags.aligned ? 0 : (i * 7) % 16,
}));
const config = loadConfig();
const engine = await LocalEngine.start(await findModel(config), config.local);
let finals = 0;
const open = tracks.map((_, i) =>
  engine.open(i % 2 ? "outbound" : "inbound", {
    onTranscript: (t) => {
      if (t.type === "final") finals++;
    },
  })
);
const frames = Math.max(...tracks.map((t) => t.startFrame + t.mulaw.length / FRAME_BYTES));
const cpuStart = ownCpuUs();
const threadsStart = await threadCpuUs(Deno.pid);
const wallStart = performance.now();
let maxDecodeDelayMs = 0;
for (let frame = 0; frame < frames; frame++) {
  tracks.forEach(({ mulaw, startFrame }, i) => {
    const offset = (frame - startFrame) * FRAME_BYTES;
    if (offset >= 0 && offset < mulaw.length) {
      open[i].write(mulaw.subarray(offset, offset + FRAME_BYTES));
    }
  });
  maxDecodeDelayMs = Math.max(maxDecodeDelayMs, engine.decodeDelayMs());
  await sleep(Math.max(0, wallStart + (frame + 1) * 20 - performance.now()));
}
await Promise.all(open.map((track) => track.close()));
const cpuUs = ownCpuUs() - cpuStart;
const threadsEnd = await threadCpuUs(Deno.pid);
const chunksDecoded = await engine.chunksDecoded();
await engine.dispose();
report({
  cpuUs,
  audioMs: tracks.reduce((n, t) => n + t.mulaw.length / 8, 0),
  tracks: tracks.length,
  threads: threadsStart && threadsEnd
    ? {
      main: threadsEnd.main - threadsStart.main,
      workers: threadsEnd.workers - threadsStart.workers,
      other: threadsEnd.other - threadsStart.other,
    }
    : null,
  maxDecodeDelayMs,
  finals,
  chunksDecoded,
});
