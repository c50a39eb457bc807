import assert from "node:assert/strict";
import { phoneBandBursts } from "./helpers.ts";
import { EchoCanceller } from "../lib/laptop_audio/echo_canceller.ts";
import {
  instantiateSpeexDsp,
  loadSpeexDsp,
  SPEEXDSP_WASM_SHA256,
} from "../lib/laptop_audio/speexdsp.ts";
import { parseRoomSettings, SimulatedRoom } from "../lib/laptop_audio/room.ts";

const FRAME = 160;

function toPcm(x: Float32Array): Int16Array {
  return Int16Array.from(x, (v) => Math.max(-32768, Math.min(32767, Math.round(v * 32768))));
}

function power(x: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += x[i] * x[i];
  return sum / x.length;
}

/**
 * Plays `far` through a room (no drift) while the user says `near`, cancels with the speaker
 * frame two frames back as the reference (the room's echo comes later than that), and returns
 * per-frame powers of the microphone, the output, and the near speech alone.
 */
async function run(far: Float32Array, near: Float32Array, cancel: boolean) {
  const room = new SimulatedRoom(parseRoomSettings("delay=120,rt60=0.2,gain=-3,drift=0,noise=-90"));
  const canceller = await EchoCanceller.create();
  const reference = toPcm(far);
  const frames = [];
  for (let k = 0; (k + 1) * FRAME <= far.length; k++) {
    room.play(far.subarray(k * FRAME, (k + 1) * FRAME));
    const mic = toPcm(room.capture(near.subarray(k * FRAME, (k + 1) * FRAME)));
    const at = (k - 2) * FRAME;
    const ref = at < 0 ? new Int16Array(FRAME) : reference.subarray(at, at + FRAME);
    const out = cancel ? canceller.process(mic, ref) : mic;
    const nearPcm = toPcm(near.subarray(k * FRAME, (k + 1) * FRAME));
    frames.push({
      mic: power(mic),
      out: power(out),
      near: power(nearPcm),
      far: power(far.subarray(k * FRAME, (k + 1) * FRAME)),
    });
  }
  canceller.close();
  return frames;
}

Deno.test("the committed speexdsp.wasm matches its SHA-256 pin and imports nothing", async () => {
  const bytes = await Deno.readFile(new URL("../lib/laptop_audio/speexdsp.wasm", import.meta.url));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  assert.equal(hex, SPEEXDSP_WASM_SHA256);
  assert.deepEqual(WebAssembly.Module.imports(new WebAssembly.Module(bytes)), []);
  const dsp = instantiateSpeexDsp(await loadSpeexDsp());
  assert.equal(typeof dsp.speex_echo_cancellation, "function");
  assert.equal(typeof dsp.speex_preprocess_run, "function");
});

/** Median over frames of the far end alone, after 2 s, of mic power over output power, in dB. */
function medianErleDb(frames: Awaited<ReturnType<typeof run>>): number {
  const erle = frames.slice(100).filter((f) => f.far > 1e-4).map((f) =>
    10 * Math.log10(f.mic / Math.max(f.out, 1))
  ).sort((a, b) => a - b);
  return erle[erle.length >> 1];
}

Deno.test("far-end-only: the canceller's median echo return loss enhancement is at least 25 dB", async () => {
  const far = phoneBandBursts(12, 7, 0.2);
  const erleDb = medianErleDb(await run(far, new Float32Array(far.length), true));
  assert.ok(erleDb >= 25, `ERLE ${erleDb.toFixed(1)} dB`);
});

Deno.test("without cancelling, the echo reaches the output (the ERLE check can fail)", async () => {
  const far = phoneBandBursts(4, 7, 0.2);
  const erleDb = medianErleDb(await run(far, new Float32Array(far.length), false));
  assert.ok(erleDb < 1, `ERLE ${erleDb.toFixed(1)} dB`);
});

Deno.test("near-end-only: the laptop user's speech passes within 3 dB", async () => {
  const far = phoneBandBursts(8, 7, 0.2);
  // The far end talks for 4 s (the filter converges), then only the user talks.
  far.fill(0, 4 * 8000);
  const near = phoneBandBursts(8, 99, 0.1);
  near.fill(0, 0, 4 * 8000);
  const frames = await run(far, near, true);
  const talking = frames.slice(250).filter((f) => f.near > 1e4);
  const lossDb = 10 * Math.log10(
    talking.reduce((s, f) => s + f.near, 0) / talking.reduce((s, f) => s + f.out, 0),
  );
  assert.ok(Math.abs(lossDb) < 3, `near speech changed by ${lossDb.toFixed(1)} dB`);
});

Deno.test("frames of the wrong size and bad settings are refused with a clear message", async () => {
  const canceller = await EchoCanceller.create();
  assert.throws(
    () => canceller.process(new Int16Array(100), new Int16Array(160)),
    /frames must have 160 samples, got 100 and 160/,
  );
  canceller.close();
  assert.throws(() => canceller.process(new Int16Array(160), new Int16Array(160)), /closed/);
  await assert.rejects(EchoCanceller.create({ filterLength: 10 }), /filterLength 10 is not/);
});
