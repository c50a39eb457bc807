/**
 * Stream URLs open only their own call (`/stream/<CallSid>/<token>`). Each
 * attack runs against a live call beside it, by someone who has seen earlier
 * traffic (stream URLs and their signatures), and the live call's transcript
 * must come out exactly as in an undisturbed run. Every refusal is logged
 * with its reason and never with the token.
 */
import assert from "node:assert/strict";
import { makeSid, postSigned } from "../lib/sim/twilio_sim.ts";
import { StreamAccess } from "../lib/server/stream_access.ts";
import { signRequest } from "../lib/twilio/signature.ts";
import { parseStreamTwiml } from "../lib/twilio/twiml.ts";
import { audioSet, callTestServer, conversation, testServer, toMulaw } from "./helpers.ts";
import { closed, finalsOf, report, sleep, start } from "./reliability/fixtures.ts";

type Server = Awaited<ReturnType<typeof testServer>>;

/** The stream URLs the server's TwiML gives a call, as Twilio receives them. */
async function streamUrlsOf(server: Server, callSid: string) {
  const response = await postSigned(`${server.url}/twiml/outbound`, {
    CallSid: callSid,
    From: "+15005550006",
    To: "+15551234567",
  }, server.token);
  const twiml = parseStreamTwiml(await response.text());
  return { stream: twiml.start!.url, audio: twiml.connect!.url };
}

/** An upgrade with the signature Twilio would send for `signedUrl`, to `url`. */
async function upgrade(url: string, signedUrl: string, token: string) {
  const ws = new WebSocket(url, {
    headers: { "X-Twilio-Signature": signRequest(token, signedUrl, {}) },
  });
  const opened = await new Promise<boolean>((resolve) => {
    ws.onopen = () => resolve(true);
    ws.onerror = () => resolve(false);
  });
  return { ws, opened };
}

/** Status and body of an upgrade attempt, read raw (a refused WebSocket hides both). */
async function refusal(url: string, signedUrl: string, token: string) {
  const { hostname, port, pathname } = new URL(url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  try {
    await conn.write(new TextEncoder().encode([
      `GET ${pathname} HTTP/1.1`,
      `Host: ${hostname}:${port}`,
      "Upgrade: websocket",
      "Connection: Upgrade",
      "Sec-WebSocket-Version: 13",
      `Sec-WebSocket-Key: ${btoa("0123456789abcdef")}`,
      `X-Twilio-Signature: ${signRequest(token, signedUrl, {})}`,
      "",
      "",
    ].join("\r\n")));
    let text = "";
    const buffer = new Uint8Array(8192);
    // Until the head and the body it announces are in (a refusal is small).
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      text += new TextDecoder().decode(buffer.subarray(0, n));
      const end = text.indexOf("\r\n\r\n");
      const length = Number(/content-length: (\d+)/i.exec(text)?.[1] ?? 0);
      if (end >= 0 && (text.startsWith("HTTP/1.1 101") || text.length >= end + 4 + length)) break;
    }
    const status = Number(text.slice(9, 12));
    return { status, body: text.slice(text.indexOf("\r\n\r\n") + 4) };
  } finally {
    conn.close();
  }
}

/** A fast simulated call whose finals are the transcript compared across runs. */
function victimCall(server: Server, audio: Uint8Array, callSid = makeSid("CA")) {
  const started = new Promise<void>((resolve) => {
    const stop = server.registry.pipeline.publish((e) => {
      if (e.type === "call-started" && e.call.callSid === callSid) {
        stop();
        resolve();
      }
    });
  });
  const result = callTestServer(server, { calleeAudio: audio, callSid, fast: true, tailMs: 1500 });
  return {
    callSid,
    started,
    async transcript() {
      // Both sockets end normally (after the call's own stop), never with an error close.
      for (const how of Object.values((await result).serverClosed)) assert.match(how!, /^1000 /);
      return finalsOf(server.events, callSid);
    },
  };
}

