/**
 * The server's routes over real HTTP and WebSockets: TwiML, signature
 * checks, and what happens to streams that break the protocol.
 */
import assert from "node:assert/strict";
import { splitFrames } from "../lib/audio/framing.ts";
import { makeSid } from "../lib/sim/twilio_sim.ts";
import {
  connectedMessage,
  startMessage,
  stopMessage,
  twilioMediaMessage,
} from "../lib/twilio/protocol.ts";
import { signRequest } from "../lib/twilio/signature.ts";
import { parseStreamTwiml } from "../lib/twilio/twiml.ts";
import {
  audioSet,
  callStreamUrl,
  conversation,
  finals,
  openSigned,
  testServer,
  toMulaw,
} from "./helpers.ts";

const form = {
  CallSid: "CA123",
  From: "+15005550006",
  To: "+15551234567",
  Direction: "outbound-api",
};

function postTwiml(url: string, signature?: string, body: BodyInit = new URLSearchParams(form)) {
  const headers: Record<string, string> = { "content-type": "application/x-www-form-urlencoded" };
  if (signature) headers["X-Twilio-Signature"] = signature;
  return fetch(`${url}/twiml/outbound`, { method: "POST", headers, body });
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) =>
    ws.addEventListener("close", (e) => resolve({ code: e.code, reason: e.reason }))
  );
}

const start = (
  streamSid: string,
  callSid: string,
  format = { encoding: "audio/x-mulaw", sampleRate: 8000, channels: 1 },
) => {
  const message = JSON.parse(
    startMessage({
      streamSid,
      callSid,
      accountSid: "AC1",
      sequenceNumber: 1,
      tracks: ["inbound", "outbound"],
      customParameters: {},
    }),
  );
  message.start.mediaFormat = format;
  return JSON.stringify(message);
};

Deno.test("GET /healthz answers", async () => {
  const server = await testServer();
  try {
    const response = await fetch(`${server.url}/healthz`);
    assert.deepEqual(await response.json(), { ok: true, engine: "local", activeCalls: 0 });
  } finally {
    await server.shutdown();
  }
});

Deno.test("POST /twiml/outbound: signed requests get both streams, others 403", async () => {
  const server = await testServer();
  try {
    const url = `${server.url}/twiml/outbound`;
    const good = await postTwiml(server.url, signRequest(server.token, url, form));
    assert.equal(good.status, 200);
    assert.match(good.headers.get("content-type") ?? "", /text\/xml/);
    const twiml = parseStreamTwiml(await good.text());
    const ws = server.url.replace("http", "ws");
    // Each stream URL is the call's own: its SID and a token for that stream.
    const token = "[0-9a-z]+\\.[\\w-]{43}";
    assert.match(twiml.start!.url, new RegExp(`^${ws}/stream/${form.CallSid}/${token}$`));
    assert.equal(twiml.start?.track, "both_tracks");
    assert.equal(twiml.start?.name, "transcription");
    assert.match(twiml.connect!.url, new RegExp(`^${ws}/audio/${form.CallSid}/${token}$`));
    assert.deepEqual(twiml.start?.parameters, {
      direction: "outbound",
      from: form.From,
      to: form.To,
    });

    assert.equal((await postTwiml(server.url)).status, 403, "missing signature");
    assert.equal((await postTwiml(server.url, "Zm9yZ2Vk")).status, 403, "forged signature");
    const otherToken = signRequest("another-token", url, form);
    assert.equal((await postTwiml(server.url, otherToken)).status, 403, "wrong token");
    const otherUrl = signRequest(server.token, "https://example.com/twiml/outbound", form);
    assert.equal((await postTwiml(server.url, otherUrl)).status, 403, "wrong URL");
    const json = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    assert.equal(json.status, 400);
    await json.body?.cancel();
    assert.ok(server.log.lines.some((l) => l.includes("refused POST /twiml/outbound")));
  } finally {
    await server.shutdown();
  }
});

