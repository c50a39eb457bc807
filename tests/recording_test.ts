/**
 * Recordings, as the spec says: a call's stereo WAV holds, sample for
 * sample after µ-law decoding, what each track sent (left inbound, right
 * outbound), with gaps filled with silence where the timeline fills them;
 * the WAV is served with HTTP Range; the JSON export says it exists and how
 * long it is; quality per track is measured and a muted track is warned
 * about (a silent laptop side without a microphone is said to be the laptop
 * leg off instead); RECORD_CALLS=0 writes nothing; deleting a call deletes its
 * recording; RECORDINGS_MAX_GB removes the oldest first.
 */
import assert from "node:assert/strict";
import { MULAW_SILENCE, mulawDecodeSample } from "../lib/audio/mulaw.ts";
import { loadConfig } from "../app/config.ts";
import { memoryLogger } from "../lib/log.ts";
import {
  HEADER_BYTES,
  releaseLock,
  stereoWavHeader,
  takeLock,
} from "../lib/recording/recording_file.ts";
import { CallRecorder, LEVELS_MS, type TrackLevels } from "../lib/recording/call_recorder.ts";
import { Recordings } from "../lib/recording/recordings.ts";
import { loadCallAudio, saveCallAudio } from "../lib/store/call_audio.ts";
import { SqliteStore } from "../lib/store/sqlite.ts";
import { makeSid } from "../lib/sim/twilio_sim.ts";
import type { Track } from "../lib/transcribe/engine.ts";
import { NullEngine } from "../lib/transcribe/null_engine.ts";
import { stopMessage, twilioMediaMessage } from "../lib/twilio/protocol.ts";
import { audioSet, callTestServer, conversation, tempWav, testServer, toMulaw } from "./helpers.ts";
import { closed, openSigned, sleep, start } from "./reliability/fixtures.ts";
import { readLines } from "./read_lines.ts";

/** The two channels of a stereo 16-bit WAV, checked to be that format. */
function readStereo(bytes: Uint8Array): { left: Int16Array; right: Int16Array } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  assert.equal(new TextDecoder().decode(bytes.subarray(0, 4)), "RIFF");
  assert.equal(view.getUint16(20, true), 1, "PCM");
  assert.equal(view.getUint16(22, true), 2, "stereo");
  assert.equal(view.getUint32(24, true), 8000, "8 kHz");
  assert.equal(view.getUint16(34, true), 16, "16-bit");
  const dataBytes = view.getUint32(40, true);
  assert.equal(dataBytes, bytes.length - HEADER_BYTES, "the header's size is the data's");
  assert.equal(view.getUint32(4, true), 36 + dataBytes);
  const frames = dataBytes / 4;
  const left = new Int16Array(frames);
  const right = new Int16Array(frames);
  for (let i = 0; i < frames; i++) {
    left[i] = view.getInt16(HEADER_BYTES + i * 4, true);
    right[i] = view.getInt16(HEADER_BYTES + i * 4 + 2, true);
  }
  return { left, right };
}

/** The first sample where `got` differs from the µ-law `sent`, decoded; -1 when none. */
function firstMismatch(got: Int16Array, sent: Uint8Array): number {
  if (got.length !== sent.length) return Math.min(got.length, sent.length);
  for (let i = 0; i < got.length; i++) if (got[i] !== mulawDecodeSample(sent[i])) return i;
  return -1;
}

/** Frames to send: a track's payloads at their timestamps (20 ms each). */
interface Plan {
  track: Track;
  fromMs: number;
  toMs: number;
}

