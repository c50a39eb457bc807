/**
 * The echo's bulk delay, found from real speech played into simulated rooms, and the start gate
 * it drives: the call's first seconds of echo no longer reach the call while the laptop user's
 * louder speech does.
 */
import assert from "node:assert/strict";
import { floatToMulaw, mulawDecode, mulawToFloat32 } from "../lib/audio/mulaw.ts";
import { EchoDelayEstimator } from "../lib/laptop_audio/echo_delay.ts";
import { EchoCanceller } from "../lib/laptop_audio/echo_canceller.ts";
import { ALIGNED_FILTER_LENGTH, EchoTimeline } from "../lib/laptop_audio/echo_timeline.ts";
import { loadSpeexDsp } from "../lib/laptop_audio/speexdsp.ts";
import { parseRoomSettings, SimulatedRoom } from "../lib/laptop_audio/room.ts";
import { audioSet, conversation } from "./helpers.ts";

const FRAME = 160;

/** Two phone-party sentences, 8 kHz, starting 1 s into the call. */
async function farSpeech(): Promise<Float32Array> {
  const speech = await conversation((await audioSet("librispeech-samples")).slice(0, 2), 500);
  const far = new Float32Array(8000 + speech.samples.length);
  far.set(speech.samples, 8000);
  return far;
}

Deno.test("the delay estimator finds the echo's bulk delay within 2 s of the phone party talking", async () => {
  const far = await farSpeech();
  for (
    const spec of ["delay=60,gain=-10,noise=-65", "delay=250,gain=-3", "delay=480,rt60=0.6,gain=0"]
  ) {
    const settings = parseRoomSettings(spec);
    const room = new SimulatedRoom(settings);
    const estimator = new EchoDelayEstimator();
    const reference: Int16Array[] = [];
    let lockedAt = -1;
    for (let k = 0; (k + 1) * FRAME <= far.length && k < 400; k++) {
      const speaker = floatToMulaw(far.subarray(k * FRAME, (k + 1) * FRAME));
      reference.push(mulawDecode(speaker));
      room.play(mulawToFloat32(speaker));
      const mic = mulawDecode(floatToMulaw(room.capture(new Float32Array(FRAME))));
      // As the timeline feeds it: the reference two frames back (the bridge's placement).
      estimator.feed(k >= 2 ? reference[k - 2] : new Int16Array(FRAME), mic);
      if (estimator.delay && lockedAt < 0) lockedAt = k;
    }
    const truth = settings.delayMs * 8 - 2 * FRAME;
    assert.ok(lockedAt >= 0 && lockedAt < 150, `${spec}: locked at frame ${lockedAt}`);
    const found = estimator.delay!.samples;
    // Its envelope blocks are 5 ms, and reverberation pulls the peak a little later.
    assert.ok(found >= truth - 80 && found <= truth + 320, `${spec}: ${found}, truth ${truth}`);
  }
});

Deno.test("the start gate keeps the unconverged echo out and lets the laptop user's louder speech through", async () => {
  const far = await farSpeech();
  // The laptop user says a sentence over the phone party from 3 s to 4 s, louder than the echo.
  const near = new Float32Array(far.length);
  const said = (await conversation((await audioSet("librivox-sense-and-sensibility")).slice(0, 1)))
    .samples;
  for (let i = 0; i < 8000 && i < said.length; i++) near[3 * 8000 + i] = 2 * said[i];
  const run = async (startGate: boolean) => {
    const room = new SimulatedRoom(parseRoomSettings("delay=150,rt60=0.3,gain=-3,noise=-120"));
    const timeline = new EchoTimeline(await EchoCanceller.create(), { startGate });
    const power = { echoMic: 0, echoOut: 0, nearIn: 0, nearOut: 0 };
    for (let k = 0; (k + 1) * FRAME <= far.length && k < 250; k++) {
      const speaker = floatToMulaw(far.subarray(k * FRAME, (k + 1) * FRAME));
      timeline.played(speaker, k * FRAME);
      room.play(mulawToFloat32(speaker));
      const nearFrame = near.subarray(k * FRAME, (k + 1) * FRAME);
      const heard = floatToMulaw(room.capture(nearFrame));
      const out = mulawDecode(timeline.cancel(heard, (k - 1) * FRAME));
      const p = (x: ArrayLike<number>) => Array.from(x).reduce((s, v) => s + v * v, 0);
      // Seconds 1.5-3: the phone party alone, the filter still converging.
      if (k >= 75 && k < 150) {
        power.echoMic += p(mulawDecode(heard));
        power.echoOut += p(out);
      }
      if (k >= 150 && k < 200) {
        power.nearIn += p(Array.from(nearFrame, (x) => x * 32768));
        power.nearOut += p(out);
      }
    }
    timeline.close();
    const db = (a: number, b: number) => 10 * Math.log10(a / b);
    return { erle: db(power.echoMic, power.echoOut), near: db(power.nearOut, power.nearIn) };
  };
  const [without, gated] = [await run(false), await run(true)];
  assert.ok(without.erle < 15, `ERLE without the gate: ${without.erle} dB (the filter converging)`);
  assert.ok(gated.erle >= without.erle + 10, `ERLE ${gated.erle} dB with the gate`);
  // The user's speech (and the echo under it) comes through at its level, give or take 3 dB.
  assert.ok(Math.abs(gated.near) < 3, `the user's speech: ${gated.near} dB through the gate`);
});

