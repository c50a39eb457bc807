/**
 * Hostile Media Stream input on `/stream` and `/audio` while a healthy call
 * runs beside it: a hand-written list of protocol violations and odd-but-legal
 * input, fast-check generated message sequences, and connection churn. The bad
 * stream is closed with a reason (or the message is taken, where Twilio could
 * send it), the server never fails internally, and the healthy call's
 * transcript is identical to a run without the attack.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { FRAME_BYTES } from "../../lib/audio/framing.ts";
import { makeSid, simulateCall } from "../../lib/sim/twilio_sim.ts";
import {
  connectedMessage,
  dtmfMessage,
  stopMessage,
  twilioMarkMessage,
  twilioMediaMessage,
} from "../../lib/twilio/protocol.ts";
import { signRequest } from "../../lib/twilio/signature.ts";
import { audioSet, conversation, testServer, toMulaw } from "../helpers.ts";
import { closed, finalsOf, openSigned, report, sleep, start } from "./fixtures.ts";

type Server = Awaited<ReturnType<typeof testServer>>;
type Message = string | Uint8Array;

const media = (
  streamSid: string,
  fields: { seq?: number; track?: "inbound" | "outbound"; ts?: number; bytes?: number } = {},
) =>
  twilioMediaMessage({
    streamSid,
    sequenceNumber: fields.seq ?? 2,
    track: fields.track ?? "inbound",
    chunk: 1,
    timestamp: fields.ts ?? 0,
    payload: new Uint8Array(fields.bytes ?? FRAME_BYTES).fill(0xff),
  });

const stop = (streamSid: string, callSid: string) =>
  stopMessage({ streamSid, sequenceNumber: 99, accountSid: "AC1", callSid });

/** A media message with one field replaced by raw JSON text. */
function mediaWith(streamSid: string, field: string, value: unknown): string {
  const message = JSON.parse(media(streamSid));
  const [outer, inner] = field.split(".");
  if (inner) message[outer][inner] = value;
  else message[outer] = value;
  return JSON.stringify(message);
}

interface Case {
  name: string;
  /** Messages after `connected`; `sid` and `call` are fresh per run. */
  messages: (sid: string, call: string) => Message[];
  /** Close code and reason, or "taken": the stream stays open and ends normally on `stop`. */
  expect: { code: number; reason: RegExp } | "taken";
  /** Expectation on `/audio` when it differs. */
  audio?: { code: number; reason: RegExp } | "taken";
}

