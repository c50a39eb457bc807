/**
 * Key terms: the engine's (`KEYTERMS`) and a call's own (its stream's
 * `keyterms` parameter, from the TwiML request or `deno task call
 * --keyterms`), on the local engine (sherpa-onnx hotwords, spelled with the
 * model's tokens) and on AssemblyAI (`keyterms_prompt`).
 */
import assert from "node:assert/strict";
import { loadConfig } from "../app/config.ts";
import { findModel } from "../app/engine.ts";
import { readWavFile, toCallAudio } from "../lib/audio/wav.ts";
import { NullEngine } from "../lib/transcribe/null_engine.ts";
import type {
  Track,
  TrackOptions,
  TrackTranscriber,
  TranscriberEngine,
  Transcript,
  TranscriptSink,
} from "../lib/transcribe/engine.ts";
import { parseKeytermList, readTokens, spellKeyterms } from "../lib/transcribe/keyterms.ts";
import { LocalEngine } from "../lib/transcribe/local.ts";
import { LocalDecoder } from "../lib/transcribe/local_decoder.ts";
import { decodeCommand, encodeCommand } from "../lib/transcribe/decoder_channel.ts";
import { UserError } from "../lib/user_error.ts";
import { cloudEngine, fake } from "./assemblyai_helpers.ts";
import { callTestServer, testServer } from "./helpers.ts";

const model = () => findModel(loadConfig({}));
const HESTER = "../shared/audio/librispeech-samples/1221-135766-0002.wav";

/** Every final of `audio` decoded on one track of `engine`, opened with `options`. */
async function decode(
  engine: TranscriberEngine,
  audio: Uint8Array,
  options?: TrackOptions,
): Promise<{ finals: Transcript[]; errors: string[] }> {
  const finals: Transcript[] = [];
  const errors: string[] = [];
  const track = engine.open("inbound", {
    onTranscript: (t) => t.type === "final" && finals.push(t),
    onError: (e) => errors.push(e.message),
  }, options);
  for (let i = 0; i < audio.length; i += 160) track.write(audio.subarray(i, i + 160));
  await track.close();
  return { finals, errors };
}

Deno.test("a key term is spelled with the model's own tokens, in its case", async () => {
  const tokens = readTokens(await Deno.readTextFile((await model()).tokens));
  const [hester, callscribe] = spellKeyterms(tokens, ["Hester Prynne", "callscribe"]);
  assert.equal(hester.join(""), "▁HESTER▁PRYNNE");
  assert.ok(hester.every((piece) => tokens.includes(piece)));
  assert.equal(callscribe.join(""), "▁CALLSCRIBE");
});

Deno.test("a key term the model cannot spell is refused, naming it and what is missing", async () => {
  const tokens = readTokens(await Deno.readTextFile((await model()).tokens));
  assert.throws(
    () => spellKeyterms(tokens, ["Hester", "order 42"]),
    (error: Error) =>
      error instanceof UserError && error.message.includes(`"order 42"`) &&
      error.message.includes(`"4"`),
  );
});

Deno.test("KEYTERMS lists are split on commas, ASSEMBLYAI_KEYTERMS is the same list, KEYTERMS_SCORE is read", () => {
  assert.deepEqual(parseKeytermList(" Hester Prynne, ,callscribe "), [
    "Hester Prynne",
    "callscribe",
  ]);
  assert.equal(parseKeytermList(" , "), undefined);
  const config = loadConfig({ KEYTERMS: "Hester Prynne,callscribe", KEYTERMS_SCORE: "2" });
  assert.deepEqual(config.local.keyterms, ["Hester Prynne", "callscribe"]);
  assert.equal(config.local.keytermsScore, 2);
  assert.deepEqual(loadConfig({ ASSEMBLYAI_KEYTERMS: "Twilio" }).local.keyterms, ["Twilio"]);
  assert.throws(() => loadConfig({ KEYTERMS_SCORE: "lots" }), /KEYTERMS_SCORE/);
});

Deno.test("a local engine whose KEYTERMS the model cannot spell does not start", async () => {
  await assert.rejects(
    LocalEngine.start(await model(), { workers: 1, keyterms: ["order 42"] }),
    (error: Error) => error instanceof UserError && error.message.includes(`"order 42"`),
  );
});

