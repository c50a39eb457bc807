/**
 * The AssemblyAI engine against the local v3 fake, offline: real speech
 * through the simulated call, decoded by the fake with the local engine, so
 * every check is on real words.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import type { CallEvent } from "../lib/call/events.ts";
import { createPrinter } from "../lib/console/printer.ts";
import { makeSid } from "../lib/sim/twilio_sim.ts";
import { AssemblyAIEngine } from "../lib/transcribe/assemblyai.ts";
import {
  describeClose,
  isTransientClose,
  sessionUrl,
} from "../lib/transcribe/assemblyai_protocol.ts";
import { loadConfig } from "../app/config.ts";
import type { Transcript } from "../lib/transcribe/engine.ts";
import { wordErrorRate } from "../lib/metrics/wer.ts";
import { cloudEngine, fake, KEY, text, words } from "./assemblyai_helpers.ts";
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
import { UserError } from "../lib/user_error.ts";

interface CallRun {
  events: CallEvent[];
  printed: string[];
  logs: string[];
  callSid: string;
  framesSent: number;
}

/** One simulated call; the callee on the inbound track, optionally a caller on the outbound one. */
async function runCall(
  engine: Awaited<ReturnType<typeof sharedEngine>> | undefined,
  callee: { samples: Float32Array; durationMs: number },
  caller?: { samples: Float32Array; durationMs: number },
): Promise<CallRun> {
  const server = await testServer({
    engine,
    audioInput: caller ? await tempWav(caller.samples) : undefined,
  });
  const printed: string[] = [];
  server.registry.pipeline.publish(
    createPrinter({ format: "text", write: (t) => printed.push(t), isTerminal: false }),
  );
  try {
    const callSid = makeSid("CA");
    const result = await callTestServer(server, {
      calleeAudio: toMulaw(callee.samples),
      callSid,
      fast: true,
      tailMs: caller ? Math.max(1000, caller.durationMs - callee.durationMs + 1000) : 1000,
    });
    return {
      events: server.events,
      printed: printed.join("").split("\n").filter(Boolean),
      logs: server.log.lines,
      callSid,
      framesSent: result.framesSent,
    };
  } finally {
    await server.shutdown();
  }
}

function assertNoKey(haystack: unknown[], key = KEY) {
  for (const item of haystack) {
    const s = typeof item === "string" ? item : JSON.stringify(item);
    assert.ok(!s.includes(key), `the API key leaked into: ${s.slice(0, 200)}`);
  }
}