const CASES: Case[] = [
  { name: "not JSON", messages: () => ["{oops"], expect: { code: 1008, reason: /not JSON/ } },
  { name: "JSON array", messages: () => ["[1,2]"], expect: { code: 1008, reason: /object/ } },
  { name: "JSON null", messages: () => ["null"], expect: { code: 1008, reason: /object/ } },
  {
    name: "binary frame",
    messages: () => [new Uint8Array([1, 2, 3])],
    expect: { code: 1003, reason: /binary/ },
  },
  {
    name: "64 KiB + 1 text frame",
    messages: () => ["x".repeat(64 * 1024 + 1)],
    expect: { code: 1009, reason: /exceeds/ },
  },
  {
    name: "4 MiB text frame",
    messages: () => ["x".repeat(4 * 1024 * 1024)],
    expect: { code: 1009, reason: /exceeds/ },
  },
  {
    name: "1 MiB binary frame",
    messages: () => [new Uint8Array(1024 * 1024)],
    expect: { code: 1003, reason: /binary/ },
  },
  {
    name: "media before start",
    messages: (sid) => [media(sid)],
    expect: { code: 1008, reason: /media before start/ },
  },
  {
    name: "stop before start",
    messages: (sid, call) => [stop(sid, call)],
    expect: { code: 1008, reason: /stop before start/ },
  },
  {
    name: "mark before start",
    messages: (sid) => [twilioMarkMessage({ streamSid: sid, sequenceNumber: 2, name: "m" })],
    expect: { code: 1008, reason: /mark before start/ },
  },
  {
    name: "dtmf before start",
    messages: (sid) => [dtmfMessage({ streamSid: sid, sequenceNumber: 2, digit: "1" })],
    expect: { code: 1008, reason: /dtmf before start/ },
  },
  {
    name: "second start",
    messages: (sid, call) => [start(sid, call), start(sid, call)],
    expect: { code: 1008, reason: /second start/ },
  },
  {
    name: "start without tracks",
    messages: (sid, call) => [start(sid, call, [])],
    expect: { code: 1008, reason: /tracks/ },
  },
  {
    name: "start with an unknown track",
    messages: (sid, call) => [start(sid, call, ["inbound", "both"])],
    expect: { code: 1008, reason: /tracks\[1\]/ },
  },
  {
    name: "invalid base64",
    messages: (sid, call) => [start(sid, call), mediaWith(sid, "media.payload", "!!!not base64")],
    // The laptop leg refuses it too, bridged or not: every payload is decoded as it is read.
    expect: { code: 1008, reason: /base64/ },
  },
  {
    name: "unknown media track",
    messages: (sid, call) => [start(sid, call), mediaWith(sid, "media.track", "both")],
    expect: { code: 1008, reason: /media\.track/ },
  },
  {
    name: "numeric timestamp (not a string)",
    messages: (sid, call) => [start(sid, call), mediaWith(sid, "media.timestamp", 20)],
    expect: { code: 1008, reason: /timestamp/ },
  },
  {
    name: "negative timestamp",
    messages: (sid, call) => [start(sid, call), mediaWith(sid, "media.timestamp", "-20")],
    expect: { code: 1008, reason: /timestamp/ },
  },
  {
    name: "timestamp 31 years ahead",
    messages: (sid, call) => [start(sid, call), media(sid, { ts: 1e12 })],
    expect: { code: 1008, reason: /beyond the longest call/ },
    audio: "taken",
  },
  {
    name: "missing streamSid",
    messages: (sid, call) => [start(sid, call), mediaWith(sid, "streamSid", undefined)],
    expect: { code: 1008, reason: /streamSid/ },
  },
  {
    name: "unknown event",
    messages: (sid) => [JSON.stringify({ event: "dance", sequenceNumber: "1", streamSid: sid })],
    expect: { code: 1008, reason: /unknown event/ },
  },
  {
    name: "our own clear event echoed back",
    messages: (sid, call) => [start(sid, call), JSON.stringify({ event: "clear", streamSid: sid })],
    expect: { code: 1008, reason: /unknown event/ },
  },
  // What Twilio itself could send: taken, not fatal.
  {
    name: "payloads of odd lengths",
    messages: (sid, call) => [
      start(sid, call),
      ...[0, 1, 159, 161, 800, 47_000].map((bytes, i) => media(sid, { seq: i + 2, bytes })),
    ],
    expect: "taken",
  },
  {
    name: "out-of-order sequence numbers",
    messages: (sid, call) => [
      start(sid, call),
      ...[5, 3, 4, 2].map((seq) => media(sid, { seq, ts: (seq - 2) * 20 })),
    ],
    expect: "taken",
  },
  {
    name: "duplicated frames",
    messages: (sid, call) => [start(sid, call), media(sid), media(sid), media(sid, { ts: 20 })],
    expect: "taken",
  },
  {
    name: "timestamp jumps forward 30 s and back to 0",
    messages: (sid, call) => [
      start(sid, call),
      media(sid, { ts: 0 }),
      media(sid, { seq: 3, ts: 30_000 }),
      media(sid, { seq: 4, ts: 0 }),
      media(sid, { seq: 5, ts: 20, track: "outbound" }),
    ],
    expect: "taken",
  },
  {
    name: "marks and dtmf after start",
    messages: (sid, call) => [
      start(sid, call),
      twilioMarkMessage({ streamSid: sid, sequenceNumber: 2, name: "unknown-mark" }),
      dtmfMessage({ streamSid: sid, sequenceNumber: 3, digit: "#" }),
    ],
    expect: "taken",
  },
  {
    name: "large custom parameters",
    messages: (sid, call) => {
      const message = JSON.parse(start(sid, call));
      message.start.customParameters = { from: "x".repeat(30_000), to: "\u0000\u2028" };
      return [JSON.stringify(message)];
    },
    expect: "taken",
  },
];

/** Runs one case on `route`: connected, the messages, then `stop` if still open. */
async function runCase(server: Server, route: string, c: Case) {
  const sid = makeSid("MZ");
  const call = makeSid("CA");
  const ws = await openSigned(server.url.replace("http", "ws") + route, server.token, call);
  const done = closed(ws);
  ws.send(connectedMessage());
  for (const message of c.messages(sid, call)) {
    if (ws.readyState !== WebSocket.OPEN) break;
    ws.send(message);
  }
  const expect = (route === "/audio" ? c.audio : undefined) ?? c.expect;
  // Only a stream that should be taken gets its stop (after a pause, so that "taken" really
  // means taken): a message in flight when the server closes costs the client the close frame.
  if (expect === "taken") {
    await Promise.race([done, sleep(50)]);
    if (ws.readyState === WebSocket.OPEN) ws.send(stop(sid, call));
  }
  const result = await done;
  const label = `${route} ${c.name}: ${result.code} ${result.reason}`;
  if (expect === "taken") {
    assert.equal(result.code, 1000, label);
    assert.match(result.reason, /stop received/, label);
  } else {
    assert.equal(result.code, expect.code, label);
    assert.match(result.reason, expect.reason, label);
  }
}

