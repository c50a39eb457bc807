/**
 * REDACT with AssemblyAI: the session asks for the service's own streaming
 * PII redaction (docs, Streaming PII Redaction: `redact_pii`,
 * `redact_pii_policies` as a JSON array, `redact_pii_sub`), the fake answers
 * as documented (final turns redacted, no partial turns), and our redactor
 * still runs on what comes back, its tags becoming ours.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../app/config.ts";
import { startFakeAssemblyAI } from "./fakes/fake_assemblyai.ts";
import type { TranscriberEngine, TranscriptSink } from "../lib/transcribe/engine.ts";
import type { Transcript } from "../lib/transcribe/engine.ts";
import { TrackRedactor } from "../lib/redact/track_redactor.ts";
import { DEFAULT_SPEECH_MODEL, sessionUrl } from "../lib/transcribe/assemblyai_protocol.ts";
import { cloudEngine, KEY } from "./assemblyai_helpers.ts";

/** Hears anything: says a partial, then a final with a card number and a phone number in it. */
function scriptedEngine(): TranscriberEngine {
  const words = "my card is 4111 1111 1111 1111 or call 415 555 2671 thanks".split(" ");
  const say = (sink: TranscriptSink, type: "partial" | "final", n: number) =>
    sink.onTranscript({
      type,
      track: "inbound",
      text: words.slice(0, n).join(" "),
      startMs: 0,
      endMs: n * 300,
      words: words.slice(0, n).map((text, i) => ({ text, startMs: i * 300, endMs: i * 300 + 250 })),
    });
  return {
    name: "scripted",
    open(_track, sink) {
      let bytes = 0;
      let said = false;
      return {
        write(mulaw) {
          bytes += mulaw.length;
          if (!said && bytes >= 8000) {
            said = true;
            say(sink, "partial", 5);
            say(sink, "final", words.length);
          }
        },
        close: () => Promise.resolve(),
      };
    },
    whenCaughtUp: () => Promise.resolve(),
    dispose: () => Promise.resolve(),
  };
}

Deno.test("REDACT asks AssemblyAI for its own redaction, in its policy names", () => {
  const config = loadConfig({ ASSEMBLYAI_API_KEY: KEY, REDACT: "card,ssn" });
  assert.deepEqual(config.assemblyai.redactPiiPolicies, [
    "credit_card_number",
    "us_social_security_number",
  ]);
  const base = { url: "wss://x/v3/ws", speechModel: DEFAULT_SPEECH_MODEL, formatTurns: true };
  const url = new URL(sessionUrl({ ...config.assemblyai, ...base }));
  assert.equal(url.searchParams.get("redact_pii"), "true");
  assert.equal(
    url.searchParams.get("redact_pii_policies"),
    '["credit_card_number","us_social_security_number"]',
  );
  assert.equal(url.searchParams.get("redact_pii_sub"), "entity_name");
  assert.equal(url.searchParams.has("include_partial_turns"), false, "left at its default");
  const plain = new URL(
    sessionUrl({ ...loadConfig({ ASSEMBLYAI_API_KEY: KEY }).assemblyai, ...base }),
  );
  assert.equal(plain.searchParams.has("redact_pii"), false);
});

Deno.test("AssemblyAI redacts final turns and sends no partials; our tags replace its own", async () => {
  const server = await startFakeAssemblyAI({
    apiKey: KEY,
    engine: scriptedEngine(),
    realtimeToleranceMs: Infinity,
  });
  const { engine } = cloudEngine(server, KEY, {
    formatTurns: false,
    redactPiiPolicies: ["credit_card_number"],
  });
  const raw: Transcript[] = [];
  const out: Transcript[] = [];
  const redactor = new TrackRedactor({ onTranscript: (t) => out.push(t) }, {
    policies: ["card", "phone"],
  });
  try {
    const track = engine.open("inbound", {
      onTranscript: (t) => {
        raw.push(t);
        redactor.onTranscript(t);
      },
    });
    for (let i = 0; i < 16_000; i += 160) track.write(new Uint8Array(160).fill(0xff));
    await track.close();
    redactor.flush();
    const [session] = server.sessions;
    assert.deepEqual(session.unknownParams, []);
    assert.equal(session.query.redact_pii, "true");
    const turns = session.serverMessages.filter((m) => m.type === "Turn");
    assert.ok(turns.length > 0);
    assert.ok(turns.every((m) => m.end_of_turn === true), "no partial turn is sent");
    // The service's tag for the card (its policy); the phone number is not among its policies.
    assert.deepEqual(raw.map((t) => t.text), [
      "my card is [CREDIT_CARD_NUMBER] or call 415 555 2671 thanks",
    ]);
    // Ours: its tag as ours, and the phone number it left is ours to redact.
    assert.deepEqual(out.map((t) => t.text), ["my card is [CARD] or call [PHONE] thanks"]);
  } finally {
    await engine.dispose();
    await server.close();
  }
});
