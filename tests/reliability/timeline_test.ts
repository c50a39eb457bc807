/**
 * Timeline faults on a real stream, seen from the engine's side: exactly
 * which bytes each track's transcriber is fed. Gaps in `media.timestamp` are
 * filled with µ-law silence (0xFF), bunched frames are not gaps, and a
 * track that starts late is placed by its own timestamps. (Word times after
 * a gap, with real decoding: tests/server_test.ts.)
 */
import assert from "node:assert/strict";
import { NullEngine } from "../../lib/transcribe/null_engine.ts";
import type { Track } from "../../lib/transcribe/engine.ts";
import { stopMessage, twilioMediaMessage } from "../../lib/twilio/protocol.ts";
import { testServer } from "../helpers.ts";
import { closed, openSigned, report, start } from "./fixtures.ts";

Deno.test("timeline: gaps become silence, bunched frames do not, a late track keeps its timestamps", async () => {
  const fed: Record<Track, number[]> = { inbound: [], outbound: [] };
  // One value per byte: 0xFF for silence, else the frame's marker byte.
  const engine = new NullEngine({ onWrite: (track, bytes) => fed[track].push(...bytes) });
  const server = await testServer({ engine });
  try {
    const callSid = "CA" + "1".repeat(32);
    const ended = server.registry.whenEnded(callSid);
    const ws = await openSigned(
      server.url.replace("http", "ws") + "/stream",
      server.token,
      callSid,
    );
    const done = closed(ws);
    ws.send(start("MZ1", callSid));
    let seq = 1;
    const frame = (track: Track, ts: number, marker: number) =>
      ws.send(twilioMediaMessage({
        streamSid: "MZ1",
        sequenceNumber: ++seq,
        track,
        chunk: seq,
        timestamp: ts,
        payload: new Uint8Array(160).fill(marker),
      }));
    // Inbound: 10 frames sent in one burst (bunched, contiguous stamps), then a 1 s gap, then 5.
    for (let i = 0; i < 10; i++) frame("inbound", i * 20, 1);
    for (let i = 0; i < 5; i++) frame("inbound", 1200 + i * 20, 2);
    // A jitter of a few ms is not a gap, and a duplicate is taken as it comes.
    frame("inbound", 1305, 3);
    frame("inbound", 1305, 4);
    // Outbound starts 3 s late.
    for (let i = 0; i < 5; i++) frame("outbound", 3000 + i * 20, 5);
    ws.send(stopMessage({ streamSid: "MZ1", sequenceNumber: ++seq, accountSid: "AC1", callSid }));
    await ended;
    await done;

    const runs = (bytes: number[]) => {
      const out: Array<[number, number]> = [];
      for (const b of bytes) {
        if (out.length && out.at(-1)![0] === b) out.at(-1)![1]++;
        else out.push([b, 1]);
      }
      return out;
    };
    assert.deepEqual(runs(fed.inbound), [
      [1, 1600], // bunched: no silence between them
      [0xff, 1000 * 8], // 200 ms of frames, then the gap up to 1200 ms
      [2, 800],
      [3, 160], // 1305 is 5 ms after 1300: jitter, not a gap
      [4, 160],
    ]);
    assert.deepEqual(runs(fed.outbound), [[0xff, 3000 * 8], [5, 800]]);
    report("timeline", {
      inboundBytes: fed.inbound.length,
      gapFilledMs: 1000,
      outboundLateMs: 3000,
    });
  } finally {
    await server.shutdown();
  }
});
