/**
 * Engine faults: a transcriber that throws, one that stalls for 10 s, one
 * whose flush never finishes, and AssemblyAI sessions dropped again and
 * again (against the protocol fake). The call goes on, the fault is
 * reported, buffered audio stays within its bound, and no final already
 * produced is lost.
 */
import assert from "node:assert/strict";
import { CallRegistry } from "../../lib/call/registry.ts";
import type { CallEvent } from "../../lib/call/events.ts";
import { memoryLogger } from "../../lib/log.ts";
import { startFakeAssemblyAI } from "../fakes/fake_assemblyai.ts";
import { makeSid, simulateCall } from "../../lib/sim/twilio_sim.ts";
import { AssemblyAIEngine } from "../../lib/transcribe/assemblyai.ts";
import type {
  Track,
  TrackTranscriber,
  TranscriberEngine,
  Transcript,
  TranscriptSink,
} from "../../lib/transcribe/engine.ts";
import { wordErrorRate } from "../../lib/metrics/wer.ts";
import { audioSet, conversation, sharedEngine, testServer, toMulaw } from "../helpers.ts";
import { finalsOf, report } from "./fixtures.ts";

/** What goes wrong, on the first inbound track the engine opens; times in ms of that track's audio. */
interface FaultPlan {
  /** `write` throws for audio in [from, to). */
  throwMs?: [number, number];
  /** From this point the engine takes no audio and gives no results for `stallWallMs` of wall time. */
  stallFromMs?: number;
  stallWallMs?: number;
  /** Audio held during a stall, at most (the oldest is dropped beyond it). */
  stallBufferBytes?: number;
}

/** The local engine with faults injected on demand. */
class FaultyEngine implements TranscriberEngine {
  readonly name = "faulty-local";
  readonly stats = {
    thrown: 0,
    maxBufferedBytes: 0,
    droppedBytes: 0,
    stallStartedAt: 0,
    stallEndedAt: 0,
  };
  #inner: TranscriberEngine;
  #plan: FaultPlan;
  #faultyOpened = false;

  constructor(inner: TranscriberEngine, plan: FaultPlan) {
    this.#inner = inner;
    this.#plan = plan;
  }