Deno.test("stream security: every attack is refused and the live call beside it is unchanged", async () => {
  const speech = await conversation((await audioSet("librispeech-samples")).slice(0, 2), 700);
  const audio = toMulaw(speech.samples);
  const server = await testServer();
  const counts: Record<string, number> = {};
  try {
    const undisturbed = await victimCall(server, audio).transcript();
    assert.ok(undisturbed.length >= 2, `the call heard ${JSON.stringify(undisturbed)}`);
    // An earlier call, whose URLs and signatures the attacker has seen.
    const earlier = victimCall(server, audio);
    const earlierUrls = await streamUrlsOf(server, earlier.callSid);
    await earlier.transcript();

    /** Runs `attack` while a call is live; its transcript must equal the undisturbed one. */
    const beside = async (name: string, attack: (live: string) => Promise<void>) => {
      const live = victimCall(server, audio);
      await live.started;
      const logged = server.log.lines.length;
      await attack(live.callSid);
      assert.deepEqual(await live.transcript(), undisturbed, `${name}: the live call changed`);
      const lines = server.log.lines.slice(logged);
      counts[name] = lines.filter((l) => l.includes("refused") || l.includes("closed:")).length;
      assert.ok(counts[name] >= 1, `${name}: no refusal was logged`);
      return lines;
    };

    // 1. An earlier call's URL and signature, replayed: as they are, and pointed at the live call.
    await beside("replayed URL", async (live) => {
      const asIs = await refusal(earlierUrls.stream, earlierUrls.stream, server.token);
      assert.equal(asIs.status, 403);
      assert.match(asIs.body, /the call has ended/);
      const moved = earlierUrls.stream.replace(earlier.callSid, live);
      // The captured signature is for the earlier URL; a valid one for the moved URL does not
      // help either: the token is the earlier call's.
      assert.equal((await refusal(moved, earlierUrls.stream, server.token)).status, 403);
      const signedMoved = await refusal(moved, moved, server.token);
      assert.equal(signedMoved.status, 403);
      assert.match(signedMoved.body, /not valid for the transcription stream of CA/);
    });

    // 2. A valid URL of another call whose start names the live call.
    await beside("start naming another CallSid", async (live) => {
      const own = makeSid("CA");
      const urls = await streamUrlsOf(server, own);
      const { ws, opened } = await upgrade(urls.stream, urls.stream, server.token);
      assert.ok(opened);
      const done = closed(ws);
      ws.send(start(makeSid("MZ"), live));
      const result = await done;
      assert.equal(result.code, 1008);
      assert.match(result.reason, new RegExp(`start names call ${live}, but this stream URL`));
      assert.equal(server.registry.hasEnded(own), false, "the other call was never started");
    });

    // 3. A second stream for the same call and kind (its own URL and signature, replayed).
    await beside("second stream, same call and kind", async (live) => {
      const urls = await streamUrlsOf(server, live);
      for (const url of [urls.stream]) {
        const second = await refusal(url, url, server.token);
        assert.equal(second.status, 409);
        assert.match(second.body, /a transcription stream of this call is already open/);
      }
    });

    // 4. A stream for an ended call, with a fresh valid token.
    await beside("stream for an ended call", async () => {
      const urls = await streamUrlsOf(server, earlier.callSid);
      const ended = await refusal(urls.stream, urls.stream, server.token);
      assert.equal(ended.status, 403);
      assert.match(ended.body, /the call has ended/);
    });

    // 5. A wrong token, and an expired one.
    await beside("wrong or expired token", async (live) => {
      const urls = await streamUrlsOf(server, live);
      const tampered = urls.stream.replace(/.$/, (c) => (c === "A" ? "B" : "A"));
      const wrong = await refusal(tampered, tampered, server.token);
      assert.equal(wrong.status, 403);
      assert.match(wrong.body, /not valid/);
      const expiredPath = StreamAccess.fromSecrets({ authToken: server.token }, { ttlMs: -1 })
        .path(live, "transcription");
      const expiredUrl = server.url.replace("http", "ws") + expiredPath;
      const expired = await refusal(expiredUrl, expiredUrl, server.token);
      assert.equal(expired.status, 403);
      assert.match(expired.body, /expired/);
      const garbage = `${server.url.replace("http", "ws")}/stream/${live}/not-a-token`;
      assert.equal((await refusal(garbage, garbage, server.token)).status, 403);
    });

    // 6. A forged stop: the live call's stream URL is taken; a stop on another stream of the
    // attacker's own ends only that stream's call.
    await beside("forged stop", async (live) => {
      const urls = await streamUrlsOf(server, live);
      assert.equal((await refusal(urls.audio, urls.audio, server.token)).status, 409);
      const own = makeSid("CA");
      const ownUrls = await streamUrlsOf(server, own);
      const { ws, opened } = await upgrade(ownUrls.stream, ownUrls.stream, server.token);
      assert.ok(opened);
      const done = closed(ws);
      ws.send(start("MZattacker", own));
      await sleep(50);
      ws.send(JSON.stringify({
        event: "stop",
        sequenceNumber: "2",
        streamSid: "MZattacker",
        stop: { accountSid: "AC0", callSid: live },
      }));
      await done;
      await server.registry.whenEnded(own);
    });

    // The tokens are capabilities: none was ever logged.
    const tokens = server.log.lines.join("\n").match(/[0-9a-z]{6,12}\.[\w-]{43}/g);
    assert.equal(tokens, null, `a stream token was logged: ${tokens}`);
    report("stream security", { undisturbedFinals: undisturbed.length, ...counts });
  } finally {
    await server.shutdown();
  }
});