/** One generated message: mutations of valid ones, junk JSON and junk text. */
function messageArbitrary(sid: string, call: string): fc.Arbitrary<Message> {
  const digits = fc.oneof(
    fc.nat({ max: 100_000 }).map(String),
    fc.constantFrom("", "-1", "1e3", "0x10", "99999999999999999", " 1"),
    fc.integer().map((n) => n as unknown as string),
  );
  const mediaMessage = fc.record({
    event: fc.constantFrom("media", "media", "media", "Media", "mark", "dtmf", "stop", "start"),
    sequenceNumber: digits,
    streamSid: fc.constantFrom(sid, sid, "", "MZother"),
    media: fc.record({
      track: fc.constantFrom("inbound", "outbound", "inbound_track", "", "both"),
      chunk: digits,
      timestamp: digits,
      payload: fc.oneof(
        fc.uint8Array({ maxLength: 400 }).map((b) => b.toBase64()),
        fc.string({ maxLength: 50 }),
        fc.base64String({ maxLength: 40 }),
      ),
    }, { requiredKeys: [] }),
  }, { requiredKeys: ["event"] }).map((m) => JSON.stringify(m));
  return fc.oneof(
    { weight: 6, arbitrary: mediaMessage },
    { weight: 1, arbitrary: fc.json({ maxDepth: 3 }) },
    { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
    { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 64 }) },
    { weight: 1, arbitrary: fc.constant(start(sid, call)) },
  );
}