Deno.test("recording: each channel is what its track sent, sample for sample, gaps filled where the timeline fills them", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "callscribe-recording-" });
  const server = await testServer({ engine: new NullEngine(), dataDir });
  try {
    const utterances = await audioSet("asterisk-allison-8k");
    const speech: Record<Track, Uint8Array> = {
      inbound: toMulaw((await conversation(utterances.slice(0, 2), 300)).samples),
      outbound: toMulaw((await conversation(utterances.slice(2, 4), 300)).samples),
    };
    // Inbound loses a second (2000–3000 ms); outbound starts 600 ms late and stops for 2.4 s,
    // longer than the recorder waits for a lagging track, so the gap is padded, then skipped.
    const plans: Plan[] = [
      { track: "inbound", fromMs: 0, toMs: 2000 },
      { track: "inbound", fromMs: 3000, toMs: 5000 },
      { track: "outbound", fromMs: 600, toMs: 1600 },
      { track: "outbound", fromMs: 4000, toMs: 5600 },
    ];
    const expected: Record<Track, Uint8Array> = {
      inbound: new Uint8Array(5600 * 8).fill(MULAW_SILENCE),
      outbound: new Uint8Array(5600 * 8).fill(MULAW_SILENCE),
    };
    const frames: Array<{ track: Track; ts: number; payload: Uint8Array }> = [];
    for (const plan of plans) {
      for (let ts = plan.fromMs; ts < plan.toMs; ts += 20) {
        const payload = speech[plan.track].slice(ts * 8, ts * 8 + 160);
        assert.equal(payload.length, 160, "the speech covers the plan");
        frames.push({ track: plan.track, ts, payload });
        expected[plan.track].set(payload, ts * 8);
      }
    }
    frames.sort((a, b) => a.ts - b.ts);

    const callSid = makeSid("CA");
    const ended = server.registry.whenEnded(callSid);
    const ws = await openSigned(
      server.url.replace("http", "ws") + "/stream",
      server.token,
      callSid,
    );
    const done = closed(ws);
    ws.send(start("MZ1", callSid));
    // In real time, 100 ms at a time, so the recorder's one-second batches fall mid-call.
    let seq = 1;
    const began = performance.now();
    for (const frame of frames) {
      const wait = frame.ts - (performance.now() - began);
      if (wait > 100) await sleep(wait);
      ws.send(twilioMediaMessage({
        streamSid: "MZ1",
        sequenceNumber: ++seq,
        track: frame.track,
        chunk: seq,
        timestamp: frame.ts,
        payload: frame.payload,
      }));
    }
    ws.send(stopMessage({ streamSid: "MZ1", sequenceNumber: ++seq, accountSid: "AC1", callSid }));
    await ended;
    await done;

    const path = `${server.recordings.dir}/${callSid}.wav`;
    const bytes = await Deno.readFile(path);
    const { left, right } = readStereo(bytes);
    assert.equal(firstMismatch(left, expected.inbound), -1, "left channel = inbound track");
    assert.equal(firstMismatch(right, expected.outbound), -1, "right channel = outbound track");
    await assert.rejects(Deno.stat(path.replace(/\.wav$/, ".lock")), Deno.errors.NotFound);

    // The JSON export and the API say there is a recording, and how long.
    const exported = await (await fetch(`${server.url}/api/calls/${callSid}/transcript.json`))
      .json();
    assert.deepEqual(exported.call.recording, {
      exists: true,
      durationMs: 5600,
      url: `/api/calls/${callSid}/recording.wav`,
    });
    assert.equal(exported.call.quality.inbound.gapMs, 1000);
    assert.equal(exported.call.quality.outbound.gapMs, 600 + 2400);
    assert.equal(exported.call.quality.inbound.receivedMs, 4000);
    assert.ok(exported.call.quality.inbound.meanLevelDb > -40, "speech has a level");
    assert.deepEqual(exported.call.qualityWarnings, [
      "inbound track lost 20% of its audio (1.0 s filled with silence): network trouble?",
      "outbound track lost 53% of its audio (3.0 s filled with silence): network trouble?",
    ]);

    // The command line's JSON export says the same.
    const cli = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-P=transcripts", "transcripts.ts", "export", callSid, "--format", "json"],
      cwd: new URL("../", import.meta.url),
      env: { DATA_DIR: dataDir, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(cli.code, 0, new TextDecoder().decode(cli.stderr));
    const fromCli = JSON.parse(new TextDecoder().decode(cli.stdout));
    assert.deepEqual(fromCli.call.recording, exported.call.recording);
    assert.deepEqual(fromCli.call.quality, exported.call.quality);

    // Range requests return the right bytes.
    const url = `${server.url}/api/calls/${callSid}/recording.wav`;
    const whole = await fetch(url);
    assert.equal(whole.status, 200);
    assert.equal(whole.headers.get("accept-ranges"), "bytes");
    assert.equal(whole.headers.get("content-type"), "audio/wav");
    assert.deepEqual(new Uint8Array(await whole.arrayBuffer()), bytes);
    const size = bytes.length;
    for (
      const [range, from, to] of [
        ["bytes=0-43", 0, 43],
        ["bytes=1000-1999", 1000, 1999],
        ["bytes=1000-", 1000, size - 1],
        ["bytes=-100", size - 100, size - 1],
        [`bytes=${size - 10}-${size + 500}`, size - 10, size - 1],
      ] as const
    ) {
      const response = await fetch(url, { headers: { range } });
      assert.equal(response.status, 206, range);
      assert.equal(response.headers.get("content-range"), `bytes ${from}-${to}/${size}`, range);
      assert.equal(response.headers.get("content-length"), String(to - from + 1), range);
      assert.deepEqual(new Uint8Array(await response.arrayBuffer()), bytes.slice(from, to + 1));
    }
    for (const range of [`bytes=${size}-`, "bytes=500-100", "bytes=-0"]) {
      const response = await fetch(url, { headers: { range } });
      assert.equal(response.status, 416, range);
      assert.equal(response.headers.get("content-range"), `bytes */${size}`);
      await response.body?.cancel();
    }
    // A unit other than bytes is ignored (RFC 9110 §14.2): the whole file.
    const otherUnit = await fetch(url, { headers: { range: "items=0-1" } });
    assert.equal(otherUnit.status, 200);
    assert.deepEqual(new Uint8Array(await otherUnit.arrayBuffer()), bytes);
    const unknown = await fetch(`${server.url}/api/calls/${makeSid("CA")}/recording.wav`);
    assert.equal(unknown.status, 404);
    await unknown.body?.cancel();

    // Deleting the call deletes its recording.
    const deleted = await fetch(`${server.url}/api/calls/${callSid}`, { method: "DELETE" });
    assert.deepEqual(await deleted.json(), { deleted: callSid, recordingDeleted: true });
    await assert.rejects(Deno.stat(path), Deno.errors.NotFound);
  } finally {
    await server.shutdown();
  }
});