  open(track: Track, sink: TranscriptSink): TrackTranscriber {
    const inner = this.#inner.open(track, sink);
    if (track !== "inbound" || this.#faultyOpened) return inner;
    this.#faultyOpened = true;
    const plan = this.#plan;
    const stats = this.stats;
    let bytes = 0;
    let stalled = false;
    let stallDone = false;
    const held: Uint8Array[] = [];
    let heldBytes = 0;
    const released = Promise.withResolvers<void>();
    const release = () => {
      stalled = false;
      stats.stallEndedAt = performance.now();
      for (const chunk of held) inner.write(chunk);
      held.length = 0;
      released.resolve();
    };
    return {
      write(mulaw: Uint8Array) {
        const ms = bytes / 8;
        bytes += mulaw.length;
        if (plan.throwMs && ms >= plan.throwMs[0] && ms < plan.throwMs[1]) {
          stats.thrown++;
          throw new Error("injected engine fault");
        }
        if (plan.stallFromMs !== undefined && !stallDone && ms >= plan.stallFromMs) {
          stallDone = stalled = true;
          stats.stallStartedAt = performance.now();
          setTimeout(release, plan.stallWallMs ?? 10_000);
        }
        if (!stalled) return inner.write(mulaw);
        // The caller may reuse its buffer: keep a copy.
        held.push(mulaw.slice());
        heldBytes += mulaw.length;
        while (heldBytes > (plan.stallBufferBytes ?? Infinity) && held.length > 1) {
          const dropped = held.shift()!;
          heldBytes -= dropped.length;
          stats.droppedBytes += dropped.length;
        }
        stats.maxBufferedBytes = Math.max(stats.maxBufferedBytes, heldBytes);
      },
      async close() {
        if (stalled) await released.promise;
        await inner.close();
      },
    };
  }

  whenCaughtUp(): Promise<void> {
    return this.#inner.whenCaughtUp();
  }

  dispose(): Promise<void> {
    return Promise.resolve();
  }
}

type Server = Awaited<ReturnType<typeof testServer>>;

async function call(server: Server, audio: Uint8Array) {
  const callSid = makeSid("CA");
  const ended = server.registry.whenEnded(callSid);
  const result = await simulateCall({
    serverUrl: server.url,
    calleeAudio: audio,
    authToken: server.token,
    callSid,
    fast: true,
  });
  await ended;
  // The server never closed the call's sockets with an error.
  for (const how of Object.values(result.serverClosed)) assert.match(how!, /^1000 /);
  return { callSid, finals: finalsOf(server.events, callSid), endedAt: performance.now() };
}

const errorsOf = (events: CallEvent[], callSid: string) =>
  events.flatMap((e) => e.type === "call-error" && e.call.callSid === callSid ? [e.message] : []);

async function speech(n: number) {
  return toMulaw(
    (await conversation((await audioSet("librispeech-samples")).slice(0, n), 700)).samples,
  );
}

Deno.test("engine throws mid-call: reported once, the stream stays open, earlier finals kept", async () => {
  const audio = await speech(3);
  const plain = await testServer();
  const baseline = await call(plain, audio).finally(() => plain.shutdown());
  assert.ok(baseline.finals.length >= 3);
  // One second of throwing, well after the first final was emitted.
  const from = baseline.finals[0].endMs + 1500;
  const engine = new FaultyEngine(await sharedEngine(), { throwMs: [from, from + 1000] });
  const server = await testServer({ engine });
  try {
    const faulty = await call(server, audio);
    const errors = errorsOf(server.events, faulty.callSid);
    assert.equal(errors.length, 1, errors.join("\n"));
    assert.match(errors[0], /inbound transcriber failed: injected engine fault; the call goes on/);
    assert.equal(engine.stats.thrown, 50, "every frame of the faulty second threw");
    // The final produced before the fault is kept, as it was, in the events and in the store.
    assert.deepEqual(faulty.finals[0], baseline.finals[0]);
    const stored = await server.store.segments(faulty.callSid);
    assert.ok(stored.some((s) => s.text === baseline.finals[0].text));
    // The engine recovered: the last utterance is heard as without the fault.
    assert.deepEqual(faulty.finals.at(-1)!.text, baseline.finals.at(-1)!.text);
    assert.ok(server.log.lines.some((l) => l.includes("transcriber failed")));
    report("engine throws", {
      framesThrown: engine.stats.thrown,
      errorsReported: errors.length,
      finalsBefore: baseline.finals.length,
      finalsWithFault: faulty.finals.length,
    });
  } finally {
    await server.shutdown();
  }
});

Deno.test("engine stalls for 10 s: other calls go on, audio is held within its bound, nothing is lost", async () => {
  const audio = await speech(2);
  const other = await speech(1);
  const plain = await testServer();
  const baseline = await call(plain, audio).finally(() => plain.shutdown());
  const bound = 30 * 8000; // 30 s of µ-law
  const engine = new FaultyEngine(await sharedEngine(), {
    stallFromMs: baseline.finals[0].endMs + 1000,
    stallWallMs: 10_000,
    stallBufferBytes: bound,
  });
  const server = await testServer({ engine });
  try {
    const stalledCall = call(server, audio);
    // A second call starts once the first has stalled, and is done while the stall lasts.
    while (engine.stats.stallStartedAt === 0) await new Promise((r) => setTimeout(r, 20));
    const otherCall = await call(server, other);
    const stalled = await stalledCall;
    assert.ok(otherCall.finals.length >= 1, "the other call heard nothing");
    assert.ok(otherCall.endedAt < engine.stats.stallEndedAt, "the other call waited for the stall");
    assert.ok(stalled.endedAt >= engine.stats.stallEndedAt);
    // All audio was held (within the bound) and decoded after the stall: the same finals.
    assert.ok(engine.stats.maxBufferedBytes > 0 && engine.stats.maxBufferedBytes <= bound);
    assert.equal(engine.stats.droppedBytes, 0);
    assert.deepEqual(stalled.finals, baseline.finals);
    report("engine stalls", {
      stallMs: Math.round(engine.stats.stallEndedAt - engine.stats.stallStartedAt),
      maxHeldMs: engine.stats.maxBufferedBytes / 8,
      boundMs: bound / 8,
      finals: stalled.finals.length,
      otherCallFinalsDuringStall: otherCall.finals.length,
    });
  } finally {
    await server.shutdown();
  }
});

Deno.test("a transcriber whose flush never finishes: the call still ends, reported, finals kept", async () => {
  const finalBeforeHang: Transcript = {
    type: "final",
    track: "inbound",
    text: "Heard before the hang",
    startMs: 0,
    endMs: 900,
    words: [],
  };
  let sink: TranscriptSink | null = null;
  const hanging: TranscriberEngine = {
    name: "hanging",
    open(_track, s) {
      sink = s;
      return { write() {}, close: () => new Promise<void>(() => {}) };
    },
    whenCaughtUp: () => Promise.resolve(),
    dispose: () => Promise.resolve(),
  };
  const registry = new CallRegistry(hanging, { flushTimeoutMs: 300 });
  const events: CallEvent[] = [];
  registry.pipeline.publish((e) => events.push(e));
  const session = registry.attachStream("MZ1", { callSid: "CA1", direction: "outbound" });
  session.openTrack("inbound");
  session.media("inbound", 0, new Uint8Array(160));
  sink!.onTranscript(finalBeforeHang);
  const started = performance.now();
  await registry.endCall("CA1", "stop");
  assert.equal(registry.activeCalls, 0);
  assert.deepEqual(finalsOf(events, "CA1"), [finalBeforeHang]);
  const errors = errorsOf(events, "CA1");
  assert.equal(errors.length, 1);
  assert.match(errors[0], /inbound transcriber did not finish within 300 ms/);
  assert.equal(events.at(-1)?.type, "call-ended");
  report("engine hangs on flush", {
    flushTimeoutMs: 300,
    endedAfterMs: Math.round(performance.now() - started),
  });
});

Deno.test("AssemblyAI sessions dropped again and again: the call goes on and keeps its words", async () => {
  const KEY = "aai-reliability-key-9d2e7c4b1a";
  const audio = await speech(3);
  // Simulated calls run faster than real time: the fake's real-time rule is off here.
  const options = { apiKey: KEY, engine: await sharedEngine(), realtimeToleranceMs: Infinity };
  const calmFake = await startFakeAssemblyAI(options);
  // Every session of the first six (both tracks) is dropped after 4 s of audio.
  const roughFake = await startFakeAssemblyAI({
    ...options,
    dropAfterMs: 4000,
    dropCode: 1011,
    dropSessions: 6,
  });
  const cloud = (url: string) =>
    new AssemblyAIEngine({
      apiKey: KEY,
      url,
      realtimePacing: false,
      reconnectBackoff: { initialMs: 50, attempts: 3 },
    }, memoryLogger());
  const calmEngine = cloud(calmFake.url);
  const roughEngine = cloud(roughFake.url);
  try {
    const calmServer = await testServer({ engine: calmEngine });
    const calm = await call(calmServer, audio).finally(() => calmServer.shutdown());
    const roughServer = await testServer({ engine: roughEngine });
    const rough = await call(roughServer, audio).finally(() => roughServer.shutdown());
    assert.ok(await roughFake.allClosed(), "a session was left open");
    const dropped = roughFake.sessions.filter((s) => s.closeCode === 1011).length;
    assert.ok(dropped >= 4, `only ${dropped} sessions were dropped`);
    const words = (ts: Transcript[]) =>
      ts.map((t) => t.text).join(" ").toLowerCase().replace(/[^a-z' ]/g, "");
    const wer = wordErrorRate(words(calm.finals), words(rough.finals)).wer;
    assert.ok(wer <= 0.05, `WER vs the undisturbed run ${wer}`);
    assert.ok(roughEngine.openTracks === 0);
    report("assemblyai repeated drops", {
      sessions: roughFake.sessions.length,
      dropped,
      werVsUndisturbed: wer.toFixed(3),
      finals: rough.finals.length,
    });
  } finally {
    await calmEngine.dispose();
    await roughEngine.dispose();
    await calmFake.close();
    await roughFake.close();
  }
});
