/**
 * Real calls end to end, offline: `make_call.ts` runs as a subprocess with
 * the real `twilio` client pointed at the simulated REST API
 * (`TWILIO_API_URL`); the simulator runs the call against our server like
 * Twilio (signed webhooks, status callbacks, both Media Streams) with real
 * speech on both sides, decoded by the local engine. Inbound calls come in
 * through `/twiml/inbound`.
 */
import assert from "node:assert/strict";
import type { CallEvent } from "../lib/call/events.ts";
import { loadConfig } from "../app/config.ts";
import { memoryLogger } from "../lib/log.ts";
import { startServer } from "../app/start_server.ts";
import { startTwilioRestSim } from "./fakes/twilio_rest.ts";
import { makeSid, postSigned } from "../lib/sim/twilio_sim.ts";
import { parseStreamTwiml } from "../lib/twilio/twiml.ts";
import { wordErrorRate } from "../lib/metrics/wer.ts";
import {
  audioSet,
  conversation,
  finals,
  sharedEngine,
  tempWav,
  testServer,
  toMulaw,
} from "./helpers.ts";
import { makeCall } from "./call_command.ts";
import { NullEngine } from "../lib/transcribe/null_engine.ts";
import { freePort } from "./reliability/fixtures.ts";

const TO = "+15551234567";
const FROM = "+15005550006";

/** Credentials shaped like Twilio's: AC + 32 hex, and a 32-hex token. */
function account() {
  return { accountSid: makeSid("AC"), authToken: makeSid("").slice(0, 32) };
}

const text = (ts: { text: string }[]) => ts.map((t) => t.text).join(" ");

async function until(condition: () => boolean, what: string, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

Deno.test("deno task call <to>: a real-path outbound call, transcribed on both tracks", async () => {
  const callee = await conversation((await audioSet("librispeech-samples")).slice(0, 3));
  const caller = await conversation((await audioSet("librivox-sense-and-sensibility")).slice(0, 3));
  const { accountSid, authToken } = account();
  const server = await testServer({ audioInput: await tempWav(caller.samples), token: authToken });
  const sim = await startTwilioRestSim({
    accountSid,
    authToken,
    calleeAudio: toMulaw(callee.samples),
    fast: true,
    // A few seconds of tail: the call stays answered long enough for make_call's poll to see it.
    tailMs: Math.max(5000, caller.durationMs - callee.durationMs + 1000),
    ringMs: 100,
  });
  try {
    const output = await makeCall([TO, "--server", server.url], {
      TWILIO_ACCOUNT_SID: accountSid,
      TWILIO_AUTH_TOKEN: authToken,
      TWILIO_PHONE_NUMBER: FROM,
      TWILIO_API_URL: sim.url,
    }).output();
    const stdout = new TextDecoder().decode(output.stdout);
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, stderr);
    const callSid = stdout.match(/Call SID: (CA[0-9a-f]{32})/)?.[1];
    assert.ok(callSid, stdout);
    assert.match(stderr, /answered/);
    assert.match(stderr, /completed after \d+ s/);
    assert.ok(!stderr.includes(authToken), "the auth token is never printed");

    const call = sim.calls.get(callSid)!;
    await call.done;
    await server.registry.whenEnded(callSid);
    // The real client sent what Twilio needs: the TwiML webhook (which knows the Call SID its
    // stream URLs are made for) and every progress event.
    const create = sim.requests.find((r) => r.method === "POST" && r.path.endsWith("/Calls.json"))!;
    assert.equal(create.params.To, TO);
    assert.equal(create.params.From, FROM);
    assert.deepEqual(create.params.StatusCallbackEvent, [
      "initiated",
      "ringing",
      "answered",
      "completed",
    ]);
    assert.equal(create.params.Url, `${server.url}/twiml/outbound`);
    assert.equal(create.params.Twiml, undefined);
    // What that webhook answers: the call's own stream URLs.
    const answered = await postSigned(`${server.url}/twiml/outbound`, {
      CallSid: callSid,
      From: FROM,
      To: TO,
    }, authToken);
    const twiml = parseStreamTwiml(await answered.text());
    assert.equal(twiml.start?.track, "both_tracks");
    assert.equal(twiml.start?.statusCallback, `${server.url}/twilio/stream-status`);
    assert.match(
      twiml.connect!.url,
      new RegExp(`^${server.url.replace("http", "ws")}/audio/${callSid}/[0-9a-z]+\\.[\\w-]{43}$`),
    );

    // Status callbacks arrived in order, signed (our server accepted each).
    assert.deepEqual(
      call.statusCallbacks.map((c) => [c.event, c.status]),
      [["initiated", 204], ["ringing", 204], ["answered", 204], ["completed", 204]],
    );
    const progress = server.statuses.get(callSid)!;
    assert.deepEqual(progress.events, ["initiated", "ringing", "answered", "completed"]);
    assert.ok(progress.durationSeconds! >= Math.floor(callee.durationMs / 1000));
    assert.deepEqual(progress.streamEvents.map((e) => e.event), [
      "stream-started",
      "stream-stopped",
    ]);
    assert.ok(server.log.lines.some((l) => l.includes(`call ${callSid} ringing`)));

    const started = server.events.find((e) =>
      e.type === "call-started" && e.call.callSid === callSid
    );
    assert.equal(started?.call.direction, "outbound");
    assert.equal(started?.call.to, TO);
    assert.ok(server.log.lines.some((l) => l.includes(`${callSid} started (outbound call`)));
    const inbound = text(finals(server.events, callSid, "inbound"));
    const outbound = text(finals(server.events, callSid, "outbound"));
    assert.ok(wordErrorRate(callee.text, inbound).wer < 0.25, `inbound: ${inbound}`);
    assert.ok(wordErrorRate(caller.text, outbound).wer < 0.3, `outbound: ${outbound}`);
  } finally {
    await sim.close();
    await server.shutdown();
  }
});