Deno.test("AssemblyAI engine: a call prints the same as with the local engine", async () => {
  const callee = await conversation((await audioSet("librispeech-samples")).slice(0, 3));
  const caller = await conversation((await audioSet("librivox-sense-and-sensibility")).slice(0, 2));
  const local = await runCall(undefined, callee, caller);
  const server = await fake();
  const { engine, log } = cloudEngine(server);
  try {
    const cloud = await runCall(engine, callee, caller);
    assert.ok(await server.allClosed(), "a session was left open (and billing)");
    assert.equal(engine.openTracks, 0);

    // Same format, line for line.
    const line = /^(Inbound|Outbound): \S.* \[\d+ - \d+\]$/;
    for (const printed of cloud.printed) assert.match(printed, line);
    assert.equal(cloud.printed.length, local.printed.length, cloud.printed.join("\n"));
    for (const track of ["inbound", "outbound"] as const) {
      const a = finals(local.events, local.callSid, track);
      const b = finals(cloud.events, cloud.callSid, track);
      assert.ok(a.length > 0, `the local engine heard nothing on ${track}`);
      // Same content: the same words, the same times.
      assert.deepEqual(words(b), words(a), `${track}: ${text(b)}`);
      assert.deepEqual(b.map((t) => [t.startMs, t.endMs]), a.map((t) => [t.startMs, t.endMs]));
      // format_turns: one final per turn, the formatted one.
      for (const t of b) assert.match(t.text, /^[A-Z].*\.$/, `not the formatted turn: ${t.text}`);
    }
    assert.ok(
      wordErrorRate(callee.text, text(finals(cloud.events, cloud.callSid, "inbound"))).wer < 0.2,
    );

    // On the wire: one session per track, configured as documented.
    assert.equal(server.sessions.length, 2);
    for (const s of server.sessions) {
      assert.equal(s.query.sample_rate, "8000");
      assert.equal(s.query.encoding, "pcm_mulaw");
      assert.equal(s.query.speech_model, "universal-streaming-english");
      assert.equal(s.query.format_turns, "true");
      assert.deepEqual(s.unknownParams, []);
      assert.ok(s.authorized);
      // 100 ms chunks (five Twilio frames); only the last may be shorter, never under 50 ms.
      assert.ok(s.chunkMs.every((ms) => ms >= 50 && ms <= 1000), `chunk sizes: ${s.chunkMs}`);
      assert.ok(s.chunkMs.slice(0, -1).every((ms) => ms === 100));
      assert.ok(s.terminateReceived, "Terminate was not sent");
      assert.deepEqual(s.clientMessages, [{ type: "Terminate" }]);
      assert.equal(s.closeCode, 1000);
      const termination = s.serverMessages.find((m) => m.type === "Termination");
      assert.ok(termination, "no Termination");
      assert.ok(Math.abs(s.audioMs - cloud.framesSent * 20) < 100, `${s.audioMs} ms of audio`);
      assert.equal(termination.audio_duration_seconds, Math.round(s.audioMs / 1000));
      // Both the unformatted and the formatted end of turn were sent, yet printed once.
      const ends = s.serverMessages.filter((m) => m.type === "Turn" && m.end_of_turn);
      assert.equal(ends.filter((m) => m.turn_is_formatted).length, ends.length / 2);
    }
    assertNoKey([...cloud.logs, ...log.lines, ...cloud.events, ...cloud.printed]);
  } finally {
    await engine.dispose();
    await server.close();
  }
});

Deno.test("AssemblyAI engine: a dropped session (1011) reconnects and keeps every word", async () => {
  const callee = await conversation((await audioSet("librispeech-samples")).slice(0, 3));
  const baselineFake = await fake();
  const baseline = cloudEngine(baselineFake);
  // Dropped in the middle of the second utterance, with a turn in progress. The
  // first two sessions are the two tracks' first sessions: both get dropped.
  const dropAfterMs = 12000;
  const droppingFake = await fake({ dropAfterMs, dropCode: 1011, dropSessions: 2 });
  const dropping = cloudEngine(droppingFake);
  try {
    const calm = await runCall(baseline.engine, callee);
    const rough = await runCall(dropping.engine, callee);
    assert.ok(await droppingFake.allClosed(), "a session was left open");
    const expected = finals(calm.events, calm.callSid, "inbound");
    const heard = finals(rough.events, rough.callSid, "inbound");

    // Each track's first session was dropped with 1011 mid-call; a second one finished it.
    const sessions = droppingFake.sessions;
    assert.equal(sessions.length, 4);
    for (const first of sessions.slice(0, 2)) {
      assert.equal(first.closeCode, 1011);
      assert.ok(!first.terminateReceived);
    }
    for (const second of sessions.slice(2)) {
      assert.ok(second.terminateReceived && second.closeCode === 1000);
      assert.ok(second.chunkMs.every((ms) => ms >= 50 && ms <= 1000));
    }
    assert.ok(
      // The client sees the 1011, or (when the drop lands mid-send) a reset: both reconnect.
      dropping.log.lines.some((l) => /(1011|1006).*Reconnecting/.test(l)),
      dropping.log.lines.join("\n"),
    );
    assert.ok(dropping.log.lines.some((l) => /reconnected/.test(l)));
    // Audio since the last final was replayed: the new sessions got more than what followed the drop.
    const total = sessions[0].audioMs;
    assert.ok(sessions.slice(2).every((s) => s.audioMs > rough.framesSent * 20 - total + 100));

    // Every word, in order, as heard without the drop.
    const wer = wordErrorRate(words(expected).join(" "), words(heard).join(" ")).wer;
    assert.ok(wer <= 0.03, `WER vs the undisturbed run ${wer}:\n${text(expected)}\n${text(heard)}`);
    // Times stay on the track's clock across the reconnect.
    assert.equal(heard.length, expected.length);
    heard.forEach((t, i) => {
      assert.ok(
        Math.abs(t.startMs - expected[i].startMs) <= 300,
        `${t.startMs} vs ${expected[i].startMs}`,
      );
      assert.ok(Math.abs(t.endMs - expected[i].endMs) <= 300, `${t.endMs} vs ${expected[i].endMs}`);
    });
    assert.ok(
      !rough.events.some((e) => e.type === "call-error"),
      "the drop was reported as an error",
    );
    assertNoKey([...rough.logs, ...dropping.log.lines, ...rough.events]);
  } finally {
    await baseline.engine.dispose();
    await dropping.engine.dispose();
    await baselineFake.close();
    await droppingFake.close();
  }
});