/** Connections opened and dropped in every way a flaky or hostile client drops them. */
async function churn(server: Server, total: number, concurrency: number) {
  const { hostname, port } = new URL(server.url);
  const wsUrl = server.url.replace("http", "ws");
  const counts = { wsClosed: 0, startThenDrop: 0, tcpOnly: 0, halfUpgrade: 0 };
  let next = 0;
  const worker = async () => {
    while (next < total) {
      const i = next++;
      const route = i % 2 ? "/stream" : "/audio";
      switch (i % 4) {
        case 0: { // Open, then drop at once.
          const ws = await openSigned(wsUrl + route, server.token);
          const done = closed(ws);
          ws.close();
          await done;
          counts.wsClosed++;
          break;
        }
        case 1: { // A call that starts and vanishes without stop.
          const callSid = makeSid("CA");
          const ws = await openSigned(wsUrl + route, server.token, callSid);
          const done = closed(ws);
          const ended = server.registry.whenEnded(callSid);
          ws.send(connectedMessage());
          ws.send(start(makeSid("MZ"), callSid));
          ws.send(media("MZ1"));
          ws.close();
          await done;
          if (route === "/stream") await ended;
          counts.startThenDrop++;
          break;
        }
        case 2: { // TCP connect and reset, no HTTP at all.
          const conn = await Deno.connect({ hostname, port: Number(port) });
          conn.close();
          counts.tcpOnly++;
          break;
        }
        case 3: { // A signed upgrade request, dropped before the response is read.
          const conn = await Deno.connect({ hostname, port: Number(port) });
          const signature = signRequest(server.token, wsUrl + route, {});
          await conn.write(
            new TextEncoder().encode(
              `GET ${route} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\n` +
                `Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n` +
                `Sec-WebSocket-Key: ${btoa("0123456789abcdef")}\r\n` +
                `X-Twilio-Signature: ${signature}\r\n\r\n`,
            ),
          );
          conn.close();
          counts.halfUpgrade++;
          break;
        }
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return counts;
}

/** The healthy call: real speech on the inbound track, fast, through the real simulator. */
async function healthyCall(server: Server, audio: Uint8Array) {
  const callSid = makeSid("CA");
  const ended = server.registry.whenEnded(callSid);
  const result = await simulateCall({
    serverUrl: server.url,
    calleeAudio: audio,
    authToken: server.token,
    callSid,
    fast: true,
    tailMs: 1500,
  });
  await ended;
  // Both sockets end normally (after our stop), never with an error close.
  for (const how of Object.values(result.serverClosed)) assert.match(how!, /^1000 /);
  // The call SID differs per run; the transcript is everything else.
  return finalsOf(server.events, callSid);
}

Deno.test("hostile streams are closed with a reason; a healthy call beside them is unchanged", async () => {
  const speech = await conversation((await audioSet("librispeech-samples")).slice(0, 2), 700);
  const audio = toMulaw(speech.samples);
  const server = await testServer();
  try {
    // The comparison rests on determinism: the same bytes and timestamps give the same finals.
    const alone = await healthyCall(server, audio);
    const again = await healthyCall(server, audio);
    assert.ok(alone.length >= 2, `the healthy call heard ${JSON.stringify(alone)}`);
    assert.deepEqual(again, alone, "the local engine is not deterministic across runs");

    const counts = {
      cases: 0,
      generatedRuns: 0,
      generatedMessages: 0,
      closedByServer: 0,
      closeFrameLost: 0,
    };
    let churned: Awaited<ReturnType<typeof churn>> | null = null;
    const attack = async () => {
      for (const route of ["/stream", "/audio"]) {
        for (const c of CASES) {
          await runCase(server, route, c);
          counts.cases++;
        }
      }
      for (const route of ["/stream", "/audio"]) {
        await fc.assert(
          fc.asyncProperty(
            fc.array(fc.integer({ min: 0, max: 2 ** 31 }), { minLength: 1, maxLength: 1 })
              .chain(([seed]) => {
                const sid = `MZ${seed}`;
                const call = `CA${route.slice(1)}${seed}`;
                return fc.tuple(
                  fc.constant({ sid, call }),
                  fc.boolean(),
                  fc.array(messageArbitrary(sid, call), { maxLength: 12 }),
                );
              }),
            async ([{ sid, call: generated }, withStart, generatedMessages]) => {
              counts.generatedRuns++;
              // Each run is a new call (a stream never opens for one that ended): shrinking
              // replays seeds, so the run number makes the SID the run's own.
              const call = `${generated}n${counts.generatedRuns}`;
              const messages = generatedMessages.map((m) =>
                typeof m === "string" ? m.replaceAll(`"${generated}"`, `"${call}"`) : m
              );
              const logged = server.log.lines.length;
              const ws = await openSigned(
                server.url.replace("http", "ws") + route,
                server.token,
                call,
              );
              const done = closed(ws);
              ws.send(connectedMessage());
              if (withStart) ws.send(start(sid, call));
              for (const message of messages) {
                if (ws.readyState !== WebSocket.OPEN) break;
                ws.send(message);
                counts.generatedMessages++;
              }
              await Promise.race([done, sleep(20)]);
              // After stop the server closes every stream: normally, or naming the fault.
              if (ws.readyState === WebSocket.OPEN) ws.send(stop(sid, call));
              const result = await done;
              assert.notEqual(result.code, -1, "the server left the stream open after stop");
              if (result.code === 0) {
                // The server closed while our next message was in flight: Deno then resets the
                // TCP connection and the close frame is lost on the client side (not a crash; the
                // server logged the reason). Twilio streams all the time, so it sees the same.
                counts.closeFrameLost++;
                // The reset can reach us before the server has logged; give it a moment.
                const reason = /stream .+ closed: \S/;
                for (let i = 0; i < 40; i++) {
                  if (server.log.lines.slice(logged).some((l) => reason.test(l))) break;
                  await sleep(50);
                }
                const lines = server.log.lines.slice(logged).join("\n");
                assert.match(lines, reason, "closed without a logged reason");
              } else if (result.code !== 1000) {
                counts.closedByServer++;
                assert.ok([1003, 1008, 1009].includes(result.code), `closed ${result.code}`);
                assert.ok(result.reason.length > 0, "closed without a reason");
              }
              // Every fault must be a named protocol error, never an internal one.
              assert.doesNotMatch(result.reason, /internal error/);
            },
          ),
          { numRuns: 150 },
        );
      }
      churned = await churn(server, 1000, 16);
    };
    const [underAttack] = await Promise.all([healthyCall(server, audio), attack()]);
    assert.deepEqual(underAttack, alone, "the attack changed the healthy call's transcript");

    // Every call the attack started has ended; the server still answers.
    for (let i = 0; i < 100 && server.registry.activeCalls > 0; i++) await sleep(50);
    assert.equal(server.registry.activeCalls, 0);
    const health = await fetch(`${server.url}/healthz`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
    assert.ok(
      !server.log.lines.some((l) => /internal error|request failed/.test(l)),
      server.log.lines.filter((l) => /internal error|request failed/.test(l)).join("\n"),
    );
    report("hostile streams", {
      handWrittenCases: counts.cases,
      generatedRuns: counts.generatedRuns,
      generatedMessages: counts.generatedMessages,
      generatedClosedByServer: counts.closedByServer,
      generatedCloseFrameLost: counts.closeFrameLost,
      ...churned!,
      healthyFinals: alone.length,
      identical: "yes",
    });
  } finally {
    await server.shutdown();
  }
});
