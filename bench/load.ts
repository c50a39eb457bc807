/**
 * The benchmark's load generator, run as its own process so its CPU is not
 * counted as the server's. It plays Twilio's part of N calls on the
 * transcription stream: a signed `/stream` WebSocket per call, `connected`
 * and `start`, then one `media` message per track every 20 ms on a shared
 * clock (one timer for all calls, each tick scheduled against the start
 * time, so lateness never accumulates), then `stop`.
 *
 * Frame i of a call is sent when its audio has happened, at
 * T0 + (i + 1) × 20 ms (plus the call's phase, 0–18 ms), like Twilio does.
 * In relay mode the payload carries that due time and the actual send time
 * (see {@link writeStamp}); in audio mode it carries the
 * given speech.
 *
 * Usage: `load.ts --url http://… --calls N --seconds S` (relay) or
 * `load.ts --url http://… --audio spec.json` (speech; see {@link AudioSpec}).
 * `TWILIO_AUTH_TOKEN` signs the upgrades. Reports JSON lines on stdout:
 * `connected`, `started` (with `t0`), `done` (with counts).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { FRAME_BYTES, FRAME_MS, splitFrames } from "../lib/audio/framing.ts";
import { MULAW_SILENCE } from "../lib/audio/mulaw.ts";
import { makeSid } from "../lib/sim/twilio_sim.ts";
import {
  connectedMessage,
  type MediaTrack,
  startMessage,
  stopMessage,
  twilioMediaMessage,
} from "../lib/twilio/protocol.ts";
import { signRequest } from "../lib/twilio/signature.ts";
import { StreamAccess } from "../lib/server/stream_access.ts";
import { epochMs, Histogram, ownCpuUs, report, sleep, writeStamp } from "./common.ts";

/** Speech mode: one entry per call, µ-law files (raw bytes) per track. */
export interface AudioSpec {
  calls: Array<{
    callSid: string;
    inbound: string;
    outbound: string;
    /** Frames (20 ms) after the shared start at which this call's audio begins. */
    startFrame?: number;
  }>;
}

interface Call {
  callSid: string;
  streamSid: string;
  socket: WebSocket;
  sequence: number;
  startFrame: number;
  /** Speech mode: the frames of each track, and how many the longer track has. */
  frames?: Record<MediaTrack, Uint8Array[]>;
  length: number;
  closedByServer?: string;
}

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    calls: { type: "string" },
    seconds: { type: "string" },
    audio: { type: "string" },
  },
});
if (!values.url) throw new Error("load.ts: --url is required");
const token = Deno.env.get("TWILIO_AUTH_TOKEN");
const accountSid = makeSid("AC");
const base = values.url.replace(/^http/, "ws").replace(/\/$/, "");
// Each call's stream opens only at its own URL, as in the TwiML our server gives Twilio.
const access = StreamAccess.fromSecrets({
  streamSecret: Deno.env.get("STREAM_SECRET"),
  authToken: token,
});

const spec: AudioSpec | null = values.audio
  ? JSON.parse(Deno.readTextFileSync(values.audio))
  : null;
const callCount = spec ? spec.calls.length : Number(values.calls ?? "1");
const silence = new Uint8Array(FRAME_BYTES).fill(MULAW_SILENCE);

async function open(index: number): Promise<Call> {
  const entry = spec?.calls[index];
  const callSid = entry?.callSid ?? makeSid("CA");
  const streamUrl = base + access.path(callSid, "transcription");
  const headers: Record<string, string> = {};
  if (token) headers["X-Twilio-Signature"] = signRequest(token, streamUrl, {});
  const socket = new WebSocket(streamUrl, { headers });
  await new Promise<void>((resolve, reject) => {
    socket.onopen = () => resolve();
    socket.onerror = () => reject(new Error(`load: could not open ${streamUrl} (call ${index})`));
  });
  const call: Call = {
    callSid,
    streamSid: makeSid("MZ"),
    socket,
    sequence: 1,
    startFrame: entry?.startFrame ?? 0,
    length: Infinity,
  };
  if (entry) {
    const frames = {
      inbound: splitFrames(Deno.readFileSync(entry.inbound)),
      outbound: splitFrames(Deno.readFileSync(entry.outbound)),
    };
    call.frames = frames;
    call.length = Math.max(frames.inbound.length, frames.outbound.length);
  }
  socket.onclose = (e) => (call.closedByServer ??= `${e.code} ${e.reason}`);
  socket.send(connectedMessage());
  socket.send(startMessage({
    streamSid: call.streamSid,
    accountSid,
    callSid: call.callSid,
    sequenceNumber: 1,
    tracks: ["inbound", "outbound"],
    customParameters: { direction: "outbound", from: "+15005550006", to: "+15551234567" },
  }));
  return call;
}