Deno.test("Ctrl-C in deno task call hangs up through the REST API", async () => {
  const callee = await conversation((await audioSet("librispeech-samples")).slice(0, 1));
  const { accountSid, authToken } = account();
  const server = await testServer({ token: authToken });
  // Real time and a long tail: the call would last a minute without the hang-up.
  const sim = await startTwilioRestSim({
    accountSid,
    authToken,
    calleeAudio: toMulaw(callee.samples),
    tailMs: 60_000,
    ringMs: 100,
  });
  try {
    const child = makeCall([TO, "--server", server.url], {
      TWILIO_ACCOUNT_SID: accountSid,
      TWILIO_AUTH_TOKEN: authToken,
      TWILIO_PHONE_NUMBER: FROM,
      TWILIO_API_URL: sim.url,
    }).spawn();
    await until(
      () =>
        [...sim.calls.values()].some((c) => c.status === "in-progress") &&
        server.registry.activeCalls === 1,
      "the call to be answered and streaming",
    );
    // make_call has seen it answered once its poll fetched the call.
    await until(
      () => sim.requests.some((r) => r.method === "GET" && /Calls\/CA\w+\.json$/.test(r.path)),
      "make_call to follow the call",
    );
    child.kill("SIGINT");
    const output = await child.output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, stderr);
    assert.match(stderr, /hanging up/);
    const [call] = sim.calls.values();
    const result = await call.done;
    assert.ok(call.hungUpByApi);
    assert.ok(result?.hungUp, "the streams stopped before the audio ran out");
    const update = sim.requests.find((r) =>
      r.method === "POST" && r.path.endsWith(`${call.sid}.json`)
    );
    assert.equal(update?.params.Status, "completed");
    assert.equal(call.statusCallbacks.at(-1)?.event, "completed");
    await server.registry.whenEnded(call.sid);
    assert.equal(server.registry.activeCalls, 0);
  } finally {
    await sim.close();
    await server.shutdown();
  }
});

