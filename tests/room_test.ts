import assert from "node:assert/strict";
import { DEFAULT_ROOM, parseRoomSettings, SimulatedRoom } from "../lib/laptop_audio/room.ts";

/** A click on the speaker at sample 0, then silence; the microphone hears it (no speech). */
function clickThrough(spec: string, samples = 8000): Float32Array {
  const room = new SimulatedRoom(parseRoomSettings(spec));
  const click = new Float32Array(samples);
  click[0] = 1;
  room.play(click);
  return room.capture(new Float32Array(samples));
}

Deno.test("the echo arrives after the room's delay, at its gain, decaying over its RT60", () => {
  const mic = clickThrough("delay=200,rt60=0.3,gain=-6,drift=0,noise=-120", 8000);
  const first = mic.findIndex((x) => Math.abs(x) > 1e-3);
  assert.equal(first, 1600);
  const energy = mic.reduce((s, x) => s + x * x, 0);
  assert.ok(Math.abs(10 * Math.log10(energy) - -6) < 0.1, `echo energy ${energy}`);
  const early = mic.subarray(1600, 1600 + 400).reduce((s, x) => s + x * x, 0);
  const late = mic.subarray(1600 + 1800, 1600 + 2200).reduce((s, x) => s + x * x, 0);
  // 225 ms apart in a 0.3 s room: about 45 dB weaker.
  assert.ok(10 * Math.log10(early / late) > 35, `early ${early}, late ${late}`);
});

Deno.test("clock drift moves the echo: with a 1000 ppm faster speaker, 9 samples earlier after 1.1 s", () => {
  const room = new SimulatedRoom(parseRoomSettings("delay=100,rt60=0.05,drift=1000,noise=-120"));
  const clicks = new Float32Array(16000);
  clicks[0] = 1;
  clicks[8800] = 1;
  room.play(clicks);
  const mic = room.capture(new Float32Array(16000));
  const peak = (from: number, to: number) => {
    let at = from;
    for (let i = from; i < to; i++) if (Math.abs(mic[i]) > Math.abs(mic[at])) at = i;
    return at;
  };
  assert.equal(peak(0, 4000), Math.round(800 / 1.001));
  // Speaker sample 8800 is heard at mic sample n with n·1.001 − 800 = 8800.
  assert.equal(peak(8000, 16000), Math.round(9600 / 1.001));
});

Deno.test("the same seed gives the same microphone signal; another seed another one", () => {
  const speech = Float32Array.from({ length: 4000 }, (_, i) => Math.sin(i / 7) * 0.1);
  const hear = (seed: number) => {
    const room = new SimulatedRoom({ ...DEFAULT_ROOM, seed });
    room.play(Float32Array.from({ length: 4000 }, (_, i) => Math.sin(i / 3) * 0.3));
    return room.capture(speech);
  };
  assert.deepEqual(hear(5), hear(5));
  assert.notDeepEqual(hear(5), hear(6));
});

Deno.test("the microphone hears the user's speech plus background noise at its level", () => {
  const room = new SimulatedRoom(parseRoomSettings("noise=-40"));
  const speech = new Float32Array(8000).fill(0.25);
  const mic = room.capture(speech);
  const noise = mic.map((x) => x - 0.25);
  const rmsDb = 10 * Math.log10(noise.reduce((s, x) => s + x * x, 0) / noise.length);
  assert.ok(Math.abs(rmsDb - -40) < 0.5, `noise ${rmsDb} dBFS`);
});

Deno.test("room settings: parsed from key=value, refused with the range when out of it", () => {
  assert.deepEqual(parseRoomSettings(""), DEFAULT_ROOM);
  assert.deepEqual(parseRoomSettings("default"), DEFAULT_ROOM);
  assert.deepEqual(parseRoomSettings("delay=400, rt60=0.6,gain=0,noise=-50,drift=-100,seed=3"), {
    delayMs: 400,
    rt60S: 0.6,
    gainDb: 0,
    noiseDb: -50,
    driftPpm: -100,
    seed: 3,
  });
  assert.throws(() => parseRoomSettings("delay=2000"), /delay must be a number from 50 to 1000/);
  assert.throws(() => parseRoomSettings("gain=loud"), /gain must be a number/);
  assert.throws(() => parseRoomSettings("echo=1"), /unknown setting "echo"/);
});