// Connect in batches: a burst of hundreds of upgrades at once is not what we measure.
const calls: Call[] = [];
for (let i = 0; i < callCount; i += 50) {
  const batch = [];
  for (let j = i; j < Math.min(callCount, i + 50); j++) batch.push(open(j));
  calls.push(...await Promise.all(batch));
}
report({ event: "connected", calls: calls.length });
await sleep(200);

const ticks = spec
  ? Math.max(...calls.map((c) => c.startFrame + c.length))
  : Math.round(Number(values.seconds ?? "5") * 1000 / FRAME_MS);
const t0 = epochMs() + 50;

const lag = new Histogram();
const cpuStart = ownCpuUs();
let framesSent = 0;
let framesSkipped = 0;
const stamped = new Uint8Array(FRAME_BYTES).fill(MULAW_SILENCE);
const tracks: MediaTrack[] = ["inbound", "outbound"];
/**
 * Real calls are not in phase: call c sends PHASES ms-spaced slots later than
 * call c-1 (mod PHASES). Sending every call's frame at the same instant would
 * measure our load generator's bursts, not the server.
 */
const PHASES = 10;
const PHASE_MS = FRAME_MS / PHASES;
const groups = Array.from({ length: PHASES }, (_, g) => calls.filter((_, c) => c % PHASES === g));
const slots = ticks * PHASES;
// Call c's audio time a is due at t0 + startFrame × 20 + a + (c % phases) × phaseMs.
report({ event: "started", t0, ticks, phases: PHASES, phaseMs: PHASE_MS });
/** When slot s (frame s / PHASES of phase group s % PHASES) is due. */
const slotDue = (s: number) =>
  t0 + (Math.floor(s / PHASES) + 1) * FRAME_MS + (s % PHASES) * PHASE_MS;

function sendSlot(s: number): void {
  const i = Math.floor(s / PHASES);
  const group = groups[s % PHASES];
  if (group.length === 0) return;
  const due = slotDue(s);
  const sent = epochMs();
  lag.record(sent - due);
  if (!spec) writeStamp(stamped, due, sent);
  for (const call of group) {
    // Frame j of this call's own stream (speech calls start at staggered frames).
    const j = i - call.startFrame;
    if (j < 0 || j >= call.length) continue;
    if (call.socket.readyState !== WebSocket.OPEN) {
      framesSkipped += 2;
      continue;
    }
    for (const track of tracks) {
      call.socket.send(twilioMediaMessage({
        streamSid: call.streamSid,
        sequenceNumber: ++call.sequence,
        track,
        chunk: j + 1,
        timestamp: j * FRAME_MS,
        payload: spec ? call.frames![track][j] ?? silence : stamped,
      }));
      framesSent++;
    }
  }
}

const finished = Promise.withResolvers<void>();
let next = 0;
function tick(): void {
  const now = epochMs();
  // Catch up on every slot that is due (a late timer must not lose frames).
  while (next < slots && slotDue(next) <= now) sendSlot(next++);
  if (next >= slots) {
    finished.resolve();
    return;
  }
  setTimeout(tick, Math.max(0, slotDue(next) - epochMs()));
}
setTimeout(tick, Math.max(0, slotDue(0) - epochMs()));
await finished.promise;
const cpuUs = ownCpuUs() - cpuStart;

for (const call of calls) {
  if (call.socket.readyState !== WebSocket.OPEN) continue;
  call.socket.send(stopMessage({
    streamSid: call.streamSid,
    sequenceNumber: ++call.sequence,
    accountSid,
    callSid: call.callSid,
  }));
}
// The server closes each socket once it has read `stop`; wait for that (bounded).
const deadline = Date.now() + 10_000;
while (calls.some((c) => c.socket.readyState !== WebSocket.CLOSED) && Date.now() < deadline) {
  await sleep(50);
}
const closedAbnormally =
  calls.filter((c) => c.closedByServer && !c.closedByServer.startsWith("1000"))
    .length;
report({
  event: "done",
  calls: calls.length,
  ticks,
  framesSent,
  framesSkipped,
  closedAbnormally,
  cpuUsPerFrame: framesSent ? cpuUs / framesSent : 0,
  lagP50Ms: lag.quantile(0.5),
  lagP99Ms: lag.quantile(0.99),
  lagMaxMs: lag.max,
});
for (const call of calls) if (call.socket.readyState === WebSocket.OPEN) call.socket.close();
Deno.exit(0);