Deno.test("an inbound call through /twiml/inbound is transcribed on both tracks, marked inbound", async () => {
  const callee = await conversation((await audioSet("asterisk-allison-8k")).slice(0, 3));
  const caller = await conversation((await audioSet("librivox-sense-and-sensibility")).slice(3));
  const { accountSid, authToken } = account();
  const server = await testServer({ audioInput: await tempWav(caller.samples), token: authToken });
  const sim = await startTwilioRestSim({
    accountSid,
    authToken,
    calleeAudio: toMulaw(callee.samples),
    fast: true,
    tailMs: Math.max(1000, caller.durationMs - callee.durationMs + 1000),
  });
  try {
    const call = sim.inbound({ webhookUrl: `${server.url}/twiml/inbound`, from: TO, to: FROM });
    const result = await call.done;
    assert.ok(result, call.error ?? "the call failed");
    await server.registry.whenEnded(call.sid);
    const started = server.events.find((e) => e.type === "call-started");
    assert.equal(started?.call.direction, "inbound");
    assert.equal(started?.call.from, TO);
    assert.ok(server.log.lines.some((l) => l.includes(`${call.sid} started (inbound call`)));
    const inbound = text(finals(server.events, call.sid, "inbound"));
    const outbound = text(finals(server.events, call.sid, "outbound"));
    // Each track is one or a few sentences, so one misheard word moves WER by 4-10 points: the
    // bounds tell the right audio on the right track (a swapped or silent track scores ~1.0);
    // accuracy itself is measured in call_e2e_test.ts and the benchmarks.
    assert.ok(wordErrorRate(callee.text, inbound).wer < 0.4, `inbound: ${inbound}`);
    assert.ok(wordErrorRate(caller.text, outbound).wer < 0.4, `outbound: ${outbound}`);
    assert.deepEqual(result.streamCallbacks, [
      { event: "stream-started", status: 204 },
      { event: "stream-stopped", status: 204 },
    ]);
  } finally {
    await sim.close();
    await server.shutdown();
  }
});

Deno.test("INBOUND_GREETING and INBOUND_FORWARD_TO: <Say>, then <Dial>, still transcribing both tracks", async () => {
  const { accountSid, authToken } = account();
  const config = loadConfig({
    HOST: "127.0.0.1",
    PORT: "0",
    TWILIO_AUTH_TOKEN: authToken,
    INBOUND_GREETING: "This call is transcribed & recorded.",
    INBOUND_FORWARD_TO: "+15557654321",
    DATA_DIR: await Deno.makeTempDir({ prefix: "callscribe-test-" }),
  });
  const server = await startServer(config, await sharedEngine(), memoryLogger());
  const events: CallEvent[] = [];
  server.registry.pipeline.publish((e) => events.push(e));
  const callee = await conversation((await audioSet("librispeech-samples")).slice(0, 1));
  const sim = await startTwilioRestSim({
    accountSid,
    authToken,
    calleeAudio: toMulaw(callee.samples),
    fast: true,
  });
  try {
    const url = `${server.url}/twiml/inbound`;
    const params = { CallSid: makeSid("CA"), From: TO, To: FROM, Direction: "inbound" };
    const response = await postSigned(url, params, authToken);
    const xml = await response.text();
    assert.equal(response.status, 200);
    assert.match(xml, /<Say>This call is transcribed &amp; recorded\.<\/Say>/);
    assert.ok(xml.indexOf("<Start>") < xml.indexOf("<Say>"), "the greeting is transcribed too");
    const twiml = parseStreamTwiml(xml);
    assert.equal(twiml.dial, "+15557654321");
    assert.equal(twiml.connect, undefined, "forwarding replaces the laptop leg");
    assert.equal(twiml.start?.track, "both_tracks");

    const call = sim.inbound({ webhookUrl: url, from: TO, to: FROM });
    const result = await call.done;
    assert.equal(result?.dialed, "+15557654321");
    await server.registry.whenEnded(call.sid);
    const heard = text(finals(events, call.sid, "inbound"));
    assert.ok(wordErrorRate(callee.text, heard).wer < 0.3, heard);
  } finally {
    await sim.close();
    await server.shutdown();
  }
});

Deno.test("INBOUND_FORWARD_TO must be E.164", () => {
  assert.throws(
    () => loadConfig({ INBOUND_FORWARD_TO: "555-1234" }),
    /INBOUND_FORWARD_TO must be a phone number in E\.164 form/,
  );
});

/** The REST simulator with a callee who says nothing (1 s), answered at once, fast. */
function silentCalleeSim(accountSid: string, authToken: string) {
  return startTwilioRestSim({
    accountSid,
    authToken,
    calleeAudio: toMulaw(new Float32Array(8000)),
    fast: true,
    tailMs: 3000,
    ringMs: 100,
  });
}