/** Feeds `ms` of real speech to one track of the engine and closes it; returns what came out. */
async function feedTrack(engine: AssemblyAIEngine, ms: number) {
  const speech = await conversation((await audioSet("asterisk-allison-8k")).slice(0, 1), 0);
  const audio = toMulaw(speech.samples).subarray(0, ms * 8);
  const out: Transcript[] = [];
  const errors: string[] = [];
  const track = engine.open("inbound", {
    onTranscript: (t) => out.push(t),
    onError: (e) => errors.push(e.message),
  });
  for (let i = 0; i < audio.length; i += 160) track.write(audio.subarray(i, i + 160));
  await track.close();
  return { out, errors };
}

Deno.test("AssemblyAI engine: a wrong key gives a clear error, once, and no retries", async () => {
  const server = await fake();
  const wrongKey = "wrong-key-0000111122223333";
  const { engine, log } = cloudEngine(server, wrongKey);
  try {
    const { out, errors } = await feedTrack(engine, 1000);
    assert.equal(out.length, 0);
    assert.equal(errors.length, 1, errors.join("\n"));
    assert.match(errors[0], /1008.*ASSEMBLYAI_API_KEY is wrong or revoked/);
    assert.equal(server.sessions.length, 1, "a refused key must not be retried");
    assert.equal(server.sessions[0].closeCode, 1008);
    assert.ok(await server.allClosed());
    assertNoKey([...errors, ...log.lines], wrongKey);
  } finally {
    await engine.dispose();
    await server.close();
  }
});

Deno.test("AssemblyAI engine: too many concurrent sessions (3009) says what to do", async () => {
  const server = await fake({
    rejectCode: 3009,
    rejectReason: "Unauthorized Connection: Too many concurrent sessions",
  });
  const { engine } = cloudEngine(server);
  try {
    const { errors } = await feedTrack(engine, 500);
    assert.equal(errors.length, 1, errors.join("\n"));
    assert.match(errors[0], /3009.*too many concurrent sessions.*Each call uses two/);
    assert.equal(server.sessions.length, 1);
  } finally {
    await engine.dispose();
    await server.close();
  }
});

Deno.test("AssemblyAI engine: the last short chunk is padded to 50 ms and the words arrive", async () => {
  const server = await fake();
  const { engine } = cloudEngine(server);
  try {
    // 2.33 s: twenty-three 100 ms chunks and 30 ms left over.
    const { out, errors } = await feedTrack(engine, 2330);
    assert.deepEqual(errors, []);
    const [session] = server.sessions;
    assert.deepEqual(session.chunkMs, [...Array(23).fill(100), 50]);
    assert.ok(out.some((t) => t.type === "final" && t.words.length > 0), "no final");
    assert.ok(out.some((t) => t.type === "partial"), "no partials");
    assert.equal(session.closeCode, 1000);
  } finally {
    await engine.dispose();
    await server.close();
  }
});

