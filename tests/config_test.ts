/**
 * The configuration is read once: every value parsed and checked by
 * `loadConfig`, the result frozen; what a server learns while running (a
 * tunnel's URL) is the server's state, not a change to the configuration.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../app/config.ts";
import { NullEngine } from "../lib/transcribe/null_engine.ts";
import { parseStreamTwiml } from "../lib/twilio/twiml.ts";
import { signRequest } from "../lib/twilio/signature.ts";
import { UserError } from "../lib/user_error.ts";
import { testServer } from "./helpers.ts";

Deno.test("loadConfig: the result is frozen, nested settings too", () => {
  const config = loadConfig({ PORT: "0", SHERPA_WORKERS: "2", PUBLIC_URL: "https://a.example/" });
  assert.equal(config.publicUrl, "https://a.example");
  for (const part of [config, config.local, config.model, config.model.overrides]) {
    assert.ok(Object.isFrozen(part));
  }
  assert.throws(() => {
    (config as { publicUrl?: string }).publicUrl = "https://b.example";
  }, TypeError);
  assert.equal(config.publicUrl, "https://a.example");
});

Deno.test("loadConfig: every value is checked at load, each message names its variable", () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ PORT: "80a" }, /^PORT must be a port number \(0-65535\), got "80a"$/],
    [{ PORT: "70000" }, /^PORT must be a port number/],
    [{ PUBLIC_URL: "ftp://x" }, /^PUBLIC_URL must be a URL such as https:\/\//],
    [{ STREAM_IDLE_TIMEOUT: "0" }, /^STREAM_IDLE_TIMEOUT must be a positive number of seconds/],
    [{ ENDPOINT_RULE1_SILENCE: "-1" }, /^ENDPOINT_RULE1_SILENCE must be a non-negative number/],
    [{ ASSEMBLYAI_MIN_TURN_SILENCE: "1.5" }, /^ASSEMBLYAI_MIN_TURN_SILENCE must be a whole number/],
    [{ AUDIO_INPUT: "no/such/file.wav" }, /^AUDIO_INPUT="no\/such\/file\.wav" is neither/],
    [{ AUDIO_OUTPUT: "out.mp3" }, /^AUDIO_OUTPUT="out\.mp3": a file output must end in \.wav/],
    [{ SHERPA_MODEL: "../elsewhere" }, /^SHERPA_MODEL must be a model name/],
    [{ VAD_SILENCE_MS: "soon" }, /^VAD_SILENCE_MS must be milliseconds such as 200/],
    [{ VAD_THRESHOLD: "1.5" }, /^VAD_THRESHOLD must be a number between 0 and 1 such as 0.5/],
    [{ VAD: "webrtc" }, /^VAD must be energy or silero, got "webrtc" \(VAD_SILENCE_MS=0 turns/],
    [{ DASHBOARD_TOKEN: "secret" }, /^DASHBOARD_TOKEN is too weak \(6 characters.*openssl rand/],
    [{ DASHBOARD_TOKEN: "passwordpassword" }, /^DASHBOARD_TOKEN is too weak.*7 different/],
    [{ DASHBOARD_TOKEN: "my dashboard token" }, /^DASHBOARD_TOKEN is too weak.*spaces/],
    [{ ALLOWED_HOSTS: "https://devbox.local" }, /^ALLOWED_HOSTS must be host names/],
    [{ AEC: "maybe" }, /^AEC must be on \(cancel the speaker's echo, the default\) or off/],
  ];
  for (const [env, message] of cases) {
    assert.throws(
      () => loadConfig(env),
      (e: Error) => e instanceof UserError && message.test(e.message),
    );
  }
  // A weak token is never repeated in the message.
  assert.throws(() => loadConfig({ DASHBOARD_TOKEN: "passwordpassword" }), (e: Error) => {
    assert.ok(!e.message.includes("passwordpassword"));
    return true;
  });
  assert.deepEqual(loadConfig({ ALLOWED_HOSTS: "DevBox.local, 10.0.0.5" }).allowedHosts, [
    "devbox.local",
    "10.0.0.5",
  ]);
});

Deno.test("a tunnel's URL is the server's state: TwiML, /api/public-url and signatures follow it", async () => {
  const server = await testServer({ engine: new NullEngine() });
  try {
    assert.equal(server.publicUrl, server.url);
    server.usePublicUrl("https://tunnel.example");
    assert.equal(server.publicUrl, "https://tunnel.example");
    const asked = await fetch(`${server.url}/api/public-url`);
    assert.deepEqual(await asked.json(), { publicUrl: "https://tunnel.example" });

    // Twilio signs the URL it requested: the tunnel's, not the local one.
    const params = { CallSid: "CA" + "0".repeat(32), From: "+15550001111", To: "+15550002222" };
    const post = (signedUrl: string) =>
      fetch(`${server.url}/twiml/inbound`, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          "x-twilio-signature": signRequest(server.token, signedUrl, params),
        },
        body: new URLSearchParams(params),
      });
    const local = await post(`${server.url}/twiml/inbound`);
    assert.equal(local.status, 403);
    await local.body?.cancel();
    const tunneled = await post("https://tunnel.example/twiml/inbound");
    assert.equal(tunneled.status, 200);
    const twiml = parseStreamTwiml(await tunneled.text());
    assert.match(twiml.start!.url, new RegExp(`^wss://tunnel\\.example/stream/${params.CallSid}/`));
  } finally {
    await server.shutdown();
  }
});

Deno.test("loadConfig: AEC is on by default, off with AEC=off", () => {
  assert.equal(loadConfig({}).echoCancellation, true);
  assert.equal(loadConfig({ AEC: "off" }).echoCancellation, false);
  assert.equal(loadConfig({ AEC: "ON" }).echoCancellation, true);
});