Deno.test("deno task call through a tunnel to a token-guarded server: it sends the token it shares with the server", async () => {
  const { accountSid, authToken } = account();
  const dataDir = await Deno.makeTempDir({ prefix: "callscribe-test-" });
  // NGROK_AUTHTOKEN: reachable from outside, so the server generates its token in DATA_DIR.
  const server = await testServer({
    token: authToken,
    dataDir,
    engine: new NullEngine(),
    env: { NGROK_AUTHTOKEN: "ngrok-SECRET-7e2a4c6b8d0f" },
  });
  const port = new URL(server.url).port;
  // What `deno task serve` does once its tunnel is open (here a name the simulator reaches).
  server.usePublicUrl(`http://localhost:${port}`);
  const sim = await silentCalleeSim(accountSid, authToken);
  const env = {
    TWILIO_ACCOUNT_SID: accountSid,
    TWILIO_AUTH_TOKEN: authToken,
    TWILIO_PHONE_NUMBER: FROM,
    TWILIO_API_URL: sim.url,
    PORT: port,
  };
  try {
    const stranger = await fetch(`${server.url}/api/public-url`);
    await stranger.body?.cancel();
    assert.equal(stranger.status, 401, "the API needs the token");
    // Same machine, same DATA_DIR: the generated token is read from its file.
    const output = await makeCall([TO], { ...env, DATA_DIR: dataDir }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, stderr);
    const callSid = new TextDecoder().decode(output.stdout).match(/Call SID: (CA[0-9a-f]{32})/)
      ?.[1];
    assert.ok(callSid);
    await server.registry.whenEnded(callSid);
    assert.ok(server.events.some((e) => e.type === "call-started" && e.call.callSid === callSid));
    const token = (await Deno.readTextFile(`${dataDir}/dashboard-token`)).trim();
    assert.ok(!stderr.includes(token), "the token is never printed");

    // Without the token (another DATA_DIR, no DASHBOARD_TOKEN): a clear error, no call placed.
    const calls = sim.calls.size;
    const refused = await makeCall([TO], {
      ...env,
      DATA_DIR: await Deno.makeTempDir({ prefix: "callscribe-test-" }),
    }).output();
    const refusedErr = new TextDecoder().decode(refused.stderr);
    assert.equal(refused.code, 2, refusedErr);
    assert.match(refusedErr, /needs its dashboard token .*DASHBOARD_TOKEN/);
    assert.equal(sim.calls.size, calls);

    // DASHBOARD_TOKEN in .env (the same as the server's) works from anywhere.
    const withEnv = await makeCall([TO], {
      ...env,
      DATA_DIR: await Deno.makeTempDir({ prefix: "callscribe-test-" }),
      DASHBOARD_TOKEN: token,
    }).output();
    assert.equal(withEnv.code, 0, new TextDecoder().decode(withEnv.stderr));
  } finally {
    await sim.close();
    await server.shutdown();
  }
});

Deno.test("deno task call with PUBLIC_URL to a token-guarded server: the call's webhooks and streams need no dashboard token", async () => {
  const { accountSid, authToken } = account();
  const port = String(freePort());
  const publicUrl = `http://localhost:${port}`;
  const server = await testServer({
    token: authToken,
    engine: new NullEngine(),
    dashboardToken: "dash-test-0f1e2d3c4b5a69788796",
    env: { PORT: port, PUBLIC_URL: publicUrl },
  });
  const sim = await silentCalleeSim(accountSid, authToken);
  try {
    const output = await makeCall([TO], {
      TWILIO_ACCOUNT_SID: accountSid,
      TWILIO_AUTH_TOKEN: authToken,
      TWILIO_PHONE_NUMBER: FROM,
      TWILIO_API_URL: sim.url,
      PUBLIC_URL: publicUrl,
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, stderr);
    const callSid = new TextDecoder().decode(output.stdout).match(/Call SID: (CA[0-9a-f]{32})/)
      ?.[1];
    assert.ok(callSid);
    await server.registry.whenEnded(callSid);
    assert.ok(server.events.some((e) => e.type === "call-started" && e.call.callSid === callSid));
  } finally {
    await sim.close();
    await server.shutdown();
  }
});
