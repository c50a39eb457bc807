/**
 * The laptop audio bridge with real ffmpeg processes: a WAV of real speech
 * as the "microphone", a WAV file (or ALSA's null device) as the "speaker",
 * real-time simulated calls, pacing measured where Twilio receives it,
 * processes killed mid-call, and ffmpeg missing.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { FRAME_BYTES, silenceFrame } from "../lib/audio/framing.ts";
import {
  MULAW_SILENCE,
  mulawDecode,
  mulawDecodeSample,
  mulawToFloat32,
} from "../lib/audio/mulaw.ts";
import { findFfmpeg } from "../lib/laptop_audio/find_ffmpeg.ts";
import { LEAD_FRAMES } from "../lib/laptop_audio/microphone.ts";
import { HEADER_BYTES } from "../lib/recording/recording_file.ts";
import { readWavFile, toCallAudio } from "../lib/audio/wav.ts";
import { BridgeManager, BurstDetector } from "../lib/laptop_audio/bridge.ts";
import { capturePlans, parseAudioInput, parseAudioOutput } from "../lib/laptop_audio/devices.ts";
import { MulawWavFile } from "../lib/laptop_audio/speaker.ts";
import { memoryLogger } from "../lib/log.ts";
import { makeSid, simulateCall } from "../lib/sim/twilio_sim.ts";
import type { Transcript } from "../lib/transcribe/engine.ts";
import { wordErrorRate } from "../lib/metrics/wer.ts";
import { processOf } from "./procfs.ts";
import {
  audioSet,
  callTestServer,
  conversation,
  finals,
  SHARED_AUDIO,
  sharedEngine,
  testServer,
  toMulaw,
} from "./helpers.ts";
import { UserError } from "../lib/user_error.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const text = (ts: Transcript[]) => ts.map((t) => t.text).join(" ");
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A shared utterance by file name, with its reference text. */
async function utterance(set: string, file: string) {
  const found = (await audioSet(set)).find((u) => u.path.endsWith("/" + file));
  if (!found) throw new Error(`${file} is not in ${set}`);
  return found;
}

/** Transcribes µ-law call audio with the local engine (as the inbound track). */
async function transcribe(mulaw: Uint8Array): Promise<string> {
  const engine = await sharedEngine();
  const out: Transcript[] = [];
  const track = engine.open("inbound", { onTranscript: (t) => t.type === "final" && out.push(t) });
  for (let at = 0; at < mulaw.length; at += FRAME_BYTES) {
    track.write(mulaw.subarray(at, at + FRAME_BYTES));
  }
  await track.close();
  return text(out);
}

/** True when a process with this PID is still an ffmpeg (PIDs may be reused). */
async function ffmpegAlive(pid: number): Promise<boolean> {
  const process = await processOf(pid);
  return process !== null && !process.zombie && /ff(mpeg|play)/.test(process.cmdline);
}