Deno.test("with a long device delay, the filter placed on the echo cancels its tail, which the long filter cannot reach", async () => {
  const far = await farSpeech();
  let started = 0;
  const run = async (aligned: boolean) => {
    const room = new SimulatedRoom(
      parseRoomSettings("delay=450,rt60=0.4,gain=-3,noise=-120,drift=0"),
    );
    const timeline = new EchoTimeline(await EchoCanceller.create(), {
      aligned: aligned
        ? () => {
          started++;
          return new EchoCanceller(speexdsp, { filterLength: ALIGNED_FILTER_LENGTH });
        }
        : null,
      startGate: false,
    });
    let mic = 0;
    let out = 0;
    const frames = Math.floor(far.length / FRAME);
    for (let k = 0; k < frames; k++) {
      const speaker = floatToMulaw(far.subarray(k * FRAME, (k + 1) * FRAME));
      timeline.played(speaker, k * FRAME);
      room.play(mulawToFloat32(speaker));
      const heard = floatToMulaw(room.capture(new Float32Array(FRAME)));
      const cancelled = timeline.cancel(heard, (k - 1) * FRAME);
      // The last 5 s: both have converged as far as they can.
      if (k >= frames - 250) {
        mic += mulawDecode(heard).reduce((s, x) => s + x * x, 0);
        out += mulawDecode(cancelled).reduce((s, x) => s + x * x, 0);
      }
    }
    timeline.close();
    return 10 * Math.log10(mic / out);
  };
  const speexdsp = await loadSpeexDsp();
  const [long, placed] = [await run(false), await run(true)];
  assert.ok(placed >= long + 5, `ERLE of the last 5 s: ${placed} dB placed, ${long} dB long only`);
  assert.equal(started, 1, "one filter placed on the echo, once its delay is known");
});

Deno.test("an echo closer than the aligned filter's margin starts no extra filter (the warm-up one has it)", async () => {
  const far = await farSpeech();
  const speexdsp = await loadSpeexDsp();
  let started = 0;
  const room = new SimulatedRoom(parseRoomSettings("delay=60,gain=-10,noise=-120"));
  const timeline = new EchoTimeline(new EchoCanceller(speexdsp), {
    warmup: new EchoCanceller(speexdsp, { filterLength: ALIGNED_FILTER_LENGTH }),
    aligned: () => {
      started++;
      return new EchoCanceller(speexdsp, { filterLength: ALIGNED_FILTER_LENGTH });
    },
  });
  for (let k = 0; k < 400; k++) {
    const speaker = floatToMulaw(far.subarray(k * FRAME, (k + 1) * FRAME));
    timeline.played(speaker, k * FRAME);
    room.play(mulawToFloat32(speaker));
    timeline.cancel(floatToMulaw(room.capture(new Float32Array(FRAME))), (k - 1) * FRAME);
  }
  timeline.close();
  assert.ok(timeline.delaySamples !== null, "the delay was found");
  assert.equal(started, 0);
});
