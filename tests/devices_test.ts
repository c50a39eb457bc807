/**
 * Sound devices that tell the truth, with the real ffmpeg (`@ffmpeg-installer`)
 * on a machine where the device cannot be opened (this one has no sound
 * card; a device name that exists nowhere makes it so on any machine): the
 * server says so at start, a speaker that keeps failing is given up once,
 * what was not played is not counted, and `--list-devices` lists this OS's
 * devices only.
 */
import assert from "node:assert/strict";
import { BridgeManager } from "../lib/laptop_audio/bridge.ts";
import { findFfmpeg } from "../lib/laptop_audio/find_ffmpeg.ts";
import { Speaker } from "../lib/laptop_audio/speaker.ts";
import { MAX_FAILED_RESTARTS } from "../lib/laptop_audio/ffmpeg.ts";
import { memoryLogger } from "../lib/log.ts";
import { ROOT } from "./reliability/fixtures.ts";

const NOWHERE = { kind: "device" as const, format: "alsa", name: "callscribe-no-such-device" };

async function ffmpegPath(): Promise<string> {
  const found = await findFfmpeg(Deno.env.get("FFMPEG_PATH") || undefined);
  if (found.path === undefined) throw new Error(found.why);
  return found.path;
}

Deno.test("devices: a microphone and speaker that cannot be opened are said at start, not mid-call", async () => {
  const log = memoryLogger();
  const bridges = await BridgeManager.create({
    input: NOWHERE,
    output: NOWHERE,
    ffmpeg: await ffmpegPath(),
    log,
  });
  assert.equal(bridges.enabled, false, log.lines.join("\n"));
  const warnings = log.lines.filter((l) => l.startsWith("warn:"));
  assert.equal(warnings.length, 2, log.lines.join("\n"));
  assert.match(
    warnings[0],
    /AUDIO_INPUT: the microphone .* cannot be opened here .*--list-devices/,
  );
  assert.match(warnings[1], /AUDIO_OUTPUT: the speaker .* cannot be opened here/);
  // Never announced as working.
  assert.ok(!log.lines.some((l) => l.includes("audio bridge: microphone")), log.lines.join("\n"));
});

Deno.test("devices: a speaker that keeps failing mid-call is given up with one message; nothing counts as played", async () => {
  const log = memoryLogger();
  const speaker = new Speaker({ endpoint: NOWHERE, ffmpeg: await ffmpegPath(), log });
  // ffmpeg opens the device only once audio arrives: a call's audio comes after it started.
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const frame = new Uint8Array(160).fill(0x7f);
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline && !log.lines.some((l) => l.startsWith("error:"))) {
    speaker.play(frame);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await speaker.close();
  const restarts = log.lines.filter((l) => l.includes("restarting"));
  const errors = log.lines.filter((l) => l.startsWith("error:"));
  assert.ok(restarts.length <= MAX_FAILED_RESTARTS, log.lines.join("\n"));
  assert.equal(errors.length, 1, log.lines.join("\n"));
  assert.match(errors[0], /speaker: .*giving up: the call goes on without the speaker/);
  // Frames handed to an ffmpeg that died before opening the device were not played.
  assert.ok(
    speaker.framesPlayed < speaker.framesReceived / 4,
    `${speaker.framesPlayed} of ${speaker.framesReceived} counted as played:\n${
      log.lines.join("\n")
    }`,
  );
});

Deno.test("devices: --list-devices lists this OS's devices and forms, not ffmpeg's errors", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", "--list-devices"],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  assert.match(stdout, /Set AUDIO_INPUT to one of: default, none/);
  const others = Deno.build.os === "linux"
    ? /avfoundation|dshow|audiotoolbox/
    : Deno.build.os === "darwin"
    ? /dshow|pulse|alsa/
    : /avfoundation|pulse|alsa/;
  assert.doesNotMatch(stdout, others);
  // ffmpeg's own complaints (ALSA lib …, Unknown input format, Cannot list …) stay out.
  assert.doesNotMatch(stdout, /ALSA lib|Unknown input format|Cannot list|error/i);
});