Deno.test("device names, files and none are told apart, with clear errors", async () => {
  assert.deepEqual(parseAudioInput(undefined), { kind: "none" });
  assert.deepEqual(parseAudioInput("none"), { kind: "none" });
  assert.deepEqual(parseAudioInput("default"), {
    kind: "device",
    format: "default",
    name: "default",
  });
  assert.deepEqual(parseAudioInput("pulse:alsa_input.usb-mic"), {
    kind: "device",
    format: "pulse",
    name: "alsa_input.usb-mic",
  });
  assert.deepEqual(parseAudioInput("alsa:hw:0"), { kind: "device", format: "alsa", name: "hw:0" });
  assert.deepEqual(parseAudioInput("avfoundation::0"), {
    kind: "device",
    format: "avfoundation",
    name: ":0",
  });
  assert.deepEqual(parseAudioInput("dshow:audio=Microphone (Realtek)"), {
    kind: "device",
    format: "dshow",
    name: "audio=Microphone (Realtek)",
  });
  const wav = `${SHARED_AUDIO}librispeech-samples/2830-3980-0043.wav`;
  assert.deepEqual(parseAudioInput(wav), { kind: "file", path: wav });
  assert.throws(
    () => parseAudioInput("no/such/file.wav"),
    (e) => e instanceof UserError && /AUDIO_INPUT="no\/such\/file\.wav"/.test(e.message),
  );
  assert.throws(
    () => parseAudioInput("bogus:thing"),
    /neither an existing file nor a known device/,
  );
  assert.deepEqual(parseAudioOutput("alsa:null"), { kind: "device", format: "alsa", name: "null" });
  const out = `${Deno.cwd()}/call.wav`;
  assert.deepEqual(parseAudioOutput(out), { kind: "file", path: out });
  // A Windows path is a file, not a device: drive letters are never a device format.
  assert.throws(() => parseAudioInput("C:\\calls\\mic.wav"), /neither an existing file/);
  assert.throws(() => parseAudioOutput("out.mp3"), /must end in \.wav/);
  assert.throws(() => parseAudioOutput("/no/such/dir/out.wav"), /does not exist/);
  // The Linux default tries PulseAudio, then ALSA; macOS AVFoundation.
  const linux = await capturePlans({ kind: "device", format: "default", name: "default" }, {
    os: "linux",
  });
  assert.deepEqual(linux.map((p) => p.args[p.args.indexOf("-f") + 1]), ["pulse", "alsa"]);
  const mac = await capturePlans({ kind: "device", format: "default", name: "default" }, {
    os: "darwin",
  });
  assert.equal(mac[0].args[mac[0].args.indexOf("-f") + 1], "avfoundation");
  // A restarted file resumes where it was.
  const resumed = await capturePlans({ kind: "file", path: wav }, { seekMs: 2500 });
  const ss = resumed[0].args.indexOf("-ss");
  assert.deepEqual(resumed[0].args.slice(ss, ss + 2), ["-ss", "2.500"]);
});

Deno.test("bursts of speech are detected by energy, not clicks or silence", () => {
  const detector = new BurstDetector();
  const tone = new Uint8Array(FRAME_BYTES);
  for (let i = 0; i < FRAME_BYTES; i++) tone[i] = toMulaw(new Float32Array([0.3 * Math.sin(i)]))[0];
  const ends: number[] = [];
  const feed = (frame: Uint8Array, n: number) => {
    for (let i = 0; i < n; i++) if (detector.frame(frame)) ends.push(i);
  };
  feed(silenceFrame(), 50);
  feed(tone, 2); // a 40 ms click
  feed(silenceFrame(), 30);
  assert.equal(ends.length, 0, "a click is not a burst");
  feed(tone, 50); // a second of speech
  feed(silenceFrame(), 30);
  assert.deepEqual(ends, [19], "the burst ends after 400 ms of quiet");
});

Deno.test("the speaker's WAV file is valid while written and complete after close", async () => {
  const path = await Deno.makeTempFile({ suffix: ".wav" });
  const file = new MulawWavFile(path);
  const audio = toMulaw(new Float32Array(8000).map((_, i) => 0.2 * Math.sin(i / 3)));
  file.write(audio.subarray(0, 3000));
  file.write(audio.subarray(3000));
  file.close();
  const wav = await readWavFile(path);
  assert.equal(wav.sampleRate, 8000);
  assert.equal(wav.samples.length, 8000);
  assert.deepEqual(wav.samples, mulawToFloat32(audio));
});

Deno.test("one bridge at a time; clear reaches Twilio; every process ends", async () => {
  const log = memoryLogger();
  const manager = await BridgeManager.create({
    input: parseAudioInput("lavfi:sine=frequency=440"),
    output: parseAudioOutput("alsa:null"),
    log,
  });
  assert.ok(manager.enabled);
  const sent: string[] = [];
  const first = manager.open({ callSid: "CA1", streamSid: "MZ1", send: (t) => sent.push(t) });
  assert.ok(first);
  const second = manager.open({ callSid: "CA2", streamSid: "MZ2", send: () => {} });
  assert.equal(second, null);
  assert.ok(
    log.lines.some((l) => /call CA2: the laptop audio bridge is busy with call CA1/.test(l)),
  );
  for (let i = 0; i < 30; i++) first.play(silenceFrame());
  await sleep(1000);
  const media = sent.filter((t) => JSON.parse(t).event === "media");
  // One a frame time, and the lead Twilio's buffer is kept at.
  assert.ok(
    media.length >= 40 + LEAD_FRAMES && media.length <= 52 + LEAD_FRAMES,
    `${media.length} frames in ~1 s`,
  );
  assert.ok(manager.clear());
  assert.deepEqual(JSON.parse(sent.at(-1)!), { event: "clear", streamSid: "MZ1" });
  // One ffmpeg for the microphone, one for the speaker (a process that died is being restarted,
  // so look again for a while before calling it missing).
  let running = false;
  for (let i = 0; i < 30 && !running; i++) {
    const live = first.livePids();
    running = Boolean(live.microphone && live.speaker) &&
      await ffmpegAlive(live.microphone!) && await ffmpegAlive(live.speaker!);
    if (!running) await sleep(100);
  }
  assert.ok(running, `the bridge's ffmpeg processes are not running: ${log.lines.join("\n")}`);
  const pids = first.allPids();
  await manager.closeAll();
  for (const pid of pids) assert.ok(!(await ffmpegAlive(pid)), `ffmpeg ${pid} survived`);
  assert.equal(manager.active, null);
});

