/**
 * The current AssemblyAI models (Universal-Streaming and U3 Pro), the hybrid
 * engine, an engine per track, and the socket's handshake, warnings, rate
 * and catch-up, all against the local fake with real speech.
 */
import assert from "node:assert/strict";
import { memoryLogger } from "../lib/log.ts";
import type { CallEvent } from "../lib/call/events.ts";
import {
  type FakeAssemblyAI,
  REALTIME_TOLERANCE_MS,
  startFakeAssemblyAI,
} from "./fakes/fake_assemblyai.ts";
import { makeSid } from "../lib/sim/twilio_sim.ts";
import { AssemblyAIEngine, type AssemblyAITrack } from "../lib/transcribe/assemblyai.ts";
import { parseServerMessage, sessionUrl } from "../lib/transcribe/assemblyai_protocol.ts";
import type { TranscriberEngine, Transcript } from "../lib/transcribe/engine.ts";
import { HybridEngine } from "../lib/transcribe/hybrid.ts";
import { PerTrackEngine } from "../lib/transcribe/per_track.ts";
import { loadConfig } from "../app/config.ts";
import { createEngine } from "../app/engine.ts";
import { UserError } from "../lib/user_error.ts";
import { wordErrorRate } from "../lib/metrics/wer.ts";
import { sleep } from "../lib/async/sleep.ts";
import { cloudEngine, fake, KEY, words } from "./assemblyai_helpers.ts";
import type { SpeechEvent, VoiceDetector } from "../lib/transcribe/voice_detector.ts";
import {
  audioSet,
  callTestServer,
  conversation,
  finals,
  sharedEngine,
  tempWav,
  testServer,
  toMulaw,
} from "./helpers.ts";

const MODELS = ["universal-streaming-english", "u3-rt-pro"] as const;

function cloud(
  server: FakeAssemblyAI,
  more: Partial<ConstructorParameters<typeof AssemblyAIEngine>[0]> = {},
) {
  return cloudEngine(server, KEY, more);
}

/** One simulated call (callee on inbound, caller on outbound); every event in order. */
async function runCall(engine: TranscriberEngine, caller = false) {
  const callee = await conversation((await audioSet("librispeech-samples")).slice(0, 3));
  const laptop = caller
    ? await conversation((await audioSet("librivox-sense-and-sensibility")).slice(0, 2))
    : undefined;
  const server = await testServer({
    engine,
    audioInput: laptop ? await tempWav(laptop.samples) : undefined,
  });
  try {
    const callSid = makeSid("CA");
    await callTestServer(server, {
      calleeAudio: toMulaw(callee.samples),
      callSid,
      fast: true,
      tailMs: laptop ? Math.max(1000, laptop.durationMs - callee.durationMs + 1000) : 1000,
    });
    return {
      events: [...server.events] as CallEvent[],
      callSid,
      logs: server.log.lines,
      callee,
      stored: await server.store.segments(callSid),
    };
  } finally {
    await server.shutdown();
  }
}

const transcripts = (events: CallEvent[], track = "inbound") =>
  events.flatMap((e) =>
    e.type === "transcript" && e.transcript.track === track ? [e.transcript] : []
  );