Deno.test("recording: a silent outbound track without a laptop input is the laptop leg off; levels are live; RECORD_CALLS=0 writes nothing", async () => {
  const server = await testServer({ engine: new NullEngine(), recordCalls: "0" });
  try {
    // Two short prompts, about 4 s.
    const callee = await conversation((await audioSet("asterisk-allison-8k")).slice(31, 34), 200);
    const callSid = makeSid("CA");
    // The call page's event stream, read while the call lasts: each track's level once a second.
    const levels: Array<Record<string, number | null>> = [];
    const call = callTestServer(server, {
      calleeAudio: toMulaw(callee.samples),
      callSid,
      tailMs: 500,
    });
    await sleep(300);
    const events = await fetch(`${server.url}/api/calls/${callSid}/levels`);
    const reading = (async () => {
      for await (const block of readLines(events.body!, { separator: "\n\n" })) {
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (/^event: level$/m.test(block) && data) levels.push(JSON.parse(data));
        if (/^event: call-ended$/m.test(block)) return;
      }
    })();
    await call;
    await reading;
    assert.ok(levels.length >= 1, "a level event while the call lasted");
    // No laptop audio: the simulator plays silence on the outbound track.
    assert.ok(levels.every((l) => l.outbound === -96), JSON.stringify(levels));
    assert.ok(levels.some((l) => (l.inbound ?? -96) > -50), JSON.stringify(levels));

    // No AUDIO_INPUT: nothing was muted, the laptop side had nothing to send.
    const page = await (await fetch(`${server.url}/calls/${callSid}`)).text();
    assert.match(page, /outbound track silent: the laptop leg was off \(no microphone/);
    assert.doesNotMatch(page, /microphone muted/);
    assert.doesNotMatch(page, /inbound track silent/);
    assert.doesNotMatch(page, /id="player"/, "no player without a recording");
    const json = await (await fetch(`${server.url}/api/calls/${callSid}`)).json();
    assert.deepEqual(json.recording, { exists: false, durationMs: null, url: null });
    assert.equal(json.quality.outbound.silentShare, 1);
    assert.equal(json.laptopInput, "off");
    assert.ok(json.quality.inbound.silentShare < 0.95);
    const txt = await (await fetch(`${server.url}/api/calls/${callSid}/transcript.txt`)).text();
    assert.match(txt, /^Recording: none$/m);
    assert.match(txt, /^Warning: outbound track silent: the laptop leg was off/m);
    const wav = await fetch(`${server.url}/api/calls/${callSid}/recording.wav`);
    assert.equal(wav.status, 404);
    assert.match((await wav.json()).error, /RECORD_CALLS=0/);
    // Nothing was written: not even the folder.
    await assert.rejects(Deno.stat(server.recordings.dir), Deno.errors.NotFound);
  } finally {
    await server.shutdown();
  }
});

Deno.test("recording: a laptop input that sends only silence gets the muted-microphone warning", async () => {
  const silence = await tempWav(new Float32Array(8000 * 3));
  const server = await testServer({
    engine: new NullEngine(),
    recordCalls: "0",
    audioInput: silence,
  });
  try {
    const callee = await conversation((await audioSet("asterisk-allison-8k")).slice(31, 33), 200);
    const callSid = makeSid("CA");
    await callTestServer(server, { calleeAudio: toMulaw(callee.samples), callSid, tailMs: 500 });
    const json = await (await fetch(`${server.url}/api/calls/${callSid}`)).json();
    assert.equal(json.laptopInput, "file");
    assert.deepEqual(json.qualityWarnings, [
      "outbound track silent for 100% of the call: microphone muted?",
    ]);
  } finally {
    await server.shutdown();
    await Deno.remove(silence);
  }
});

Deno.test("recordings: over RECORDINGS_MAX_GB the oldest are removed first (said in the log); one being written stays", async () => {
  const dir = await Deno.makeTempDir({ prefix: "callscribe-recordings-" });
  const log = memoryLogger();
  const file = (sid: string, seconds: number, ageS: number) => {
    const path = `${dir}/${sid}.wav`;
    const data = seconds * 32000;
    const bytes = new Uint8Array(HEADER_BYTES + data);
    bytes.set(stereoWavHeader(data));
    Deno.writeFileSync(path, bytes);
    const at = new Date(Date.now() - ageS * 1000);
    Deno.utimeSync(path, at, at);
  };
  file("CAold", 2, 300); // 64 KB each
  file("CAlocked", 2, 200);
  Deno.writeTextFileSync(`${dir}/CAlocked.lock`, JSON.stringify({ host: "elsewhere", pid: 1 }));
  file("CAmiddle", 2, 100);
  file("CAnew", 2, 0);
  // Room for two and a half: the two oldest that are not being written go.
  const recordings = new Recordings({ dir, enabled: true, maxBytes: 160_000, log });
  await recordings.trim();
  const left = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  assert.deepEqual(left, ["CAlocked.lock", "CAlocked.wav", "CAnew.wav"]);
  assert.equal(log.lines.filter((l) => l.includes("RECORDINGS_MAX_GB")).length, 2);
  assert.match(log.lines[0], /removed the oldest, .*CAold\.wav \(0\.1 MB\)/);
  assert.equal(await recordings.info("../CAnew"), null, "a SID never names a path outside");
  assert.equal((await recordings.info("CAnew"))?.durationMs, 2000);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("store: a call's audio summary is kept with the call and goes when the call is deleted", async () => {
  const store = new SqliteStore(":memory:");
  try {
    const callSid = makeSid("CA");
    await store.callStarted({ callSid, direction: "outbound-api" }, Date.now());
    assert.equal(await loadCallAudio(store, callSid), null);
    const stats = {
      receivedMs: 1000,
      gapMs: 40,
      clippedShare: 0,
      silentShare: 1,
      meanLevelDb: -96,
    };
    const audio = {
      quality: { inbound: stats, outbound: { ...stats, silentShare: 0.5 } },
      recordedMs: 1040,
      laptopInput: "microphone" as const,
    };
    await saveCallAudio(store, callSid, audio);
    assert.deepEqual(await loadCallAudio(store, callSid), audio);
    await saveCallAudio(store, callSid, { ...audio, recordedMs: null, laptopInput: null });
    assert.equal((await loadCallAudio(store, callSid))?.recordedMs, null);
    assert.equal((await loadCallAudio(store, callSid))?.laptopInput, null, "no laptop leg");
    await store.deleteCall(callSid);
    assert.equal(await loadCallAudio(store, callSid), null);
  } finally {
    await store.close();
  }
});

Deno.test("recorder: a long gap is written batch by batch and stays aligned; the same call again appends", async () => {
  const dir = await Deno.makeTempDir({ prefix: "callscribe-recorder-" });
  const recordings = new Recordings({ dir, enabled: true, maxBytes: 1e9, log: memoryLogger() });
  const callSid = makeSid("CA");
  const frame = (code: number) => new Uint8Array(160).fill(code);
  try {
    const recorder = recordings.open(callSid);
    recorder.write("inbound", 0, frame(0x10));
    // 150 s of gap on the inbound track, more than two batches.
    recorder.write("inbound", 150_000 * 8, frame(0x20));
    recorder.write("outbound", 0, frame(0x30));
    const summary = await recorder.end();
    assert.equal(summary.recordedMs, 150_040);
    assert.equal(summary.quality.inbound.gapMs, 150_000);
    assert.equal(summary.quality.outbound.receivedMs, 20);
    const first = readStereo(await Deno.readFile(`${dir}/${callSid}.wav`));
    const expected = {
      inbound: new Uint8Array(150_040 * 8).fill(MULAW_SILENCE),
      outbound: new Uint8Array(150_040 * 8).fill(MULAW_SILENCE),
    };
    expected.inbound.set(frame(0x10), 0);
    expected.inbound.set(frame(0x20), 150_020 * 8);
    expected.outbound.set(frame(0x30), 0);
    assert.equal(firstMismatch(first.left, expected.inbound), -1);
    assert.equal(firstMismatch(first.right, expected.outbound), -1);

    // Its stream restarted: the second part follows the first in the same file.
    const again = recordings.open(callSid);
    again.write("outbound", 0, frame(0x40));
    assert.equal((await again.end()).recordedMs, 150_060);
    const both = readStereo(await Deno.readFile(`${dir}/${callSid}.wav`));
    assert.equal(both.right.length, 150_060 * 8);
    assert.equal(both.right[150_040 * 8], mulawDecodeSample(0x40));
    assert.equal(both.left[150_040 * 8], 0);
  } finally {
    await recordings.settled();
    await Deno.remove(dir, { recursive: true });
  }
});

/** Frame `ms` of `track` (0 inbound, 1 outbound): every frame different, so a misplaced one shows. */
function distinctFrame(track: number, ms: number): Uint8Array {
  const bytes = new Uint8Array(160);
  for (let i = 0; i < 160; i++) bytes[i] = (ms / 20 * 7 + i * 3 + track * 101) & 0xff;
  return bytes;
}

/** The recording holds {@link distinctFrame}s of both tracks, in order, for `totalMs`. */
function assertRecordedFrames(wav: Uint8Array, totalMs: number): void {
  const { left, right } = readStereo(wav);
  const expected = { inbound: new Uint8Array(totalMs * 8), outbound: new Uint8Array(totalMs * 8) };
  for (let ms = 0; ms < totalMs; ms += 20) {
    expected.inbound.set(distinctFrame(0, ms), ms * 8);
    expected.outbound.set(distinctFrame(1, ms), ms * 8);
  }
  assert.equal(firstMismatch(left, expected.inbound), -1);
  assert.equal(firstMismatch(right, expected.outbound), -1);
}

/** Runs `write` on a recorder flushing every `flushMs` into a new file; checks what it wrote. */
async function recordFrames(
  flushMs: number,
  totalMs: number,
  write: (recorder: CallRecorder) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "callscribe-recorder-" });
  const path = `${dir}/call.wav`;
  const recorder = new CallRecorder({
    callSid: makeSid("CA"),
    target: { path, lockPath: `${dir}/call.lock` },
    log: memoryLogger(),
    flushMs,
  });
  try {
    await write(recorder);
    await recorder.end();
    assertRecordedFrames(await Deno.readFile(path), totalMs);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("recorder: a track that lags the other keeps its queued audio intact while blocks are reused", async () => {
  // Flushes every 200 ms of wall time, while the turns below write 240 ms of audio every 30 ms:
  // between flushes a track queues more than a block.
  const totalMs = 9600;
  // Outbound trails by 900 ms, under the recorder's one-second wait: each flush leaves inbound's
  // last 900 ms queued.
  const lagMs = 900;
  await recordFrames(200, totalMs, async (recorder) => {
    let outboundMs = 0;
    for (let inboundMs = 0; inboundMs < totalMs;) {
      for (const end = inboundMs + 240; inboundMs < end; inboundMs += 20) {
        recorder.write("inbound", 0, distinctFrame(0, inboundMs));
      }
      for (; outboundMs < inboundMs - lagMs; outboundMs += 20) {
        recorder.write("outbound", 0, distinctFrame(1, outboundMs));
      }
      await new Promise((resolve) => setTimeout(resolve, 30));
    }
    for (; outboundMs < totalMs; outboundMs += 20) {
      recorder.write("outbound", 0, distinctFrame(1, outboundMs));
    }
  });
});

Deno.test("recorder: a flush that leaves a frame of one track moves it to its block's start, and the audio stays exact", async () => {
  // Each turn writes inbound's frame before outbound's, and a flush may come between them (a
  // timer of 50 ms against turns of 7 ms): then inbound's last frame is left queued, to be moved
  // to its block's start. 4 s of audio, more than three blocks: a block not started over would be
  // replaced, and a frame moved wrongly shows as a mismatch.
  const totalMs = 4000;
  await recordFrames(50, totalMs, async (recorder) => {
    for (let ms = 0; ms < totalMs; ms += 20) {
      recorder.write("inbound", 0, distinctFrame(0, ms));
      if ((ms / 20) % 3 === 0) await new Promise((resolve) => setTimeout(resolve, 7));
      recorder.write("outbound", 0, distinctFrame(1, ms));
      if ((ms / 20) % 5 === 0) await new Promise((resolve) => setTimeout(resolve, 7));
    }
  });
});

Deno.test("recorder: each track's level is reported once a LEVELS_MS, over all its audio since the last, however often it flushes", async () => {
  // Flushes every 100 ms: ten flushes a level. One frame a track at the start (inbound loud,
  // outbound silent), nothing after: the first level still has them.
  const levels: TrackLevels[] = [];
  const recorder = new CallRecorder({
    callSid: makeSid("CA"),
    log: memoryLogger(),
    flushMs: 100,
    onLevels: (level) => levels.push(level),
  });
  recorder.write("inbound", 0, new Uint8Array(160).fill(0x00));
  recorder.write("outbound", 0, new Uint8Array(160).fill(MULAW_SILENCE));
  await new Promise((resolve) => setTimeout(resolve, LEVELS_MS * 2 + 300));
  await recorder.end();
  assert.ok(levels.length >= 1 && levels.length <= 3, `${levels.length} levels in 2.3 s`);
  assert.ok((levels[0].inbound ?? -Infinity) > -20, JSON.stringify(levels));
  assert.ok((levels[0].outbound ?? 0) < -90, JSON.stringify(levels));
  assert.equal(levels[1]?.inbound ?? null, null, "nothing since");
});

Deno.test("config: RECORD_CALLS and RECORDINGS_MAX_GB are checked, with the fix in the message", () => {
  assert.deepEqual(loadConfig({}).recordings, { enabled: true, maxBytes: 10e9 });
  assert.deepEqual(loadConfig({ RECORD_CALLS: "0", RECORDINGS_MAX_GB: "0.5" }).recordings, {
    enabled: false,
    maxBytes: 0.5e9,
  });
  assert.throws(
    () => loadConfig({ RECORD_CALLS: "yes" }),
    /RECORD_CALLS must be 1 \(record calls\) or 0 \(do not\), got "yes"/,
  );
  assert.throws(
    () => loadConfig({ RECORDINGS_MAX_GB: "-1" }),
    /RECORDINGS_MAX_GB must be a positive number of gigabytes such as 10 or 0\.5, got "-1"/,
  );
});

Deno.test("recordings: a recording another server holds the lock of is neither repaired nor written twice", async () => {
  const dir = await Deno.makeTempDir({ prefix: "callscribe-recordings-" });
  const log = memoryLogger();
  const callSid = makeSid("CA");
  try {
    // Another instance on shared storage is writing this call (its OS lock is held).
    const header = stereoWavHeader(0);
    await Deno.writeFile(`${dir}/${callSid}.wav`, header);
    const other = await takeLock(`${dir}/${callSid}.lock`);
    assert.ok(other && !other.stale);
    const recordings = new Recordings({ dir, enabled: true, maxBytes: 1e9, log });
    assert.deepEqual(await recordings.start(), []);
    const recorder = recordings.open(callSid);
    recorder.write("inbound", 0, new Uint8Array(160).fill(0x10));
    assert.equal((await recorder.end()).recordedMs, null);
    assert.ok(
      log.lines.some((l) => l.includes("another server is recording it")),
      log.lines.join(),
    );
    assert.deepEqual(await Deno.readFile(`${dir}/${callSid}.wav`), header, "left untouched");
    // Once that server is done, a start finds nothing to repair; a lock whose holder is gone
    // (the file is there, no one holds it) is repaired.
    await releaseLock(`${dir}/${callSid}.lock`, other.file);
    await Deno.writeTextFile(`${dir}/${callSid}.lock`, "{}");
    await Deno.writeFile(`${dir}/${callSid}.wav`, new Uint8Array(HEADER_BYTES + 3200));
    assert.deepEqual(await recordings.start(), [callSid]);
    assert.equal((await recordings.info(callSid))?.durationMs, 100);
    await assert.rejects(Deno.stat(`${dir}/${callSid}.lock`), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
