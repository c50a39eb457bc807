/**
 * Redaction through the whole pipeline: a simulated Twilio call in which the
 * caller reads a card number, its expiry and CVV amid sentences (the
 * asterisk voice's digits), a server with `REDACT=all` and recordings on, the
 * real local engine. Nothing the server lets out (events for the printer,
 * live page and webhooks, the store and its search, exports) holds a digit
 * of the card, and the recording is silent under the redacted words and
 * unchanged everywhere else.
 */
import assert from "node:assert/strict";
import { callTestServer, testServer } from "./helpers.ts";
import { redactionCalls, scoreRedaction } from "../bench/redaction_calls.ts";
import { normalizeToken, numberRunMask } from "../lib/redact/find_entities.ts";
import { REDACT_TAGS } from "../lib/redact/policies.ts";
import { REDACT_MARGIN_MS } from "../lib/call/session.ts";
import { mulawDecodeSample } from "../lib/audio/mulaw.ts";
import { HEADER_BYTES } from "../lib/recording/recording_file.ts";
import { exportTranscript } from "../lib/export/transcript_export.ts";
import { makeSid } from "../lib/sim/twilio_sim.ts";
import { ONES } from "../lib/metrics/wer.ts";

const TAGS = new Set(Object.values(REDACT_TAGS));

/** Digit words of an entity's value, for searching the store by them ("4111" → four, one). */
const DIGIT_WORDS = ONES.slice(0, 10);

Deno.test("a card read aloud reaches no listener, store, search, export or recording", async () => {
  await assertRedactedCall("card-expiry-cvv");
});

Deno.test("test cards of repeated digits (4111 1111 1111 1111, 5555 5555 5555 4444) read aloud are redacted and silenced", async () => {
  // Before the local engine took a new stream per utterance, it heard "Four", "One" and lost
  // 15 ones: the ones were in no tag, so its audio stayed in the recording.
  await assertRedactedCall("repeated-digits");
});

Deno.test("cards read briskly in groups of four, 4111 1111 1111 1111 among them, are redacted and silenced", async () => {
  // Each group is one utterance, and the engine says "one one one one" as "One": five digits
  // heard for 4111…, caught as a number read in four groups.
  await assertRedactedCall("cards-read-briskly");
});

/**
 * Runs a test call through the server: no digit of its entities in any
 * event, the store, search or an export; the recording silent under them.
 */
async function assertRedactedCall(name: string): Promise<void> {
  const call = (await redactionCalls()).find((c) => c.name === name)!;
  const dataDir = await Deno.makeTempDir({ prefix: "callscribe-redact-" });
  const server = await testServer({ dataDir, env: { REDACT: "all" }, recordCalls: "1" });
  const callSid = makeSid("CA");
  try {
    await callTestServer(server, { callSid, calleeAudio: call.mulaw, fast: true, tailMs: 2000 });

    // Every transcript event, partials included: no digit word over the entities.
    const transcripts = server.events.flatMap((e) =>
      e.type === "transcript" && e.call.callSid === callSid && e.transcript.track === "inbound"
        ? [e.transcript]
        : []
    );
    assert.ok(transcripts.some((t) => t.type === "partial"), "partials were emitted");
    for (const t of transcripts) {
      const mask = numberRunMask(t.words.map((w) => normalizeToken(w.text)));
      const clear = t.words.filter((w, i) =>
        mask[i] && call.entities.some((e) => w.startMs < e.endMs && w.endMs > e.startMs)
      );
      assert.deepEqual(clear, [], `${t.type} "${t.text}" shows digits of an entity`);
    }

    // What was stored is what was emitted; scored, every entity is hidden under a tag.
    const segments = (await server.store.segments(callSid)).filter((s) => s.track === "inbound");
    const score = scoreRedaction([{ call, words: segments.flatMap((s) => s.words) }]);
    assert.deepEqual(score.missed, []);
    assert.ok(
      segments.some((s) => s.text.includes("[CARD]")),
      segments.map((s) => s.text).join(" | "),
    );

    // Search finds no call by the card's digits; the TXT export shows the tag.
    const digits = new Set(call.entities.flatMap((e) => [...e.value.replace(/\D/g, "")]));
    assert.ok(digits.size > 0);
    for (const digit of digits) {
      const word = DIGIT_WORDS[Number(digit)];
      assert.deepEqual((await server.store.listCalls({ search: word })).calls, [], word);
    }
    const storedCall = (await server.store.getCall(callSid))!;
    const txt = exportTranscript("txt", storedCall, await server.store.segments(callSid));
    assert.match(txt, /\[CARD\]/);

    // The recording: zero under each tag (its words' times plus the margin), as sent elsewhere.
    const wav = await Deno.readFile(`${dataDir}/recordings/${callSid}.wav`);
    const pcm = new Int16Array(wav.slice(HEADER_BYTES).buffer);
    const spans = segments.flatMap((s) => s.words).filter((w) => TAGS.has(w.text)).map((w) => [
      Math.max(0, (w.startMs - REDACT_MARGIN_MS.before) * 8),
      (w.endMs + REDACT_MARGIN_MS.after) * 8,
    ]);
    assert.ok(spans.length > 0);
    let silenced = 0;
    for (let i = 0; i < call.mulaw.length && 2 * i < pcm.length; i++) {
      const inSpan = spans.some(([a, b]) => i >= a && i < b);
      if (inSpan) {
        assert.equal(pcm[2 * i], 0, `inbound sample ${i} (${i / 8} ms) is silenced`);
        silenced++;
      } else {
        assert.equal(pcm[2 * i], mulawDecodeSample(call.mulaw[i]), `inbound sample ${i} unchanged`);
      }
    }
    // The entities' own audio (where it is not silence) lies under the silenced spans.
    let speech = 0;
    let covered = 0;
    const uncovered: string[] = [];
    for (const e of call.entities) {
      for (let i = e.startMs * 8; i < e.endMs * 8; i++) {
        if (Math.abs(mulawDecodeSample(call.mulaw[i])) < 300) continue;
        speech++;
        if (pcm[2 * i] === 0) covered++;
        else {uncovered.push(
            `${e.policy} at ${(i / 8 - e.startMs).toFixed(0)} of ${e.endMs - e.startMs} ms`,
          );}
      }
    }
    console.log(
      `silenced ${(silenced / 8000).toFixed(1)} s; ${(100 * covered / speech).toFixed(1)} % of ` +
        "the entities' speech samples",
    );
    assert.deepEqual(uncovered.slice(0, 5), [], "every speech sample of the entities is silenced");
  } finally {
    await server.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  }
}
