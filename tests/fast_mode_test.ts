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
import { loadConfig, type TranscriberChoice } from "../app/config.ts";
import { createEngine, findModel } from "../app/engine.ts";
import { memoryLogger } from "../lib/log.ts";
import { startFakeAssemblyAI } from "./fakes/fake_assemblyai.ts";
import type { Transcript } from "../lib/transcribe/engine.ts";
import { LocalDecoder } from "../lib/transcribe/local_decoder.ts";
import {
  audioSet,
  callTestServer,
  conversation,
  finals,
  tempWav,
  testServer,
  type Utterance,
} from "./helpers.ts";
import { KEY } from "./assemblyai_helpers.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

/** `utterances` a second apart as a WAV file, and its finals decoded in order on this thread. */
async function recordingAndReference(
  utterances: Utterance[],
  minMs: number,
): Promise<{ wav: string; expected: Transcript[] }> {
  const recording = await conversation(utterances, 1000);
  assert.ok(recording.durationMs >= minMs, `${recording.durationMs} ms is under ${minMs} ms`);
  const wav = await tempWav(recording.samples);
  addEventListener("unload", () => Deno.removeSync(wav));
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
  assert.ok(expected.length >= utterances.length, `${expected.length} finals`);
  return { wav, expected };
}

/**
 * Over three minutes, and no longer: three times the local engine's lag limit (60 s a track,
 * `maxLagSeconds`), so a `--fast` that outran the decoder would drop audio.
 */
async function longRecording(): Promise<{ wav: string; expected: Transcript[] }> {
  return await recordingAndReference([
    ...await audioSet("librispeech-samples"),
    ...await audioSet("librivox-sense-and-sensibility"),
    ...(await audioSet("asterisk-allison-8k")).slice(0, 6),
  ], 180_000);
}

let reference: ReturnType<typeof longRecording> | undefined;

Deno.test("--fast on a recording over three minutes gives the finals of the audio decoded in order, nothing dropped", async () => {
  const { wav, expected } = await (reference ??= longRecording());
  {
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
    assert.deepEqual(got.map(brief), expected.map(brief));
  }
});

/**
 * Each final's words with their times, case and punctuation aside: AssemblyAI's finals are
 * formatted (the fake capitalises and ends a turn with a period), the local engine's are not,
 * and a hybrid track may show a local final where AssemblyAI's was late; the words and their
 * times are the same whichever engine reports them, since every one of them here is the same
 * decoder on the same audio.
 */
const timedWords = (ts: Transcript[]) =>
  ts.flatMap((t) =>
    t.words.map((w) =>
      `${w.text.toLowerCase().replace(/[^a-z0-9']/g, "")} [${w.startMs} - ${w.endMs}]`
    )
  );

const CHOICES: TranscriberChoice[] = ["local", "assemblyai", "hybrid"];

/**
 * The splits' local lag limit, in seconds of audio a track: the splits' recording is over four
 * times it, as the long one is over three times the default, so a split that outran its local
 * engine drops audio here as it would there, for a fifth of the decoding.
 */
const SPLIT_MAX_LAG_SECONDS = 10;

/** The splits' recording (over 40 s): each split decodes it, most of them twice. */
async function shortRecording(): Promise<{ wav: string; expected: Transcript[] }> {
  return await recordingAndReference(
    await audioSet("librispeech-samples"),
    4 * SPLIT_MAX_LAG_SECONDS * 1000,
  );
}

let splitReference: ReturnType<typeof shortRecording> | undefined;

/*
 * Every engine and every per-track split (as TRANSCRIBER_INBOUND / TRANSCRIBER_OUTBOUND give
 * them), on one server in this process, the engines built by createEngine as `deno task serve`
 * builds them. The recording is the inbound track (the simulator's outbound track is what the
 * server plays, placed by timing, so it cannot be compared to the frame); the outbound track gets
 * the same length of silence. Each engine is under load on the inbound track once beside each
 * engine on the other track, so a split that fails to wait for either of its engines shows here
 * (without PerTrackEngine.whenCaughtUp, local inbound and AssemblyAI outbound dropped audio; on
 * the short recording with its lag limit too). AssemblyAI
 * is the fake, decoding with the local decoder on this thread: its words are that decoder's on
 * the audio it receives, so its finals are the reference's words whatever the speed, provided
 * nothing is dropped on the way. The real service takes audio at real time only (3007), so our
 * socket's pacing is off against the fake, as in the other AssemblyAI tests; the paced path's
 * backpressure is tested in assemblyai_test.
 */
for (const inbound of CHOICES) {
  for (const outbound of CHOICES) {
    // The local engine on both tracks is the test above, through `deno task call` itself.
    if (inbound === "local" && outbound === "local") continue;
    Deno.test(`--fast with inbound on ${inbound} and outbound on ${outbound}: the finals of the audio in order, nothing dropped`, async () => {
      const { wav, expected } = await (splitReference ??= shortRecording());
      const config = loadConfig({
        TRANSCRIBER_INBOUND: inbound,
        TRANSCRIBER_OUTBOUND: outbound,
        ASSEMBLYAI_API_KEY: KEY,
      });
      const fakeDecoder = new LocalDecoder(await findModel(config));
      const fake = await startFakeAssemblyAI({
        apiKey: KEY,
        engine: fakeDecoder,
        realtimeToleranceMs: Infinity,
      });
      const log = memoryLogger();
      const engine = await createEngine({
        ...config,
        local: { ...config.local, maxLagSeconds: SPLIT_MAX_LAG_SECONDS },
        assemblyai: { ...config.assemblyai, url: fake.url, realtimePacing: false },
      }, log);
      const server = await testServer({ engine });
      try {
        const { callSid } = await callTestServer(server, {
          calleeAudio: toCallAudio(await readWavFile(wav)),
          fast: true,
        });
        const errors = server.events.filter((e) => e.type === "call-error");
        assert.deepEqual(errors, [], "no audio dropped, no engine fault");
        assert.doesNotMatch([...log.lines, ...server.log.lines].join("\n"), /dropp/);
        assert.deepEqual(finals(server.events, callSid, "outbound"), []);
        const got = finals(server.events, callSid, "inbound");
        assert.deepEqual(timedWords(got), timedWords(expected));
      } finally {
        await server.shutdown();
        await engine.dispose();
        await fake.close();
        await fakeDecoder.dispose();
      }
    });
  }
}
