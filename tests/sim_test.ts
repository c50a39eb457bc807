/** The simulator's playback of what our server sends on the bidirectional stream. */
import assert from "node:assert/strict";
import { makeSid, PlaybackQueue } from "../lib/sim/twilio_sim.ts";

const audio = (bytes: number, value: number) => new Uint8Array(bytes).fill(value);

Deno.test("queued audio plays 20 ms at a time, then silence", () => {
  const queue = new PlaybackQueue();
  queue.push(audio(240, 1));
  const first = queue.next();
  assert.equal(first.frame.length, 160);
  assert.ok(first.audio && first.frame.every((b) => b === 1));
  const second = queue.next();
  assert.ok(second.audio);
  assert.deepEqual(
    [second.frame[79], second.frame[80]],
    [1, 0xff],
    "the rest of the frame is silence",
  );
  const third = queue.next();
  assert.ok(!third.audio && third.frame.every((b) => b === 0xff));
});

Deno.test("a mark is echoed once the audio before it has played", () => {
  const queue = new PlaybackQueue();
  queue.push(audio(320, 1));
  queue.push("end-of-greeting");
  queue.push(audio(160, 2));
  assert.deepEqual(queue.next().marks, []);
  assert.deepEqual(queue.next().marks, ["end-of-greeting"]);
  const last = queue.next();
  assert.ok(last.frame.every((b) => b === 2));
  assert.deepEqual(last.marks, []);
});

Deno.test("clear drops queued audio and returns its marks", () => {
  const queue = new PlaybackQueue();
  queue.push(audio(1600, 1));
  queue.push("a");
  queue.push(audio(1600, 1));
  queue.push("b");
  queue.next();
  assert.deepEqual(queue.clear(), ["a", "b"]);
  assert.ok(!queue.next().audio);
});

Deno.test("SIDs look like Twilio's", () => {
  assert.match(makeSid("CA"), /^CA[0-9a-f]{32}$/);
  assert.notEqual(makeSid("MZ"), makeSid("MZ"));
});