Deno.test("stream upgrades need a valid signature", async () => {
  const server = await testServer();
  try {
    for (const path of ["/stream", "/audio"]) {
      const url = callStreamUrl(
        server.url,
        path === "/stream" ? "transcription" : "audio",
        makeSid("CA"),
        server.token,
      );
      for (
        const signature of [
          undefined,
          signRequest("wrong", url, {}),
          signRequest(server.token, url + "x", {}),
        ]
      ) {
        const ws = new WebSocket(url, {
          headers: signature ? { "X-Twilio-Signature": signature } : {},
        });
        const failed = await new Promise<boolean>((resolve) => {
          ws.onopen = () => resolve(false);
          ws.onerror = () => resolve(true);
        });
        assert.ok(failed, `${path} opened with signature ${signature}`);
        if (!failed) ws.close();
      }
      const plain = await fetch(server.url + path);
      assert.equal(plain.status, 426);
      await plain.body?.cancel();
    }
  } finally {
    await server.shutdown();
  }
});

Deno.test("a stream that breaks the protocol is closed with the reason; the server goes on", async () => {
  const server = await testServer();
  const wsUrl = server.url.replace("http", "ws") + "/stream";
  const cases: Array<[string, string | Uint8Array, number, RegExp]> = [
    ["not JSON", "{oops", 1008, /not JSON/],
    ["binary frame", new Uint8Array([1, 2, 3]), 1003, /binary/],
    [
      "media before start",
      twilioMediaMessage({
        streamSid: "MZ1",
        sequenceNumber: 2,
        track: "inbound",
        chunk: 1,
        timestamp: 0,
        payload: new Uint8Array(160),
      }),
      1008,
      /media before start/,
    ],
    [
      "wrong media format",
      start("MZ2", "CA2", { encoding: "audio/l16", sampleRate: 16000, channels: 1 }),
      1008,
      /audio\/x-mulaw/,
    ],
    [
      "unknown event",
      '{"event":"dance","sequenceNumber":"1","streamSid":"MZ3"}',
      1008,
      /unknown event/,
    ],
    ["too big", "x".repeat(70_000), 1009, /exceeds/],
  ];
  try {
    for (const [name, message, code, reason] of cases) {
      const ws = await openSigned(wsUrl, server.token);
      const done = closed(ws);
      ws.send(connectedMessage());
      ws.send(message);
      const result = await done;
      assert.equal(result.code, code, name);
      assert.match(result.reason, reason, name);
    }
    const health = await fetch(`${server.url}/healthz`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
    assert.ok(
      server.log.lines.some((l) =>
        l.includes("stream") && l.includes("closed: message is not JSON")
      ),
    );
  } finally {
    await server.shutdown();
  }
});

Deno.test("a gap in media timestamps is filled with silence, so word times stay true to the call", async () => {
  const speech = await conversation((await audioSet("librispeech-samples")).slice(3, 4), 500);
  const frames = splitFrames(toMulaw(speech.samples));
  const server = await testServer();
  try {
    const callSid = makeSid("CA");
    const ws = await openSigned(
      server.url.replace("http", "ws") + "/stream",
      server.token,
      callSid,
    );
    const ended = server.registry.whenEnded(callSid);
    ws.send(connectedMessage());
    ws.send(start("MZ9", callSid));
    let sequence = 1;
    // The same utterance twice; the second copy is stamped 5 s later than it is sent.
    const send = (offsetMs: number) =>
      frames.forEach((payload, i) =>
        ws.send(
          twilioMediaMessage({
            streamSid: "MZ9",
            sequenceNumber: ++sequence,
            track: "inbound",
            chunk: sequence,
            timestamp: offsetMs + i * 20,
            payload,
          }),
        )
      );
    send(0);
    const gapStart = frames.length * 20 + 5000;
    send(gapStart);
    ws.send(
      stopMessage({ streamSid: "MZ9", sequenceNumber: ++sequence, accountSid: "AC1", callSid }),
    );
    await ended;
    const heard = finals(server.events, callSid, "inbound");
    assert.equal(heard.length, 2, JSON.stringify(heard));
    assert.ok(heard[0].startMs < 1000);
    // The second utterance starts where its timestamps put it, not where its bytes would.
    const shift = heard[1].startMs - heard[0].startMs;
    assert.ok(Math.abs(shift - gapStart) < 200, `shifted ${shift} ms, expected ${gapStart}`);
    ws.close();
  } finally {
    await server.shutdown();
  }
});
