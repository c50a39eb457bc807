/**
 * A server killed with SIGKILL mid-call leaves its recording open (lock
 * still there, header as of the last batch); the next start repairs it, and
 * ffmpeg then reads it with the duration of the audio on disk.
 */
import assert from "node:assert/strict";
import { findFfmpeg } from "../lib/laptop_audio/find_ffmpeg.ts";
import { HEADER_BYTES, repairRecording, stereoWavHeader } from "../lib/recording/recording_file.ts";
import { makeSid, simulateCall } from "../lib/sim/twilio_sim.ts";
import { NullEngine } from "../lib/transcribe/null_engine.ts";
import { audioSet, conversation, testServer, toMulaw } from "./helpers.ts";
import { sleep, spawnServer } from "./reliability/fixtures.ts";

/** ffmpeg: FFMPEG_PATH, the PATH's, or the build in npm `@ffmpeg-installer/ffmpeg`. */
const found = await findFfmpeg(Deno.env.get("FFMPEG_PATH"));
if (found.path === undefined) throw new Error(found.why);
const FFMPEG: string = found.path;

/** The duration ffmpeg reads from a file's header, in seconds. */
async function ffmpegDuration(path: string): Promise<number> {
  const { stderr } = await new Deno.Command(FFMPEG, {
    args: ["-hide_banner", "-i", path, "-f", "null", "-"],
    stdout: "null",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(stderr);
  const match = /Duration: (\d+):(\d\d):(\d\d\.\d+)/.exec(text);
  assert.ok(match, `ffmpeg did not read ${path}:\n${text}`);
  return Number(match[1]) * 3600 + Number(match[2]) * 60 + Number(match[3]);
}

Deno.test("recording: kill -9 mid-call leaves a recording the next start repairs, and ffmpeg reads it", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "callscribe-recording-crash-" });
  const token = "recording-crash-token-0123456789";
  const child = await spawnServer("tests/reliability/child_server.ts", ["--engine", "null"], {
    DATA_DIR: dataDir,
    TWILIO_AUTH_TOKEN: token,
    HOST: "127.0.0.1",
    PORT: "0",
  });
  const callSid = makeSid("CA");
  const path = `${dataDir}/recordings/${callSid}.wav`;
  const speech = await conversation((await audioSet("asterisk-allison-8k")).slice(26, 31), 300);
  const hangUp = new AbortController();
  // Real time: the kill lands while audio still streams.
  const call = simulateCall({
    serverUrl: child.url,
    calleeAudio: toMulaw(speech.samples),
    authToken: token,
    callSid,
    signal: hangUp.signal,
  }).catch(() => null);
  try {
    // Wait for three seconds of audio on disk, then kill.
    for (let i = 0; i < 100; i++) {
      const size = await Deno.stat(path).then((s) => s.size, () => 0);
      if (size >= HEADER_BYTES + 3 * 32000) break;
      await sleep(100);
    }
    child.kill("SIGKILL");
    await child.status;
  } finally {
    hangUp.abort();
    await call;
  }
  const killedSize = (await Deno.stat(path)).size;
  assert.ok(killedSize >= HEADER_BYTES + 3 * 32000, `recorded ${killedSize} bytes before the kill`);
  // Left open: the lock of the dead writer is still there.
  await Deno.stat(`${dataDir}/recordings/${callSid}.lock`);

  const server = await testServer({ dataDir, engine: new NullEngine() });
  try {
    assert.ok(
      server.log.lines.some((l) => l.includes(`${callSid}.wav was left open`)),
      server.log.lines.join("\n"),
    );
    await assert.rejects(Deno.stat(`${dataDir}/recordings/${callSid}.lock`), Deno.errors.NotFound);
    const repaired = await Deno.readFile(path);
    const dataBytes = new DataView(repaired.buffer).getUint32(40, true);
    assert.equal(HEADER_BYTES + dataBytes, repaired.length, "header sized to the data on disk");
    assert.equal(dataBytes % 4, 0, "whole stereo frames");
    const seconds = await ffmpegDuration(path);
    assert.ok(Math.abs(seconds - dataBytes / 32000) < 0.02, `ffmpeg reads ${seconds} s`);
    assert.ok(seconds >= 3, `${seconds} s survived the kill`);
    // The API serves it like any other recording.
    const info = await (await fetch(`${server.url}/api/calls/${callSid}`)).json();
    assert.equal(info.recording.exists, true);
    assert.equal(info.recording.durationMs, Math.round(dataBytes / 32));
  } finally {
    await server.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("recording: repair sets the header from the data on disk and cuts a torn last frame", async () => {
  const path = await Deno.makeTempFile({ suffix: ".wav" });
  // A header written when 0.5 s was on disk; 1 s and 3 bytes of a torn frame are there now.
  const bytes = new Uint8Array(HEADER_BYTES + 32000 + 3);
  bytes.set(stereoWavHeader(16000));
  await Deno.writeFile(path, bytes);
  assert.equal(await repairRecording(path), 1000);
  const repaired = await Deno.readFile(path);
  assert.equal(repaired.length, HEADER_BYTES + 32000);
  assert.deepEqual(repaired.subarray(0, HEADER_BYTES), stereoWavHeader(32000));
  assert.ok(Math.abs(await ffmpegDuration(path) - 1) < 0.01);
  await Deno.remove(path);
});