for (const model of MODELS) {
  Deno.test(`${model}: AssemblyAI alone, then hybrid: local partials first, cloud finals, same words`, async () => {
    const server = await fake();
    const alone = cloud(server, { speechModel: model });
    const hybridCloud = cloud(server, { speechModel: model, standIn: "local" });
    const hybrid = new HybridEngine(await sharedEngine(), hybridCloud.engine);
    try {
      const a = await runCall(alone.engine);
      const onlyCloud = finals(a.events, a.callSid, "inbound");
      assert.ok(onlyCloud.length >= 2, `too few finals: ${onlyCloud.length}`);
      const inbound = server.sessions.splice(0).find((s) =>
        s.audioMs > 0 &&
        s.serverMessages.some((m) => m.type === "Turn")
      )!;
      const turns = inbound.serverMessages.filter((m) => m.type === "Turn");
      const ends = turns.filter((m) => m.end_of_turn);
      const spokenWords = ends.filter((m) => m.turn_is_formatted)
        .reduce((n, m) => n + (m.words as unknown[]).length, 0);
      if (model === "u3-rt-pro") {
        // U3 Pro: no format_turns on the wire, one formatted end of turn, sparse partials.
        assert.equal(inbound.query.format_turns, undefined);
        assert.ok(ends.every((m) => m.turn_is_formatted), "an unformatted U3 Pro end of turn");
        const partials = turns.filter((m) => !m.end_of_turn);
        assert.ok(
          partials.length < spokenWords / 3,
          `${partials.length} partials, ${spokenWords} words`,
        );
        assert.equal(onlyCloud.length, ends.length);
      } else {
        assert.equal(inbound.query.format_turns, "true");
        assert.ok(turns.length - ends.length >= spokenWords, "partials should grow word by word");
        assert.equal(onlyCloud.length, ends.length / 2);
      }
      assert.equal(
        inbound.serverMessages.filter((m) => m.type === "SpeechStarted").length,
        onlyCloud.length,
      );

      const h = await runCall(hybrid);
      assert.ok(await server.allClosed(), "a session was left open");
      const all = transcripts(h.events);
      const hybridFinals = all.filter((t) => t.type === "final");
      // Every final is AssemblyAI's, one per turn, with the same words as AssemblyAI alone.
      assert.deepEqual(hybridFinals.map((t) => t.engine), hybridFinals.map(() => "assemblyai"));
      assert.equal(hybridFinals.length, onlyCloud.length);
      const wer = wordErrorRate(words(onlyCloud).join(" "), words(hybridFinals).join(" ")).wer;
      assert.ok(wer <= 0.02, `hybrid vs AssemblyAI alone: WER ${wer}`);
      // Partials are the local engine's, and each turn shows one before its final.
      const partials = all.filter((t) => t.type === "partial");
      assert.ok(partials.length > 0 && partials.every((t) => t.engine === "local"));
      for (const final of hybridFinals) {
        const before = all.slice(0, all.indexOf(final)).filter((t) =>
          t.type === "partial" && t.endMs > final.startMs && t.startMs < final.endMs
        );
        assert.ok(before.length > 0, `no local partial before the final "${final.text}"`);
      }
      assert.ok(!h.events.some((e) => e.type === "call-error"));
    } finally {
      await alone.engine.dispose();
      await hybrid.dispose();
      await server.close();
    }
  });

  Deno.test(`${model}: hybrid, AssemblyAI lost mid-call: the local finals stand in, no word lost`, async () => {
    const localOnly = await runCall(await sharedEngine());
    const expected = finals(localOnly.events, localOnly.callSid, "inbound");
    // 1008 after the first turn is not retried: AssemblyAI is gone for the rest of the call.
    const server = await fake({ dropAfterTurns: 1, dropCode: 1008, dropSessions: 2 });
    const c = cloud(server, { speechModel: model, standIn: "local" });
    const hybrid = new HybridEngine(await sharedEngine(), c.engine);
    try {
      const h = await runCall(hybrid);
      const heard = finals(h.events, h.callSid, "inbound");
      const engines = heard.map((t) => t.engine);
      assert.equal(engines[0], "assemblyai", engines.join(","));
      assert.equal(engines.at(-1), "local", engines.join(","));
      const wer = wordErrorRate(words(expected).join(" "), words(heard).join(" ")).wer;
      assert.ok(
        wer <= 0.05,
        `WER vs the local engine alone ${wer}:\n${words(expected)}\n${words(heard)}`,
      );
      assert.deepEqual(
        h.stored.map((s) => s.engine),
        engines,
        "the store keeps each final's engine",
      );
      const errors = h.events.flatMap((e) => e.type === "call-error" ? [e.message] : []);
      assert.ok(
        errors.some((m) => /1008.*local engine's finals stand in/.test(m)),
        errors.join("\n"),
      );
      assert.ok(await server.allClosed());
    } finally {
      await hybrid.dispose();
      await server.close();
    }
  });
}

Deno.test("engine per track: AssemblyAI for the phone party, local for the laptop: one session", async () => {
  const server = await fake();
  const c = cloud(server);
  const local = await sharedEngine();
  const mixed = new PerTrackEngine({ inbound: c.engine, outbound: local }, [c.engine]);
  try {
    assert.equal(mixed.name, "inbound:assemblyai,outbound:local");
    const run = await runCall(mixed, true);
    assert.equal(server.sessions.length, 1, "the outbound track opened a cloud session");
    const inbound = finals(run.events, run.callSid, "inbound");
    const outbound = finals(run.events, run.callSid, "outbound");
    assert.ok(inbound.length > 0 && outbound.length > 0);
    assert.ok(inbound.every((t) => t.engine === "assemblyai"));
    assert.ok(outbound.every((t) => t.engine === "local"));
    // The store records each final's engine.
    assert.equal(run.stored.length, inbound.length + outbound.length);
    for (const segment of run.stored) {
      assert.equal(segment.engine, segment.track === "inbound" ? "assemblyai" : "local");
    }
    // AssemblyAI's formatted finals on one side, the local engine's lower case on the other.
    assert.ok(inbound.every((t) => /^[A-Z].*\.$/.test(t.text)));
    assert.ok(await server.allClosed());
  } finally {
    await mixed.dispose();
    await server.close();
  }
});

/** Feeds `ms` of real speech to one track; `paced` writes 100 ms every 100 ms, as a call does. */
async function feed(
  engine: AssemblyAIEngine,
  ms: number,
  paced = false,
  during?: (t: AssemblyAITrack, atMs: number) => void,
) {
  const speech = await conversation((await audioSet("librispeech-samples")).slice(0, 3), 0);
  const audio = toMulaw(speech.samples).subarray(0, ms * 8);
  const out: Transcript[] = [];
  const errors: string[] = [];
  const track = engine.open("inbound", {
    onTranscript: (t) => out.push(t),
    onError: (e) => errors.push(e.message),
  });
  const started = performance.now();
  for (let i = 0; i < audio.length; i += 800) {
    track.write(audio.subarray(i, i + 800));
    if (paced) {
      during?.(track, i / 8);
      const wait = started + (i + 800) / 8 - performance.now();
      if (wait > 0) await sleep(wait);
    }
  }
  const closing = performance.now();
  await track.close();
  return {
    out,
    errors,
    closeMs: performance.now() - closing,
    text: speech.text,
    share: Math.min(1, ms / speech.durationMs),
  };
}

Deno.test("a server that never sends Begin: three attempts of 1 s, then a clear error; close does not hang", async () => {
  const server = await fake({ stallBegin: true });
  const c = cloud(server, { beginTimeoutMs: 1000 });
  try {
    const { errors, closeMs } = await feed(c.engine, 1000);
    assert.equal(server.sessions.length, 3, "the SDK's policy: one attempt and two retries");
    assert.equal(errors.length, 1, errors.join("\n"));
    assert.match(
      errors[0],
      /gave up after 3 attempts: no Begin from AssemblyAI within 1000 ms.*ASSEMBLYAI_API_KEY/,
    );
    assert.ok(closeMs < 6000, `close took ${Math.round(closeMs)} ms`);
    assert.equal(c.engine.openTracks, 0);
    assert.ok(await server.allClosed(5000), "a stalled session was left open");
  } finally {
    await c.engine.dispose();
    await server.close();
  }
});

Deno.test("ForceEndpoint and UpdateConfiguration reach the live session; bad updates are refused", async () => {
  const server = await fake();
  const c = cloud(server, { speechModel: "u3-rt-pro" });
  try {
    const track = c.engine.open("inbound", { onTranscript: () => {} });
    track.write(new Uint8Array(8000).fill(0xff));
    while (!(server.sessions[0]?.audioMs > 0)) await sleep(20);
    assert.ok(track.forceEndpoint());
    assert.ok(
      track.updateConfiguration({ keyterms_prompt: ["callscribe"], max_turn_silence: 900 }),
    );
    assert.throws(
      () => track.updateConfiguration({ end_of_turn_confidence_threshold: 0.5 }),
      /does not apply to u3-rt-pro/,
    );
    await track.close();
    assert.deepEqual(server.sessions[0].clientMessages, [
      { type: "ForceEndpoint" },
      { type: "UpdateConfiguration", keyterms_prompt: ["callscribe"], max_turn_silence: 900 },
      { type: "Terminate" },
    ]);
  } finally {
    await c.engine.dispose();
    await server.close();
  }
});

Deno.test("a voice detector's end of speech sends ForceEndpoint, and the turn ends there", async () => {
  const server = await fake();
  // A stand-in for a VoiceDetector: speech ends once 2.5 s have been heard.
  let heard = 0;
  const voiceDetector = (): VoiceDetector => ({
    sampleRate: 8000,
    speaking: false,
    push(samples: Float32Array): SpeechEvent[] {
      const before = heard;
      heard += samples.length / 8;
      return before < 2500 && heard >= 2500
        ? [{ type: "speech-end", atMs: heard, startMs: 0, endMs: 2500 }]
        : [];
    },
    reset() {
      heard = 0;
    },
  });
  const c = cloud(server, { voiceDetector });
  try {
    const { out, errors } = await feed(c.engine, 5000, true);
    assert.deepEqual(errors, []);
    assert.deepEqual(server.sessions[0].clientMessages, [
      { type: "ForceEndpoint" },
      { type: "Terminate" },
    ]);
    const ends = out.filter((t) => t.type === "final");
    assert.ok(ends.length >= 2, `${ends.length} finals`);
    assert.ok(ends[0].endMs <= 3000, `the first turn ended at ${ends[0].endMs} ms`);
  } finally {
    await c.engine.dispose();
    await server.close();
  }
});

for (const vad of ["energy", "silero"]) {
  Deno.test(`ASSEMBLYAI_VAD_FORCE_ENDPOINT_MS with VAD=${vad}: the detector hears the pauses, ForceEndpoint ends the turns`, async () => {
    const server = await fake();
    const config = loadConfig({
      TRANSCRIBER: "assemblyai",
      ASSEMBLYAI_API_KEY: KEY,
      ASSEMBLYAI_URL: server.url,
      ASSEMBLYAI_VAD_FORCE_ENDPOINT_MS: "400",
      VAD: vad,
    });
    const engine = await createEngine(config, memoryLogger()) as AssemblyAIEngine;
    try {
      // Real speech, with its own pauses, in real time.
      const { errors } = await feed(engine, 9000, true);
      assert.deepEqual(errors, []);
      const forced = server.sessions[0].clientMessages.filter((m) =>
        (m as { type: string }).type === "ForceEndpoint"
      );
      assert.ok(forced.length >= 1, JSON.stringify(server.sessions[0].clientMessages));
      assert.ok(forced.length < 20, `${forced.length} ForceEndpoints: one per pause, not per word`);
    } finally {
      await engine.dispose();
      await server.close();
    }
  });
}

Deno.test("a temporary token authenticates in the query, never in logs", async () => {
  const token = "tmp-token-8c1f0a77e2d94b6b";
  const server = await fake({ tokens: [token] });
  const log = memoryLogger();
  const engine = new AssemblyAIEngine({ token, url: server.url, realtimePacing: false }, log);
  try {
    const { errors } = await feed(engine, 1500);
    assert.deepEqual(errors, []);
    assert.equal(server.sessions[0].query.token, token);
    assert.ok(server.sessions[0].authorized);
    assert.equal(server.sessions[0].closeCode, 1000);
    assert.ok(log.lines.every((l) => !l.includes(token)));
  } finally {
    await engine.dispose();
    await server.close();
  }
});

Deno.test("a Warning from the service reaches the log, once for all sessions", async () => {
  const server = await fake({ warning: { code: 1001, text: "keyterms_prompt: 2 terms ignored" } });
  const c = cloud(server);
  try {
    await Promise.all([feed(c.engine, 1500), feed(c.engine, 1500)]);
    assert.equal(server.sessions.length, 2);
    const warned = c.log.lines.filter((l) => l.includes("AssemblyAI warning 1001"));
    assert.deepEqual(warned, ["warn: AssemblyAI warning 1001: keyterms_prompt: 2 terms ignored"]);
  } finally {
    await c.engine.dispose();
    await server.close();
  }
});

for (const model of MODELS) {
  Deno.test(`${model}: after a 3 s outage the live session is caught up at once, in real time, and no word is lost`, async () => {
    // Real time: the fake enforces its rate rule; the engine paces. About 16 s.
    const server = await fake({ realtimeToleranceMs: REALTIME_TOLERANCE_MS, dropAfterMs: 4000 });
    const c = cloud(server, {
      speechModel: model,
      realtimePacing: true,
      reconnectBackoff: { initialMs: 3000, attempts: 1 },
    });
    const lags: Array<[number, number]> = [];
    try {
      const { out, errors, text, share } = await feed(
        c.engine,
        14000,
        true,
        (track, atMs) => lags.push([atMs, track.lagMs]),
      );
      assert.deepEqual(errors, []);
      // Session 1 dropped at 4 s; 2 is live from ~7 s; 3 replayed the outage alongside it.
      assert.equal(server.sessions.length, 3, c.log.lines.join("\n"));
      assert.equal(server.sessions[0].closeCode, 1011);
      for (const s of server.sessions) {
        assert.notEqual(s.closeCode, 3007, `rate limit hit: ${s.closeReason}`);
        assert.ok(s.maxAheadMs <= REALTIME_TOLERANCE_MS, `${s.maxAheadMs} ms ahead of real time`);
      }
      assert.ok(
        c.log.lines.some((l) => /catching up on a second session/.test(l)),
        c.log.lines.join("\n"),
      );
      // The lag: audio waiting to go out on the live session, 1.5 s after the reconnect.
      const reconnectAt = 4000 + 3000;
      const after = lags.filter(([at]) => at >= reconnectAt + 1500).map(([, lag]) => lag);
      const worst = Math.max(...after);
      console.log(`lag after reconnecting: at most ${worst} ms (the outage was 3000 ms)`);
      assert.ok(worst <= 600, `still ${worst} ms behind after catching up`);
      // The catch-up session's finals arrive after the live session's: compare in time order.
      const finalsOut = out.filter((t) => t.type === "final").sort((a, b) => a.startMs - b.startMs);
      const heard = words(finalsOut).join(" ");
      const spoken = text.toLowerCase().replace(/[^a-z' ]/g, " ").split(/\s+/).filter(Boolean);
      const reference = spoken.slice(0, Math.round(spoken.length * share)).join(" ");
      const wer = wordErrorRate(reference, heard).wer;
      assert.ok(wer < 0.25, `WER ${wer}: ${heard}`);
      // No word twice around the split between the catch-up and the live session.
      const times = finalsOut.flatMap((t) => t.words.map((w) => w.startMs)).sort((a, b) => a - b);
      for (let i = 1; i < times.length; i++) {
        assert.ok(times[i] - times[i - 1] > 20, "a word twice");
      }
    } finally {
      await c.engine.dispose();
      await server.close();
    }
  });
}

Deno.test("the fake: current models, token auth, the rate rule, inactivity_timeout", async () => {
  const server = await startFakeAssemblyAI({
    apiKey: KEY,
    engine: await sharedEngine(),
    tokens: ["tmp-token-1234"],
  });
  const session = (
    query: string,
    headers: Record<string, string>,
    send?: (ws: WebSocket) => void,
  ) =>
    new Promise<{ code: number; reason: string; types: string[]; errors: unknown[] }>((resolve) => {
      const types: string[] = [];
      const errors: unknown[] = [];
      const ws = new WebSocket(`${server.url}?${query}`, { headers });
      ws.onmessage = (e) => {
        const m = parseServerMessage(e.data);
        types.push(m.type);
        if (m.type === "Error") errors.push(m);
        if (m.type === "Begin") send?.(ws);
      };
      ws.onclose = (e) => resolve({ code: e.code, reason: e.reason, types, errors });
    });
  const base = "sample_rate=8000&encoding=pcm_mulaw";
  const terminate = (ws: WebSocket) => ws.send('{"type":"Terminate"}');
  try {
    for (const model of ["u3-rt-pro", "universal-3-6-pro", "universal-streaming-multilingual"]) {
      const ok = await session(`${base}&speech_model=${model}`, { Authorization: KEY }, terminate);
      assert.deepEqual([ok.code, ok.types], [1000, ["Begin", "Termination"]], model);
    }
    const unknown = await session(`${base}&speech_model=universal-9`, { Authorization: KEY });
    assert.equal(unknown.code, 3006);
    const token = await session(
      `${base}&speech_model=u3-rt-pro&token=tmp-token-1234`,
      {},
      terminate,
    );
    assert.equal(token.code, 1000);
    const badToken = await session(`${base}&speech_model=u3-rt-pro&token=guess`, {});
    assert.deepEqual([badToken.code, badToken.reason], [
      1008,
      "Unauthorized Connection: Invalid token",
    ]);
    // Two seconds of audio at once is a second ahead of the clock: an Error frame, then 3007
    // (or a reset, when the close crosses audio still in flight).
    const fast = await session(`${base}&speech_model=u3-rt-pro`, { Authorization: KEY }, (ws) => {
      for (let i = 0; i < 20; i++) ws.send(new Uint8Array(800).fill(0xff));
    });
    assert.deepEqual(fast.errors, [
      { type: "Error", error_code: 3007, error: "Audio Transmission Rate Exceeded" },
    ]);
    assert.ok([3007, 1006, 0].includes(fast.code), String(fast.code));
    // In real time (100 ms every 100 ms) the same audio is accepted.
    const paced = await session(
      `${base}&speech_model=u3-rt-pro`,
      { Authorization: KEY },
      async (ws) => {
        for (let i = 0; i < 15; i++) {
          ws.send(new Uint8Array(800).fill(0xff));
          await sleep(100);
        }
        terminate(ws);
      },
    );
    assert.deepEqual([paced.code, paced.errors], [1000, []]);
    const idle = await session(`${base}&speech_model=u3-rt-pro&inactivity_timeout=5`, {
      Authorization: KEY,
    });
    assert.deepEqual([idle.code, idle.types], [1000, ["Begin", "Termination"]]);
  } finally {
    await server.close();
  }
});

Deno.test("config: engine per track, hybrid, models and their settings checked at start-up", () => {
  const env = { ASSEMBLYAI_API_KEY: KEY };
  const mixed = loadConfig({ ...env, TRANSCRIBER: "local", TRANSCRIBER_INBOUND: "assemblyai" });
  assert.deepEqual(mixed.transcribers, { inbound: "assemblyai", outbound: "local" });
  assert.deepEqual(loadConfig({ ...env, TRANSCRIBER: "hybrid" }).transcribers, {
    inbound: "hybrid",
    outbound: "hybrid",
  });
  assert.throws(
    () => loadConfig({ TRANSCRIBER_OUTBOUND: "hybrid" }),
    (e) =>
      e instanceof UserError &&
      /TRANSCRIBER_OUTBOUND=hybrid needs ASSEMBLYAI_API_KEY/.test(e.message),
  );
  // A name not listed is the service's to refuse (new models come every few months): it loads,
  // and the engine warns (assemblyai_speakers_test).
  assert.equal(
    loadConfig({ ...env, ASSEMBLYAI_SPEECH_MODEL: "universal-3-7-pro" }).assemblyai.speechModel,
    "universal-3-7-pro",
  );
  assert.throws(
    () =>
      loadConfig({
        ...env,
        ASSEMBLYAI_SPEECH_MODEL: "u3-rt-pro",
        ASSEMBLYAI_END_OF_TURN_CONFIDENCE_THRESHOLD: "0.5",
      }),
    /does not apply to u3-rt-pro/,
  );
  assert.throws(
    () => loadConfig({ ...env, ASSEMBLYAI_PROMPT: "Names of drugs" }),
    /needs a Universal-3 Pro model/,
  );
  assert.throws(() => loadConfig({ ...env, ASSEMBLYAI_VAD_THRESHOLD: "2" }), /from 0 to 1/);
  const u3 = loadConfig({
    ...env,
    ASSEMBLYAI_SPEECH_MODEL: "u3-rt-pro",
    ASSEMBLYAI_PROMPT: "A support call",
    ASSEMBLYAI_VAD_THRESHOLD: "0.4",
    ASSEMBLYAI_INACTIVITY_TIMEOUT: "30",
  });
  const url = new URL(sessionUrl(new AssemblyAIEngine(u3.assemblyai).options));
  assert.equal(url.searchParams.get("format_turns"), null, "format_turns is left out for U3 Pro");
  assert.equal(url.searchParams.get("prompt"), "A support call");
  assert.equal(url.searchParams.get("vad_threshold"), "0.4");
  assert.equal(url.searchParams.get("inactivity_timeout"), "30");
  const us = new URL(
    sessionUrl(
      new AssemblyAIEngine(loadConfig({ ...env, ASSEMBLYAI_FORMAT_TURNS: "0" }).assemblyai).options,
    ),
  );
  assert.equal(us.searchParams.get("format_turns"), "false");
});

Deno.test("strict parsing: any message with an error key is an error, malformed ones are refused", () => {
  assert.deepEqual(parseServerMessage('{"error":"Insufficient funds","error_code":4002}'), {
    type: "Error",
    error: "Insufficient funds",
    error_code: 4002,
  });
  assert.deepEqual(parseServerMessage('{"type":"Warning","warning_code":2,"warning":"x"}'), {
    type: "Warning",
    warning_code: 2,
    warning: "x",
  });
  assert.deepEqual(parseServerMessage('{"type":"SpeechStarted","timestamp":120}'), {
    type: "SpeechStarted",
    timestamp: 120,
  });
  assert.deepEqual(parseServerMessage('{"type":"Heartbeat"}'), {
    type: "Other",
    name: "Heartbeat",
  });
  assert.throws(
    () => parseServerMessage('{"type":"Turn","turn_order":"1"}'),
    /Turn.turn_order is not a number/,
  );
  assert.throws(() => parseServerMessage("[1]"), /not an object/);
  assert.throws(
    () =>
      parseServerMessage(JSON.stringify({
        type: "Turn",
        turn_order: 0,
        turn_is_formatted: false,
        end_of_turn: false,
        transcript: "",
        end_of_turn_confidence: 0,
        words: [{ start: 10, end: 5, text: "a", confidence: 1, word_is_final: true }],
      })),
    /ends before it starts/,
  );
});
