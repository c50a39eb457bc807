/**
 * Peers that are gone without saying so: a stream that goes silent without
 * `stop` (its call would stay open forever) and a peer that stops reading what
 * we send on the audio leg (what we queue for it would grow forever). Both are
 * closed with a reason and their calls end; the silent stream's words are
 * kept, and a healthy call beside it is untouched.
 */
import assert from "node:assert/strict";
import { makeSid } from "../../lib/sim/twilio_sim.ts";
import { connectedMessage, twilioMediaMessage } from "../../lib/twilio/protocol.ts";
import { signRequest } from "../../lib/twilio/signature.ts";
import { wordErrorRate } from "../../lib/metrics/wer.ts";
import {
  audioSet,
  callStreamUrl,
  callTestServer,
  conversation,
  finals,
  tempWav,
  testServer,
  toMulaw,
} from "../helpers.ts";
import { closed, finalsOf, openSigned, report, sleep, start } from "./fixtures.ts";

const frames = (mulaw: Uint8Array, streamSid: string) =>
  Array.from({ length: Math.floor(mulaw.length / 160) }, (_, i) =>
    twilioMediaMessage({
      streamSid,
      sequenceNumber: i + 2,
      track: "inbound",
      chunk: i + 1,
      timestamp: i * 20,
      payload: mulaw.subarray(i * 160, i * 160 + 160),
    }));

Deno.test("a stream that goes silent without stop is closed, its call ended with its words kept", async () => {
  const speech = await conversation((await audioSet("librispeech-samples")).slice(0, 1));
  const healthy = await conversation((await audioSet("librispeech-samples")).slice(1, 2));
  const server = await testServer({ streamIdleSeconds: 1 });
  try {
    const callSid = makeSid("CA");
    const streamSid = makeSid("MZ");
    const ended = server.registry.whenEnded(callSid);
    const ws = await openSigned(
      `${server.url.replace("http", "ws")}/stream`,
      server.token,
      callSid,
    );
    const result = closed(ws, 15_000);
    ws.send(connectedMessage());
    ws.send(start(streamSid, callSid, ["inbound"]));
    for (const frame of frames(toMulaw(speech.samples), streamSid)) ws.send(frame);
    const silentAt = performance.now();
    // ...and nothing more: the socket stays open. A healthy call runs meanwhile.
    const other = await callTestServer(server, {
      calleeAudio: toMulaw(healthy.samples),
      fast: true,
    });
    const { code, reason } = await result;
    const closedAfterMs = performance.now() - silentAt;
    await ended;
    assert.equal(code, 1008);
    assert.match(reason, /no message for 1 s/);
    const heard = finals(server.events, callSid, "inbound").map((t) => t.text).join(" ");
    assert.ok(wordErrorRate(speech.text, heard).wer < 0.35, `the words were lost: "${heard}"`);
    const otherText = finals(server.events, other.callSid, "inbound").map((t) => t.text).join(" ");
    assert.ok(wordErrorRate(healthy.text, otherText).wer < 0.35, `healthy call: "${otherText}"`);
    assert.equal(server.registry.activeCalls, 0);
    report("silent stream", {
      idleTimeoutMs: 1000,
      closedAfterMs: Math.round(closedAfterMs),
      finalsKept: finalsOf(server.events, callSid).length,
      healthyFinals: finalsOf(server.events, other.callSid).length,
    });
  } finally {
    await server.shutdown();
  }
});

/** A client-to-server text frame (clients must mask, RFC 6455 5.3). */
function maskedTextFrame(text: string): Uint8Array {
  const payload = new TextEncoder().encode(text);
  const header = payload.length < 126
    ? [0x81, 0x80 | payload.length]
    : [0x81, 0x80 | 126, payload.length >> 8, payload.length & 0xff];
  const mask = crypto.getRandomValues(new Uint8Array(4));
  const frame = new Uint8Array(header.length + 4 + payload.length);
  frame.set(header);
  frame.set(mask, header.length);
  for (let i = 0; i < payload.length; i++) {
    frame[header.length + 4 + i] = payload[i] ^ mask[i & 3];
  }
  return frame;
}

Deno.test("a peer that stops reading the audio leg is dropped and its call ended", async () => {
  // Fifteen minutes of microphone "audio", sent ahead: far more than the kernel's socket buffers.
  const tone = new Float32Array(8000 * 900).map((_, i) => 0.1 * Math.sin(i / 3));
  const server = await testServer({ audioInput: await tempWav(tone), streamIdleSeconds: 1 });
  const { hostname, port } = new URL(server.url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  try {
    const callSid = makeSid("CA");
    const streamSid = makeSid("MZ");
    const ended = server.registry.whenEnded(callSid);
    const url = callStreamUrl(server.url, "audio", callSid, server.token);
    await conn.write(new TextEncoder().encode(
      `GET ${
        new URL(url).pathname
      } HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\n` +
        `Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n` +
        `Sec-WebSocket-Key: ${btoa("0123456789abcdef")}\r\n` +
        `X-Twilio-Signature: ${signRequest(server.token, url, {})}\r\n\r\n`,
    ));
    const head = new Uint8Array(4096);
    const n = await conn.read(head);
    assert.match(new TextDecoder().decode(head.subarray(0, n ?? 0)), /^HTTP\/1.1 101/);
    await conn.write(maskedTextFrame(connectedMessage()));
    await conn.write(maskedTextFrame(start(streamSid, callSid, ["inbound"])));
    // Like Twilio, keep sending the caller's audio; unlike Twilio, never read again.
    const silence = new Uint8Array(160).fill(0xff);
    let sent = 0;
    let dropped = false;
    ended.then(() => dropped = true);
    const startedAt = performance.now();
    while (!dropped && performance.now() - startedAt < 30_000) {
      const frame = twilioMediaMessage({
        streamSid,
        sequenceNumber: sent + 3,
        track: "inbound",
        chunk: sent + 1,
        timestamp: sent * 20,
        payload: silence,
      });
      await conn.write(maskedTextFrame(frame));
      sent++;
      await sleep(20);
    }
    assert.ok(dropped, "the server kept the stream of a peer that does not read");
    const line = server.log.lines.find((l) =>
      /audio stream .* closed: the other side stopped/.test(l)
    );
    assert.ok(line, server.log.lines.join("\n"));
    const unsent = Number(/\((\d+) bytes unsent\)/.exec(line)![1]);
    assert.ok(unsent > 1024 * 1024, `dropped with only ${unsent} bytes unsent`);
    assert.equal(server.registry.activeCalls, 0);
    report("peer not reading", {
      droppedAfterMs: Math.round(performance.now() - startedAt),
      unsentBytesAtClose: unsent,
      framesReceivedMeanwhile: sent,
    });
  } finally {
    conn.close();
    await server.shutdown();
  }
});
