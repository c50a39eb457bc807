/**
 * A whole call, offline: the Twilio simulator calls our server over real
 * HTTP and WebSockets; real speech plays on both tracks and the local engine
 * (real sherpa-onnx decoding) transcribes each side on its own.
 */
import assert from "node:assert/strict";
import { makeSid } from "../lib/sim/twilio_sim.ts";
import type { Transcript } from "../lib/transcribe/engine.ts";
import { wordErrorRate } from "../lib/metrics/wer.ts";
import {
  audioSet,
  callTestServer,
  conversation,
  finals,
  tempWav,
  testServer,
  toMulaw,
} from "./helpers.ts";

/** Measured on this pipeline (README, "Performance": WER); set just above. */
const MAX_WER = { inbound: 0.17, outbound: 0.17 };

function checkTimes(transcripts: Transcript[], durationMs: number) {
  let previousStart = 0;
  for (const t of transcripts) {
    assert.ok(t.startMs >= 0 && t.startMs <= t.endMs, `bad range in ${JSON.stringify(t)}`);
    assert.ok(t.endMs <= durationMs, `${t.endMs} ms is past the track's ${durationMs} ms`);
    assert.ok(t.startMs >= previousStart, "finals go back in time");
    previousStart = t.startMs;
    for (const w of t.words) assert.ok(w.startMs >= t.startMs && w.endMs <= t.endMs);
  }
}

const text = (ts: Transcript[]) => ts.map((t) => t.text).join(" ");

Deno.test("a simulated call is transcribed on both tracks", async () => {
  const callee = await conversation((await audioSet("librispeech-samples")).slice(0, 4));
  const caller = await conversation(await audioSet("librivox-sense-and-sensibility"));
  const server = await testServer({ audioInput: await tempWav(caller.samples) });
  try {
    const callSid = makeSid("CA");
    const result = await callTestServer(server, {
      calleeAudio: toMulaw(callee.samples),
      callSid,
      fast: true,
      // The call lasts until the longer side has finished talking.
      tailMs: Math.max(1000, caller.durationMs - callee.durationMs + 1000),
    });
    const inbound = finals(server.events, callSid, "inbound");
    const outbound = finals(server.events, callSid, "outbound");
    const inboundWer = wordErrorRate(callee.text, text(inbound));
    const outboundWer = wordErrorRate(caller.text, text(outbound));
    console.log(
      `inbound WER ${inboundWer.wer.toFixed(3)}, outbound WER ${outboundWer.wer.toFixed(3)}`,
    );
    assert.ok(inboundWer.wer < MAX_WER.inbound, `inbound: ${text(inbound)}`);
    assert.ok(outboundWer.wer < MAX_WER.outbound, `outbound: ${text(outbound)}`);
    const callMs = result.framesSent * 20;
    checkTimes(inbound, callMs);
    checkTimes(outbound, callMs);
    // The laptop bridge marks the end of each spoken burst; each mark comes back once played.
    assert.ok(result.marksEchoed.length >= 2, `marks echoed: ${result.marksEchoed}`);
    assert.deepEqual(result.marksEchoed, result.marksEchoed.map((_, i) => `speech-${i + 1}`));
  } finally {
    await server.shutdown();
  }
});

Deno.test("two calls at once keep their words apart", async () => {
  const a = await conversation((await audioSet("librispeech-samples")).slice(0, 3));
  const b = await conversation((await audioSet("asterisk-allison-8k")).slice(0, 4));
  const server = await testServer();
  try {
    const sids = [makeSid("CA"), makeSid("CA")];
    await Promise.all([
      callTestServer(server, { calleeAudio: toMulaw(a.samples), callSid: sids[0], fast: true }),
      callTestServer(server, { calleeAudio: toMulaw(b.samples), callSid: sids[1], fast: true }),
    ]);
    // Neither call lost audio: no call reported an error (e.g. the engine's lag limit).
    assert.deepEqual(server.events.flatMap((e) => e.type === "call-error" ? [e.message] : []), []);
    const heardA = text(finals(server.events, sids[0], "inbound"));
    const heardB = text(finals(server.events, sids[1], "inbound"));
    assert.ok(wordErrorRate(a.text, heardA).wer < 0.25, `call A heard: ${heardA}`);
    assert.ok(wordErrorRate(b.text, heardB).wer < 0.35, `call B heard: ${heardB}`);
    // Each call's words are its own: against the other call's reference nearly everything is wrong.
    assert.ok(wordErrorRate(b.text, heardA).wer > 0.8);
    assert.ok(wordErrorRate(a.text, heardB).wer > 0.8);
    // Nothing was sent on the outbound tracks, so nothing was heard there.
    assert.equal(finals(server.events, sids[0], "outbound").length, 0);
  } finally {
    await server.shutdown();
  }
});
