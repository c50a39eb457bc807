/**
 * `deno task call --simulate --fast` on a long recording loses no words: the
 * simulator sends as fast as the engine decodes (backpressure), so the finals
 * are exactly those of the same audio decoded in order with nothing dropped.
 *
 * The reference is the engine's decoder fed the recording directly on this
 * thread, in order. A real-time run would take the recording's length (over
 * three minutes); it is not needed, because the decoder's output depends only
 * on the audio and its order, never on the clock: the endpoint rules and the
 * VAD count audio, not wall time (a worker's output equals one thread's, see
 * local_engine_test). So "same finals as in real time" is "same finals as the
 * decoder fed in order", and that is checked here through the whole user path
 * (WAV, simulator, signed WebSockets, server, decoder workers, printer).
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { readWavFile, toCallAudio } from "../lib/audio/wav.ts";
import { loadConfig } from "../app/config.ts";
import { findModel } from "../app/engine.ts";
import type { Transcript } from "../lib/transcribe/engine.ts";
import { LocalDecoder } from "../lib/transcribe/local_decoder.ts";
import { audioSet, conversation, tempWav } from "./helpers.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

Deno.test("--fast on a recording over three minutes gives the finals of the audio decoded in order, nothing dropped", async () => {
  const utterances = [
    ...await audioSet("librispeech-samples"),
    ...await audioSet("librivox-sense-and-sensibility"),
    // Over three minutes in all, and no longer: the test decodes it twice.
    ...(await audioSet("asterisk-allison-8k")).slice(0, 15),
  ];
  const recording = await conversation(utterances, 1000);
  assert.ok(recording.durationMs >= 180_000, `${recording.durationMs} ms is under three minutes`);
  const wav = await tempWav(recording.samples);
  try {
    // The reference: the same call audio (as the simulator plays it, then its 1 s tail) in order.
    const audio = toCallAudio(await readWavFile(wav));
    const expected: Transcript[] = [];
    const decoder = new LocalDecoder(await findModel(loadConfig({})));
    const track = decoder.open("inbound", {
      onTranscript: (t) => t.type === "final" && expected.push(t),
    });
    const played = new Uint8Array(audio.length + 8000).fill(0xff);
    played.set(audio);
    for (let i = 0; i < played.length; i += 160) track.write(played.subarray(i, i + 160));
    await track.close();
    await decoder.dispose();

    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "task",
        "--quiet",
        "call",
        "--simulate",
        "--fast",
        "--format",
        "jsonl",
        "--callee-audio",
        wav,
      ],
      cwd: ROOT,
      env: { DATA_DIR: await Deno.makeTempDir({ prefix: "callscribe-fast-" }) },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, stderr);
    const events = new TextDecoder().decode(output.stdout).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assert.deepEqual(events.filter((e) => e.type === "call-error"), [], "no audio dropped");
    assert.doesNotMatch(stderr, /dropped/);
    const got = events.filter((e) => e.type === "final" && e.track === "inbound");
    const brief = (t: { text: string; startMs: number; endMs: number }) =>
      `${t.text} [${t.startMs} - ${t.endMs}]`;
    assert.ok(expected.length >= utterances.length, `${expected.length} finals`);
    assert.deepEqual(got.map(brief), expected.map(brief));
  } finally {
    await Deno.remove(wav);
  }
});