Deno.test("fake AssemblyAI rejects what the real service rejects", async () => {
  const server = await fake();
  const closeOf = (
    query: string,
    headers: Record<string, string>,
    send?: (ws: WebSocket) => void,
  ) =>
    new Promise<{ code: number; reason: string; messages: unknown[] }>((resolve) => {
      const messages: unknown[] = [];
      const ws = new WebSocket(`${server.url}?${query}`, { headers });
      ws.onmessage = (e) => {
        const m = JSON.parse(e.data);
        messages.push(m);
        if (m.type === "Begin") send?.(ws);
      };
      ws.onclose = (e) => resolve({ code: e.code, reason: e.reason, messages });
    });
  const good = "sample_rate=8000&encoding=pcm_mulaw&speech_model=universal-streaming-english";
  try {
    const noAuth = await closeOf(good, {});
    assert.equal(noAuth.code, 1008);
    assert.match(noAuth.reason, /Missing Authorization header/);
    assert.deepEqual(noAuth.messages[0], {
      type: "Error",
      error_code: 1008,
      error: "Unauthorized Connection: Missing Authorization header",
    });
    assert.equal((await closeOf(good, { Authorization: "nope" })).code, 1008);
    const noModel = await closeOf("sample_rate=8000&encoding=pcm_mulaw", { Authorization: KEY });
    assert.equal(noModel.code, 3006);
    assert.match(noModel.reason, /speech_model is required/);
    const tooShort = await closeOf(
      good,
      { Authorization: KEY },
      (ws) => ws.send(new Uint8Array(160)),
    );
    assert.equal(tooShort.code, 3007);
    assert.match(tooShort.reason, /Input duration violation: 20 ms/);
    const tooLong = await closeOf(
      good,
      { Authorization: KEY },
      (ws) => ws.send(new Uint8Array(8800)),
    );
    assert.equal(tooLong.code, 3007);
    const unknown = await closeOf(good, { Authorization: KEY }, (ws) => ws.send('{"type":"Stop"}'));
    assert.equal(unknown.code, 3006);
    assert.match(unknown.reason, /Invalid Message Type: Stop/);
    const notJson = await closeOf(good, { Authorization: KEY }, (ws) => ws.send("terminate"));
    assert.equal(notJson.code, 3006);
    const begin = (await closeOf(good, { Authorization: KEY }, (ws) =>
      ws.send('{"type":"Terminate"}')))
      .messages;
    assert.deepEqual(Object.keys(begin[0] as object), ["type", "id", "expires_at"]);
    assert.equal((begin.at(-1) as { type: string }).type, "Termination");
    assert.ok(await server.allClosed());
  } finally {
    await server.close();
  }
});

Deno.test("make_call: --transcriber assemblyai without a key fails before the call", async () => {
  const callee = await conversation((await audioSet("asterisk-allison-8k")).slice(0, 1));
  const wav = await tempWav(callee.samples);
  const root = fileURLToPath(new URL("../", import.meta.url));
  const env: Record<string, string> = {};
  for (const name of ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME"]) {
    const value = Deno.env.get(name);
    if (value) env[name] = value;
  }
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "make_call.ts",
      "--simulate",
      "--fast",
      "--transcriber",
      "assemblyai",
      "--callee-audio",
      wav,
    ],
    cwd: root,
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  const stdout = new TextDecoder().decode(output.stdout);
  assert.equal(output.code, 2, stderr);
  assert.match(stderr, /ASSEMBLYAI_API_KEY/);
  assert.doesNotMatch(stderr, /call \S+ started/);
  assert.equal(stdout, "");
});

