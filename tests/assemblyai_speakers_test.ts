/**
 * AssemblyAI's speakers within a track (`speaker_labels`, `max_speakers`) and
 * its language detection: asked for when configured and the model has them,
 * kept per final, shown in the console, the store, the exports, the
 * webhooks and the dashboard; a model name we do not list is sent as given.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../app/config.ts";
import { createPrinter } from "../lib/console/printer.ts";
import { webhookMessage } from "../lib/delivery/webhook_message.ts";
import { memoryLogger } from "../lib/log.ts";
import { callPage } from "../lib/server/pages.ts";
import { exportTranscript } from "../lib/export/transcript_export.ts";
import { AssemblyAIEngine } from "../lib/transcribe/assemblyai.ts";
import { parseServerMessage, sessionUrl } from "../lib/transcribe/assemblyai_protocol.ts";
import { UserError } from "../lib/user_error.ts";
import { cloudEngine, fake, KEY } from "./assemblyai_helpers.ts";
import { audioSet, callTestServer, conversation, finals, testServer, toMulaw } from "./helpers.ts";

const env = { ASSEMBLYAI_API_KEY: KEY };

Deno.test("speaker labels and language detection go in the session query, where the model has them", () => {
  const config = loadConfig({
    ...env,
    ASSEMBLYAI_SPEECH_MODEL: "universal-streaming-multilingual",
    ASSEMBLYAI_SPEAKER_LABELS: "1",
    ASSEMBLYAI_MAX_SPEAKERS: "3",
    ASSEMBLYAI_LANGUAGE_DETECTION: "1",
  });
  const query = new URL(sessionUrl(new AssemblyAIEngine(config.assemblyai).options)).searchParams;
  assert.equal(query.get("speaker_labels"), "true");
  assert.equal(query.get("max_speakers"), "3");
  assert.equal(query.get("language_detection"), "true");
  const plain = new URL(sessionUrl(new AssemblyAIEngine(loadConfig(env).assemblyai).options));
  assert.equal(plain.searchParams.get("speaker_labels"), null);
  assert.throws(
    () =>
      loadConfig({ ...env, ASSEMBLYAI_SPEECH_MODEL: "whisper-rt", ASSEMBLYAI_SPEAKER_LABELS: "1" }),
    (e) =>
      e instanceof UserError && /SPEAKER_LABELS is not available on whisper-rt/.test(e.message),
  );
  assert.throws(
    () => loadConfig({ ...env, ASSEMBLYAI_MAX_SPEAKERS: "2" }),
    (e) =>
      e instanceof UserError && /MAX_SPEAKERS needs ASSEMBLYAI_SPEAKER_LABELS=1/.test(e.message),
  );
  assert.throws(
    () => loadConfig({ ...env, ASSEMBLYAI_SPEAKER_LABELS: "1", ASSEMBLYAI_MAX_SPEAKERS: "0" }),
    /ASSEMBLYAI_MAX_SPEAKERS/,
  );
});

Deno.test("a speech model callscribe does not list is warned about and sent as given", () => {
  const config = loadConfig({ ...env, ASSEMBLYAI_SPEECH_MODEL: "universal-3-7-pro" });
  const log = memoryLogger();
  const engine = new AssemblyAIEngine(config.assemblyai, log);
  assert.equal(
    new URL(sessionUrl(engine.options)).searchParams.get("speech_model"),
    "universal-3-7-pro",
  );
  assert.equal(engine.model.family, "u3-pro", "a new model is taken for the newest family");
  assert.match(log.lines.join("\n"), /warn: .*universal-3-7-pro is not one callscribe knows/);
});

Deno.test("Turn's speaker_label and language fields are parsed strictly", () => {
  const turn = (extra: string) =>
    `{"type":"Turn","turn_order":0,"turn_is_formatted":true,"end_of_turn":true,` +
    `"transcript":"Hola.","end_of_turn_confidence":0.9,"words":[{"start":0,"end":100,` +
    `"text":"Hola.","confidence":0.9,"word_is_final":true,"speaker":"B"}]${extra}}`;
  const parsed = parseServerMessage(
    turn(`,"speaker_label":"B","language_code":"es","language_confidence":0.8`),
  );
  assert.deepEqual(
    parsed.type === "Turn" &&
      [
        parsed.speaker_label,
        parsed.language_code,
        parsed.language_confidence,
        parsed.words[0].speaker,
      ],
    ["B", "es", 0.8, "B"],
  );
  assert.throws(() => parseServerMessage(turn(`,"speaker_label":2`)), /speaker_label/);
});

Deno.test("an IVR then an agent on the inbound track: each final keeps its speaker and language, everywhere it is shown", async () => {
  const utterances = (await audioSet("librispeech-samples")).slice(0, 3);
  const callee = await conversation(utterances, 1500);
  // The fake's diarization and language detection are the test's to say: the first utterance is
  // speaker A (an IVR, in English), the rest speaker B (an agent, in Spanish).
  const switchMs = callee.durationMs / 3;
  const fakeServer = await fake({
    speakerAt: (ms) => ms < switchMs ? "A" : "B",
    languageAt: (ms) => ms < switchMs ? "en" : "es",
  });
  const { engine } = cloudEngine(fakeServer, KEY, {
    speechModel: "universal-streaming-multilingual",
    speakerLabels: true,
    maxSpeakers: 2,
    languageDetection: true,
  });
  const server = await testServer({ engine });
  const printed: string[] = [];
  server.registry.pipeline.publish(
    createPrinter({ format: "text", write: (t) => printed.push(t), isTerminal: false }),
  );
  try {
    const { callSid } = await callTestServer(server, {
      calleeAudio: toMulaw(callee.samples),
      fast: true,
    });
    const heard = finals(server.events, callSid, "inbound");
    assert.ok(heard.length >= 2, `${heard.length} finals`);
    const who = heard.map((t) => `${t.speaker},${t.language}`);
    assert.equal(who[0], "A,en");
    assert.equal(who.at(-1), "B,es");
    assert.deepEqual(
      [...new Set(who)].sort(),
      ["A,en", "B,es"],
      "every final has both, as the fake said",
    );
    assert.deepEqual(fakeServer.sessions.map((s) => s.unknownParams), [[], []]);

    const lines = printed.join("").split("\n").filter((l) => l.startsWith("Inbound"));
    assert.match(lines[0], /^Inbound \(A, en\): /);
    assert.match(lines.at(-1)!, /^Inbound \(B, es\): /);

    const segments = (await server.store.segments(callSid)).filter((s) => s.track === "inbound");
    assert.deepEqual(segments.map((s) => `${s.speaker},${s.language}`), who);
    const call = (await server.store.getCall(callSid))!;
    const vtt = exportTranscript("vtt", call, segments);
    assert.match(vtt, /<v Inbound \(A, en\)>/);
    assert.match(vtt, /<v Inbound \(B, es\)>/);
    assert.match(exportTranscript("srt", call, segments), /\r\nInbound \(B, es\): /);
    const json = JSON.parse(exportTranscript("json", call, segments));
    assert.deepEqual(
      json.segments.map((s: { speakerLabel: string; language: string }) =>
        `${s.speakerLabel},${s.language}`
      ),
      who,
    );
    const finalEvent = server.events.find((e) =>
      e.type === "transcript" && e.transcript.type === "final" && e.transcript.speaker === "B"
    )!;
    const webhook = JSON.parse(webhookMessage(finalEvent)!.body);
    assert.deepEqual([webhook.speakerLabel, webhook.language], ["B", "es"]);
    const page = callPage({ call, active: false, segments, lastEventId: "" });
    assert.match(page, /<span class="speaker">B, es<\/span>/);
  } finally {
    await server.shutdown();
    await engine.dispose();
    await fakeServer.close();
  }
});