Deno.test("a call through the bridge: the mic file reaches the callee, the callee reaches the speaker", async () => {
  const mic = await utterance("librispeech-samples", "1089-134686-0001.wav");
  const callee = await conversation([
    await utterance(
      "librivox-sense-and-sensibility",
      "sense_and_sensibility_01_austen_64kb-0870.wav",
    ),
  ], 500);
  const speakerPath = await Deno.makeTempFile({ suffix: ".wav" });
  const server = await testServer({
    audioInput: mic.path,
    audioOutput: speakerPath,
    pacedInput: true,
  });
  try {
    const callSid = makeSid("CA");
    const result = await callTestServer(server, {
      calleeAudio: toMulaw(callee.samples),
      callSid,
      tailMs: 1500,
    });
    const heard = text(finals(server.events, callSid, "outbound"));
    const micWer = wordErrorRate(mic.text, heard).wer;
    const spoken = await transcribe(toCallAudio(await readWavFile(speakerPath)));
    const speakerWer = wordErrorRate(callee.text, spoken).wer;
    console.log(`mic → call WER ${micWer.toFixed(3)}, call → speaker WER ${speakerWer.toFixed(3)}`);
    assert.ok(micWer < 0.3, `outbound track heard: ${heard}`);
    assert.ok(speakerWer < 0.3, `speaker file has: ${spoken}`);
    assert.ok(result.marksEchoed.length >= 1, "the spoken burst was marked and the mark echoed");
    const closed = server.log.lines.find((l) => l.includes("audio bridge closed"));
    console.log(closed);
    assert.match(closed ?? "", / 0 late, .* 0 unanswered/);
  } finally {
    await server.shutdown();
  }
});

/** The µ-law bytes the microphone's ffmpeg makes of `path` (its own capture plan, run to the end). */
async function micBytes(path: string): Promise<Uint8Array> {
  const found = await findFfmpeg(Deno.env.get("FFMPEG_PATH") || undefined);
  if (found.path === undefined) throw new Error(found.why);
  const FFMPEG = found.path;
  const [plan] = await capturePlans({ kind: "file", path });
  const output = await new Deno.Command(FFMPEG, { args: plan.args, stderr: "null" }).output();
  assert.equal(output.code, 0, `ffmpeg ${plan.args.join(" ")}`);
  return output.stdout;
}

/**
 * Where `expected` (µ-law) first sounds in `played` (16-bit PCM), and how many of its samples
 * from there differ: a frame of silence slipped in shifts every later sample.
 */
function holesIn(played: Int16Array, expected: Uint8Array): { offset: number; differing: number } {
  const pcm = mulawDecode(expected);
  const silent = mulawDecodeSample(MULAW_SILENCE);
  const firstSound = (x: Int16Array) => x.findIndex((v) => v !== silent);
  const offset = firstSound(played) - firstSound(pcm);
  let differing = 0;
  const end = Math.min(pcm.length, played.length - offset);
  for (let i = Math.max(0, -offset); i < end; i++) if (played[offset + i] !== pcm[i]) differing++;
  return { offset, differing };
}