Deno.test("key terms change what the local decoder hears: its hotwords are the terms", async () => {
  const audio = toCallAudio(await readWavFile(HESTER));
  const plain = new LocalDecoder(await model());
  // A strong boost, so the terms' effect on this one sentence is plain to see.
  const biased = new LocalDecoder(await model(), {
    keyterms: ["Hester Prynne"],
    keytermsScore: 8,
  });
  // The same terms given by the call, on a decoder without any of its own.
  const perCall = new LocalDecoder(await model(), { keytermsScore: 8 });
  try {
    const text = async (decoder: LocalDecoder, options?: TrackOptions) =>
      (await decode(decoder, audio, options)).finals.map((t) => t.text).join(" ");
    const without = await text(plain);
    assert.notEqual(await text(biased), without);
    assert.equal(await text(perCall, { keyterms: ["Hester Prynne"] }), await text(biased));
    assert.equal(await text(perCall), without, "the call's recognizer is the call's only");
  } finally {
    await plain.dispose();
    await biased.dispose();
    await perCall.dispose();
  }
});

Deno.test("a call's key terms reach a decoder worker; one it cannot spell is reported and the track is still transcribed", async () => {
  const command = { op: "open", id: 7, track: "outbound", keyterms: ["Hester Prynne"] } as const;
  assert.deepEqual(decodeCommand(encodeCommand(command)), command);
  assert.deepEqual(decodeCommand(encodeCommand({ op: "open", id: 7, track: "inbound" })), {
    op: "open",
    id: 7,
    track: "inbound",
  });
  const engine = await LocalEngine.start(await model(), { workers: 1 });
  try {
    const audio = toCallAudio(await readWavFile(HESTER));
    const { finals, errors } = await decode(engine, audio, { keyterms: ["order 42"] });
    assert.equal(errors.length, 1);
    assert.match(errors[0], /"order 42".*not used/);
    assert.match(finals.map((t) => t.text).join(" "), /apprehension/i);
  } finally {
    await engine.dispose();
  }
});

/** Records the options each track is opened with. */
class OpenSpy extends NullEngine {
  readonly opened: Array<[Track, TrackOptions | undefined]> = [];
  override open(track: Track, sink: TranscriptSink, options?: TrackOptions): TrackTranscriber {
    this.opened.push([track, options]);
    return super.open(track, sink);
  }
}

Deno.test("a call's keyterms on its TwiML request reach its tracks as the stream's parameter", async () => {
  const engine = new OpenSpy();
  const server = await testServer({ engine });
  try {
    await callTestServer(server, {
      calleeAudio: new Uint8Array(8000).fill(0xff),
      fast: true,
      twimlPath: `/twiml/outbound?keyterms=${encodeURIComponent("Hester Prynne, callscribe")}`,
    });
    await callTestServer(server, { calleeAudio: new Uint8Array(8000).fill(0xff), fast: true });
    // An inbound call's webhook URL, as set on the number in Twilio's console.
    await callTestServer(server, {
      calleeAudio: new Uint8Array(8000).fill(0xff),
      fast: true,
      direction: "inbound",
      twimlPath: "/twiml/inbound?keyterms=Norland",
    });
  } finally {
    await server.shutdown();
  }
  const terms = ["Hester Prynne", "callscribe"];
  assert.deepEqual(engine.opened, [
    ["inbound", { keyterms: terms }],
    ["outbound", { keyterms: terms }],
    ["inbound", {}],
    ["outbound", {}],
    ["inbound", { keyterms: ["Norland"] }],
    ["outbound", { keyterms: ["Norland"] }],
  ]);
});

Deno.test("AssemblyAI gets the engine's and the call's key terms in keyterms_prompt", async () => {
  const fakeServer = await fake();
  const { engine } = cloudEngine(fakeServer, undefined, { keytermsPrompt: ["callscribe"] });
  try {
    const audio = toCallAudio(await readWavFile(HESTER));
    await decode(engine, audio, { keyterms: ["Hester Prynne", "callscribe"] });
    assert.deepEqual(JSON.parse(fakeServer.sessions[0].query.keyterms_prompt), [
      "callscribe",
      "Hester Prynne",
    ]);
  } finally {
    await engine.dispose();
    await fakeServer.close();
  }
});
