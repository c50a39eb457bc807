import assert from "node:assert/strict";
import { fillSilence, TrackTimeline } from "../lib/audio/timeline.ts";
import {
  ByteBatcher,
  durationMs,
  FRAME_BYTES,
  FRAME_MS,
  silenceFrame,
  splitFrames,
} from "../lib/audio/framing.ts";
import { MULAW_SILENCE } from "../lib/audio/mulaw.ts";

const frame = () => new Uint8Array(FRAME_BYTES).fill(0x42);

Deno.test("frames are 20 ms of 8 kHz µ-law", () => {
  assert.equal(FRAME_MS, 20);
  assert.equal(FRAME_BYTES, 160);
  assert.equal(durationMs(new Uint8Array(FRAME_BYTES)), 20);
  assert.equal(durationMs(8000), 1000);
});

Deno.test("splitFrames pads the last frame with silence", () => {
  const audio = Uint8Array.from({ length: 400 }, (_, i) => i & 0x7f);
  const frames = splitFrames(audio);
  assert.equal(frames.length, 3);
  assert.ok(frames.every((f) => f.length === FRAME_BYTES));
  assert.deepEqual(frames[1], audio.subarray(160, 320));
  assert.deepEqual(frames[2].subarray(0, 80), audio.subarray(320));
  assert.ok(frames[2].subarray(80).every((b) => b === MULAW_SILENCE));
  assert.equal(splitFrames(new Uint8Array(320)).length, 2);
  assert.equal(splitFrames(new Uint8Array(0)).length, 0);
});

Deno.test("silenceFrame returns a new 0xFF frame each time", () => {
  const a = silenceFrame();
  const b = silenceFrame();
  assert.equal(a.length, FRAME_BYTES);
  assert.ok(a.every((x) => x === 0xff));
  assert.notEqual(a, b);
});

Deno.test("contiguous frames need no fill", () => {
  const timeline = new TrackTimeline();
  for (let i = 0; i < 50; i++) {
    assert.deepEqual(timeline.place(i * FRAME_MS, frame()), { silenceBytes: 0 });
  }
  assert.equal(timeline.positionMs, 1000);
});

Deno.test("a 100 ms gap is filled with 800 bytes of silence", () => {
  const timeline = new TrackTimeline();
  timeline.place(0, frame());
  timeline.place(20, frame());
  // Frames for 40..120 ms were lost; the next one is stamped 140.
  assert.deepEqual(timeline.place(140, frame()), { silenceBytes: 800 });
  assert.equal(timeline.positionMs, 160);
  assert.deepEqual(timeline.place(160, frame()), { silenceBytes: 0 });
});

Deno.test("a stream starting late is filled from zero", () => {
  const timeline = new TrackTimeline();
  assert.equal(timeline.place(60, frame()).silenceBytes, 480);
  assert.equal(timeline.positionMs, 80);
});

Deno.test("bunched frames with correct timestamps are not gaps", () => {
  const timeline = new TrackTimeline();
  // Arrival time doesn't matter, only the stamps: ten frames at once, then a pause, then ten more.
  for (let i = 0; i < 10; i++) assert.equal(timeline.place(i * 20, frame()).silenceBytes, 0);
  for (let i = 10; i < 20; i++) assert.equal(timeline.place(i * 20, frame()).silenceBytes, 0);
  assert.equal(timeline.positionMs, 400);
});

Deno.test("jitter of a few ms within a frame is not a gap", () => {
  const timeline = new TrackTimeline();
  const stamps = [0, 21, 43, 59, 80, 102, 118, 145, 160];
  for (const stamp of stamps) {
    assert.deepEqual(
      timeline.place(stamp, frame()),
      { silenceBytes: 0 },
      `at ${stamp}`,
    );
  }
  assert.equal(timeline.positionMs, stamps.length * 20);
});

Deno.test("a gap is filled in whole milliseconds", () => {
  const timeline = new TrackTimeline();
  timeline.place(0, frame());
  const { silenceBytes } = timeline.place(57, frame()); // 37 ms ahead
  assert.equal(silenceBytes, 37 * 8);
  assert.equal(timeline.positionMs, 77);
});

Deno.test("a duplicate or backward timestamp gets no fill", () => {
  const timeline = new TrackTimeline();
  timeline.place(0, frame());
  timeline.place(20, frame());
  assert.deepEqual(timeline.place(20, frame()), { silenceBytes: 0 }); // duplicate
  assert.deepEqual(timeline.place(0, frame()), { silenceBytes: 0 }); // backward jump
  // The caller fed them anyway, so the track is now at 80 ms; stamps catch up without fill.
  assert.equal(timeline.positionMs, 80);
  assert.deepEqual(timeline.place(40, frame()), { silenceBytes: 0 });
  assert.deepEqual(timeline.place(100, frame()), { silenceBytes: 0 });
});

Deno.test("fillSilence gives 0xFF bytes of the asked length", () => {
  for (const n of [0, 8, 160, 800, 9000, 100_000]) {
    const silence = fillSilence(n);
    assert.equal(silence.length, n);
    assert.ok(silence.every((b) => b === MULAW_SILENCE));
  }
});

Deno.test("ByteBatcher: pieces of any size come out as whole batches in order; drain takes the rest", () => {
  const batcher = new ByteBatcher(800);
  const audio = Uint8Array.from({ length: 2500 }, (_, i) => i % 251);
  const batches: Uint8Array[] = [];
  // 20 ms frames, then odd sizes, as streams and tests write them.
  for (const [from, to] of [[0, 160], [160, 320], [320, 1337], [1337, 1338], [1338, 2500]]) {
    batcher.push(audio.subarray(from, to), (batch) => batches.push(batch.slice()));
  }
  assert.deepEqual(batches.map((b) => b.length), [800, 800, 800]);
  assert.deepEqual(batches[1], audio.subarray(800, 1600));
  assert.deepEqual(batcher.drain(), audio.subarray(2400));
  assert.equal(batcher.drain().length, 0);
});