Deno.test("the microphone is paced by the clock: 1,500 frames in 30 s, no bursts, no holes", async () => {
  // The file is speech all through (30.3 s), so the frames carry audio, not just silence.
  const mic = `${SHARED_AUDIO}asterisk-allison-8k/demo-congrats.wav`;
  const server = await testServer({ audioInput: mic, pacedInput: true });
  try {
    const callSid = makeSid("CA");
    const result = await callTestServer(server, {
      calleeAudio: new Uint8Array(30_000 * 8).fill(MULAW_SILENCE),
      callSid,
      tailMs: 1000,
    });
    // Frame i is due at start + (i − LEAD_FRAMES)·20 ms. A frame can arrive late (the receiving
    // event loop's hiccups), never early, so the earliest against that schedule gives the start;
    // the first frame's own arrival would move the 30 s with any stall at that moment.
    const arrivals = result.serverMediaTimes;
    const start = Math.min(...arrivals.map((t, i) => t - (i - LEAD_FRAMES) * 20));
    const times = arrivals.filter((t) => t < start + 30_000);
    const spacing = (times.at(-1)! - times[0]) / (times.length - 1);
    // Arrival times also carry the receiving event loop's hiccups (server and simulator share
    // one process), so the bounds leave room for a stall; sending all at once fails them all.
    let most = 0;
    for (let i = 0, j = 0; i < times.length; i++) {
      while (times[i] - times[j] > 5) j++;
      most = Math.max(most, i - j + 1);
    }
    // How late each frame came against the schedule. A stall (here or in the sender's timer)
    // makes the frames around it late and then close together, but never most of them; a sender
    // that sent two frames every 40 ms would have every other one 20 ms ahead of its time.
    const lateness = times.map((t, i) => t - (i - LEAD_FRAMES) * 20 - start).sort((a, b) => a - b);
    const medianLate = lateness[lateness.length >> 1];
    console.log(
      `${times.length} frames, mean spacing ${spacing.toFixed(3)} ms, at most ${most} ` +
        `within 5 ms, median ${medianLate.toFixed(1)} ms after the schedule`,
    );
    // 30 s of frames, and the lead Twilio's buffer holds.
    const expected = 1500 + LEAD_FRAMES;
    assert.ok(Math.abs(times.length - expected) <= 2, `${times.length} frames in a 30 s call`);
    assert.ok(Math.abs(spacing - 20) <= 0.5, `mean spacing ${spacing} ms`);
    assert.ok(most <= 6, `${most} frames arrived within 5 ms: a burst`);
    assert.ok(medianLate <= 10, `half the frames came over ${medianLate.toFixed(1)} ms late`);
    // What Twilio played on the laptop's track is the file, every sample in order: read at its own
    // pace by ffmpeg as well (-re), the file fell behind the clock and silence was sent inside words.
    const recording = await Deno.readFile(`${server.recordings.dir}/${callSid}.wav`);
    const stereo = new Int16Array(
      recording.buffer,
      HEADER_BYTES,
      (recording.length - HEADER_BYTES) / 2,
    );
    const laptopTrack = stereo.filter((_, i) => i % 2 === 1);
    const { offset, differing } = holesIn(laptopTrack, await micBytes(mic));
    console.log(`the file starts ${offset / 8} ms into the call; ${differing} samples differ`);
    assert.equal(differing, 0, "the laptop's track is the file, with no silence slipped in");
  } finally {
    await server.shutdown();
  }
});

