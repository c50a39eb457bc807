/**
 * A laptop without headphones, simulated: the bridge's microphone hears the
 * laptop user and, through the room, the phone party played on its speaker.
 * Real speech, the real server and local engine, signatures on.
 */
import assert from "node:assert/strict";
import { floatToMulaw } from "../lib/audio/mulaw.ts";
import { readWavFile, resample } from "../lib/audio/wav.ts";
import { DEFAULT_ROOM } from "../lib/laptop_audio/room.ts";
import { normalizeWords } from "../lib/metrics/wer.ts";
import { duplicatedWords } from "../lib/metrics/duplicated_words.ts";
import type { Transcript } from "../lib/transcribe/engine.ts";
import { audioSet, callTestServer, finals, tempWav, testServer } from "./helpers.ts";
import { makeSid } from "../lib/sim/twilio_sim.ts";

/** The phone party says three sentences; the laptop user answers each after it. */
async function conversation() {
  const inbound = (await audioSet("librivox-sense-and-sensibility")).slice(0, 3);
  const outbound = (await audioSet("asterisk-allison-8k")).filter((u) =>
    ["vm-mismatch.wav", "pbx-invalid.wav", "vm-nobox.wav"].some((f) => u.path.endsWith(f))
  );
  const read = async (path: string) => {
    const wav = await readWavFile(path);
    return resample(wav.samples, wav.sampleRate, 8000);
  };
  const parts = {
    inbound: [] as [number, Float32Array][],
    outbound: [] as [number, Float32Array][],
  };
  let at = 8000;
  for (let i = 0; i < 3; i++) {
    const said = await read(inbound[i].path);
    parts.inbound.push([at, said]);
    at += said.length + 8000;
    const answer = await read(outbound[i].path);
    parts.outbound.push([at, answer]);
    at += answer.length + 8000;
  }
  const track = (placed: [number, Float32Array][]) => {
    const samples = new Float32Array(at + 8000);
    for (const [start, s] of placed) samples.set(s, start);
    return samples;
  };
  return {
    inbound: floatToMulaw(track(parts.inbound)),
    outboundPath: await tempWav(track(parts.outbound)),
    outboundText: outbound.map((u) => u.text).join(" "),
  };
}

/** The share of the reference's words the hypothesis has, in order (longest common subsequence). */
function recall(reference: string, hypothesis: string): number {
  const ref = normalizeWords(reference);
  const hyp = normalizeWords(hypothesis);
  let previous = new Array(hyp.length + 1).fill(0);
  for (const word of ref) {
    const current = [0];
    for (let j = 1; j <= hyp.length; j++) {
      current[j] = word === hyp[j - 1]
        ? previous[j - 1] + 1
        : Math.max(previous[j], current[j - 1]);
    }
    previous = current;
  }
  return previous[hyp.length] / ref.length;
}

async function callInRoom(
  aec: "on" | "off" | "no room",
  talk: Awaited<ReturnType<typeof conversation>>,
) {
  const server = await testServer({
    audioInput: talk.outboundPath,
    room: aec === "no room" ? undefined : DEFAULT_ROOM,
    env: { AEC: aec === "on" ? "on" : "off" },
  });
  try {
    const callSid = makeSid("CA");
    await callTestServer(server, { callSid, calleeAudio: talk.inbound, fast: true });
    const tracks = [
      finals(server.events, callSid, "inbound"),
      finals(server.events, callSid, "outbound"),
    ];
    const said = server.log.lines.find((l) => l.includes("echo cancellation:")) ?? "";
    return { tracks, said };
  } finally {
    await server.shutdown();
  }
}

Deno.test("echo in the room: off, the phone party's words are transcribed again as the laptop user's; on, they are gone and the user's words kept", async () => {
  const talk = await conversation();
  const off = await callInRoom("off", talk);
  const on = await callInRoom("on", talk);
  const noEcho = await callInRoom("no room", talk);
  const outboundText = (r: { tracks: Transcript[][] }) => r.tracks[1].map((t) => t.text).join(" ");
  const offDuplicates = duplicatedWords(off.tracks[0], off.tracks[1]);
  const onDuplicates = duplicatedWords(on.tracks[0], on.tracks[1]);
  const detail = `off: ${offDuplicates.join(" ")}\non: ${onDuplicates.join(" ")}\n` +
    `outbound off: ${outboundText(off)}\noutbound on: ${outboundText(on)}`;
  assert.match(off.said, /echo cancellation: off \(AEC=off\)/);
  assert.match(on.said, /echo cancellation: on \(speexdsp 1\.2\.1/);
  assert.ok(offDuplicates.length >= 15, detail);
  assert.ok(onDuplicates.length <= 0.1 * offDuplicates.length, detail);
  // The laptop user's words are kept: recognized as often as in the same call without echo
  // (within 4 of 38). Words the residual echo adds while the canceller converges (the first
  // seconds of the phone party's speech) are not counted here; bench/echo.ts measures them.
  const kept = recall(talk.outboundText, outboundText(on));
  const keptNoEcho = recall(talk.outboundText, outboundText(noEcho));
  assert.ok(
    kept >= keptNoEcho - 0.1,
    `user's words recognized: ${kept} with the canceller, ${keptNoEcho} without echo: ` +
      `${outboundText(noEcho)}\n${detail}`,
  );
});