Deno.test("AssemblyAI config: engine choice, options, and what is retried", () => {
  assert.equal(loadConfig({}).transcriber, "local");
  const withKey = loadConfig({ ASSEMBLYAI_API_KEY: KEY });
  assert.equal(withKey.transcriber, "assemblyai");
  assert.equal(loadConfig({ ASSEMBLYAI_API_KEY: KEY, TRANSCRIBER: "local" }).transcriber, "local");
  assert.equal(
    loadConfig({ ASSEMBLYAI_API_KEY: KEY }, { transcriber: "local" }).transcriber,
    "local",
  );
  assert.throws(
    () => loadConfig({}, { transcriber: "assemblyai" }),
    (e) =>
      e instanceof UserError &&
      /--transcriber=assemblyai needs ASSEMBLYAI_API_KEY/.test(e.message),
  );
  assert.throws(
    () => loadConfig({ TRANSCRIBER: "whisper" }),
    /TRANSCRIBER must be local, assemblyai or hybrid/,
  );
  assert.throws(
    () => loadConfig({ ASSEMBLYAI_API_KEY: KEY, ASSEMBLYAI_URL: "https://x" }),
    /ASSEMBLYAI_URL must be a WebSocket URL/,
  );
  const eu = loadConfig({
    ASSEMBLYAI_API_KEY: KEY,
    ASSEMBLYAI_URL: "wss://streaming.eu.assemblyai.com/v3/ws",
    ASSEMBLYAI_KEYTERMS: "callscribe, Twilio",
    ASSEMBLYAI_MAX_TURN_SILENCE: "2000",
  });
  const url = new URL(sessionUrl(new AssemblyAIEngine({ ...eu.assemblyai, apiKey: KEY }).options));
  assert.equal(url.host, "streaming.eu.assemblyai.com");
  assert.equal(url.searchParams.get("keyterms_prompt"), '["callscribe","Twilio"]');
  assert.equal(url.searchParams.get("max_turn_silence"), "2000");
  assert.equal(url.searchParams.get("min_turn_silence"), null);
  assert.ok(!url.href.includes(KEY), "the key must only go in the Authorization header");
  for (const code of [1006, 1011, 3005, 3008]) assert.ok(isTransientClose(code), String(code));
  for (const code of [1008, 3006, 3007, 3009]) assert.ok(!isTransientClose(code), String(code));
  assert.match(describeClose(3007, ""), /50-1000 ms/);
  assert.match(
    describeClose(1008, "Unauthorized Connection: Too many concurrent sessions"),
    /wait a minute/,
  );
});

Deno.test("whenCaughtUp holds a fast sender to AssemblyAI's real-time pace: the reconnect buffer never overflows", async () => {
  // Paced as against the real service, with a 2 s buffer: audio written faster than real time
  // would overflow it within seconds and be dropped, unless the writer waits for whenCaughtUp.
  const fakeServer = await fake({ realtimeToleranceMs: 1000 });
  const { engine, log } = cloudEngine(fakeServer, KEY, { realtimePacing: true, bufferSeconds: 2 });
  const errors: Error[] = [];
  const track = engine.open("inbound", { onTranscript: () => {}, onError: (e) => errors.push(e) });
  try {
    const frames = 5000 / 20;
    for (let i = 0; i < frames; i++) {
      track.write(new Uint8Array(160).fill(0xff));
      if (i % 10 === 9) await engine.whenCaughtUp();
    }
    await track.close();
    assert.deepEqual(errors.map((e) => e.message), []);
    assert.doesNotMatch(log.lines.join("\n"), /buffer is full/);
    assert.equal(fakeServer.sessions.length, 1);
    // Every ms written reached the service (the last chunk is padded to 100 ms's batch at most).
    assert.equal(fakeServer.sessions[0].audioMs, 5000);
    assert.ok(fakeServer.sessions[0].maxAheadMs <= 1000, `${fakeServer.sessions[0].maxAheadMs}`);
  } finally {
    await engine.dispose();
    await fakeServer.close();
  }
});