Deno.test("ffmpeg killed mid-call is restarted, the call completes, no ffmpeg is left", async () => {
  // Long enough that ffmpeg is still writing when killed: a file is read ahead as far as the pipe
  // and the reader hold, and a 17 s file was read in full within 2 s.
  const mic = await utterance("asterisk-allison-8k", "demo-congrats.wav");
  const server = await testServer({
    audioInput: mic.path,
    audioOutput: "alsa:null",
    pacedInput: true,
  });
  const pids = new Set<number>();
  try {
    const callSid = makeSid("CA");
    const ended = server.registry.whenEnded(callSid);
    const call = simulateCall({
      serverUrl: server.url,
      calleeAudio: new Uint8Array(31_500 * 8).fill(MULAW_SILENCE),
      authToken: server.token,
      callSid,
      tailMs: 500,
    });
    call.catch(() => {}); // Awaited below; a failed assertion must not leave it unhandled.
    await sleep(2000);
    const bridge = server.bridges.active;
    assert.ok(bridge, "the call is bridged");
    const before = bridge.livePids();
    assert.ok(before.microphone && before.speaker, JSON.stringify(before));
    Deno.kill(before.microphone, "SIGKILL");
    await sleep(1500);
    Deno.kill(before.speaker, "SIGKILL");
    // The speaker's ffmpeg is missed at once. The microphone's is missed once the audio it wrote
    // ahead has been taken from the pipe, several seconds later.
    const restarted = async (side: "microphone" | "speaker") => {
      for (let i = 0; i < 200 && bridge.stats().restarts[side] === 0; i++) await sleep(100);
      const now = bridge.livePids()[side];
      assert.ok(now && now !== before[side], `${side} restarted`);
    };
    await restarted("speaker");
    await restarted("microphone");
    for (const pid of bridge.allPids()) pids.add(pid);
    const result = await call;
    await ended;
    for (const pid of bridge.allPids()) pids.add(pid);
    assert.equal(bridge.stats().restarts.microphone, 1);
    assert.equal(bridge.stats().restarts.speaker, 1);
    assert.ok(
      server.log.lines.some((l) =>
        /microphone: ffmpeg stopped mid-call \(killed by SIGKILL/.test(l)
      ),
    );
    // Silence filled the gap: the frame count still matches the call's length (and the lead).
    const gap = result.serverMediaTimes.length - result.framesSent - LEAD_FRAMES;
    assert.ok(Math.abs(gap) <= 3, `${gap} frames more than the call's length and the lead`);
    // The file resumed where it was: nothing of what was said is lost.
    const heard = text(finals(server.events, callSid, "outbound"));
    assert.ok(wordErrorRate(mic.text, heard).wer < 0.35, `outbound track heard: ${heard}`);
  } finally {
    await server.shutdown();
  }
  assert.equal(pids.size, 4);
  for (const pid of pids) assert.ok(!(await ffmpegAlive(pid)), `ffmpeg ${pid} is still running`);
});

Deno.test("server shutdown mid-call ends the bridge's processes", async () => {
  const server = await testServer({ audioInput: "lavfi:sine", audioOutput: "alsa:null" });
  const abort = new AbortController();
  const call = simulateCall({
    serverUrl: server.url,
    calleeAudio: new Uint8Array(20_000 * 8).fill(MULAW_SILENCE),
    authToken: server.token,
    signal: abort.signal,
  });
  call.catch(() => {});
  await sleep(2000);
  const bridge = server.bridges.active;
  assert.ok(bridge);
  const pids = bridge.allPids();
  assert.equal(pids.length, 2);
  await server.shutdown();
  for (const pid of pids) assert.ok(!(await ffmpegAlive(pid)), `ffmpeg ${pid} survived shutdown`);
  abort.abort();
  await call.catch(() => {});
});

Deno.test("ffmpeg that does not run: one plain note; the call is transcribed and a WAV input still plays", async () => {
  const bin = await Deno.makeTempDir();
  await Deno.symlink(Deno.execPath(), `${bin}/deno`);
  const callee = await utterance("librispeech-samples", "1089-134686-0001.wav");
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      "make_call.ts",
      "--simulate",
      "--fast",
      "--callee-audio",
      callee.path,
      "--caller-audio",
      `${SHARED_AUDIO}librispeech-samples/2830-3980-0043.wav`,
    ],
    cwd: ROOT,
    // A set FFMPEG_PATH is used alone, so this is "no ffmpeg" even with the npm one installed.
    env: {
      PATH: bin,
      NO_COLOR: "1",
      HOME: Deno.env.get("HOME") ?? "/tmp",
      FFMPEG_PATH: `${bin}/ffmpeg`,
      DATA_DIR: `${bin}/data`,
    },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, stderr);
  const messages = stderr.split("\n").filter((l) => l.includes("FFMPEG_PATH"));
  assert.equal(messages.length, 1, stderr);
  // Nothing is wrong for a WAV-only bridge: a plain line, neither "error:" nor "warning:".
  assert.match(messages[0], /^callscribe: the audio bridge reads and writes WAV files in-process/);
  assert.match(messages[0], /FFMPEG_PATH=".*\/ffmpeg" does not run/);
  assert.doesNotMatch(stderr, /error:/, stderr);
  const heard = (side: string) =>
    stdout.split("\n").filter((l) => l.startsWith(side + ":")).join(" ")
      .replace(new RegExp(`${side}: | \\[\\d+ - \\d+\\]`, "g"), " ");
  assert.ok(wordErrorRate(callee.text, heard("Inbound")).wer < 0.3, stdout);
  // The caller's WAV is read in-process, so the laptop side is still heard.
  assert.match(heard("Outbound"), /experience/i, stdout);
  await Deno.remove(bin, { recursive: true });
});
