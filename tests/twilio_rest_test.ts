/**
 * The simulated Twilio REST API driven by the real `twilio` client, the
 * credential checks of `deno task call` (all before any network call), and
 * Twilio errors as one readable line.
 */
import assert from "node:assert/strict";
import { startTwilioRestSim } from "./fakes/twilio_rest.ts";
import { makeSid } from "../lib/sim/twilio_sim.ts";
import { twilioCredentials } from "../app/config.ts";
import { describeTwilioError, twilioClient } from "../lib/twilio/rest.ts";
import { audioSet, conversation, testServer, toMulaw } from "./helpers.ts";
import { makeCall } from "./call_command.ts";
import { UserError } from "../lib/user_error.ts";

const TO = "+15551234567";
const FROM = "+15005550006";
const accountSid = makeSid("AC");
const authToken = makeSid("").slice(0, 32);

async function sim(extra: { verifiedNumbers?: string[] } = {}) {
  const speech = await conversation((await audioSet("librispeech-samples")).slice(0, 1));
  return startTwilioRestSim({
    accountSid,
    authToken,
    calleeAudio: toMulaw(speech.samples),
    fast: true,
    ringMs: 0,
    ...extra,
  });
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected a rejection");
}

Deno.test("the simulated REST API answers the real client like Twilio", async () => {
  const api = await sim({ verifiedNumbers: [TO] });
  const server = await testServer({ token: authToken });
  try {
    const client = twilioClient({ accountSid, authToken, from: FROM, apiUrl: api.url });
    // A call with a Url: the simulator fetches the webhook (signed) like Twilio.
    const call = await client.calls.create({
      to: TO,
      from: FROM,
      url: `${server.url}/twiml/outbound`,
      statusCallback: `${server.url}/twilio/status`,
      statusCallbackEvent: ["initiated", "ringing", "answered", "completed"],
    });
    assert.match(call.sid, /^CA[0-9a-f]{32}$/);
    assert.equal(call.status, "queued");
    assert.equal(call.direction, "outbound-api");
    assert.equal(call.to, TO);
    await api.calls.get(call.sid)!.done;
    const fetched = await client.calls(call.sid).fetch();
    assert.equal(fetched.status, "completed");
    assert.ok(Number(fetched.duration) >= 1);
    assert.deepEqual(server.statuses.get(call.sid)?.events, [
      "initiated",
      "ringing",
      "answered",
      "completed",
    ]);
    await server.registry.whenEnded(call.sid);
    assert.equal(server.registry.activeCalls, 0);

    const wrong = twilioClient({
      accountSid,
      authToken: "f".repeat(32),
      from: FROM,
      apiUrl: api.url,
    });
    const auth = await rejection(wrong.calls.create({ to: TO, from: FROM, twiml: "<Response/>" }));
    assert.equal((auth as { code: number }).code, 20003);
    assert.equal((auth as { status: number }).status, 401);
    assert.match(
      describeTwilioError(auth),
      /^Twilio error 20003: .*https:\/\/www\.twilio\.com\/docs\/errors\/20003$/,
    );

    const invalid = await rejection(
      client.calls.create({ to: "12", from: FROM, twiml: "<Response/>" }),
    );
    assert.equal((invalid as { code: number }).code, 21211);
    assert.equal((invalid as { status: number }).status, 400);

    const unverified = await rejection(
      client.calls.create({ to: "+15557654321", from: FROM, twiml: "<Response/>" }),
    );
    const line = describeTwilioError(unverified);
    assert.match(line, /^Twilio error 21219: The number \+15557654321 is unverified/);
    assert.match(line, /Verified Caller IDs/);
    assert.ok(!line.includes("\n"), "one line");

    const missing = await rejection(client.calls(makeSid("CA")).fetch());
    assert.equal((missing as { code: number }).code, 20404);
  } finally {
    await api.close();
    await server.shutdown();
  }
});

Deno.test("Status=completed hangs up a ringing call as canceled", async () => {
  const api = await startTwilioRestSim({
    accountSid,
    authToken,
    calleeAudio: new Uint8Array(0),
    ringMs: 60_000,
  });
  try {
    const client = twilioClient({ accountSid, authToken, from: FROM, apiUrl: api.url });
    const call = await client.calls.create({ to: TO, from: FROM, twiml: "<Response/>" });
    const updated = await client.calls(call.sid).update({ status: "completed" });
    assert.equal(updated.status, "canceled");
    await api.calls.get(call.sid)!.done;
    assert.ok(api.calls.get(call.sid)!.hungUpByApi);
  } finally {
    await api.close();
  }
});

Deno.test("twilioCredentials names each missing or malformed value", () => {
  const good = {
    TWILIO_ACCOUNT_SID: accountSid,
    TWILIO_AUTH_TOKEN: authToken,
    TWILIO_PHONE_NUMBER: FROM,
  };
  assert.equal(twilioCredentials(good).accountSid, accountSid);
  assert.equal(twilioCredentials(good, "+15550001111").from, "+15550001111");
  const cases: Array<[Record<string, string>, string | undefined, RegExp]> = [
    [{ ...good, TWILIO_ACCOUNT_SID: "" }, undefined, /^TWILIO_ACCOUNT_SID is not set/],
    [
      { ...good, TWILIO_ACCOUNT_SID: "SK" + "0".repeat(32) },
      undefined,
      /^TWILIO_ACCOUNT_SID must be "AC"/,
    ],
    [{ ...good, TWILIO_AUTH_TOKEN: "" }, undefined, /^TWILIO_AUTH_TOKEN is not set/],
    [{ ...good, TWILIO_AUTH_TOKEN: `"${authToken}"` }, undefined, /^TWILIO_AUTH_TOKEN contains/],
    [{ ...good, TWILIO_PHONE_NUMBER: "" }, undefined, /^TWILIO_PHONE_NUMBER is not set/],
    [
      { ...good, TWILIO_PHONE_NUMBER: "555 1234" },
      undefined,
      /^TWILIO_PHONE_NUMBER must be .*E\.164/,
    ],
    [good, "5551234", /^--from must be .*E\.164/],
    [{ ...good, TWILIO_API_URL: "nope" }, undefined, /^TWILIO_API_URL must be/],
  ];
  for (const [env, from, message] of cases) {
    assert.throws(() => twilioCredentials(env, from), (e: Error) => {
      assert.ok(e instanceof UserError);
      assert.match(e.message, message);
      assert.ok(!e.message.includes(authToken), "never echoes the token");
      return true;
    });
  }
});

Deno.test("deno task call: bad credentials exit 2 with their own message and no network call", async () => {
  const api = await sim();
  try {
    const good = {
      TWILIO_ACCOUNT_SID: accountSid,
      TWILIO_AUTH_TOKEN: authToken,
      TWILIO_PHONE_NUMBER: FROM,
      TWILIO_API_URL: api.url,
      // Also where the server would be asked for its URL: nothing may reach it either.
      PUBLIC_URL: api.url,
    };
    const cases: Array<[string[], Record<string, string>, RegExp]> = [
      [[TO], { ...good, TWILIO_ACCOUNT_SID: "" }, /TWILIO_ACCOUNT_SID is not set.*Account SID/],
      [
        [TO],
        { ...good, TWILIO_ACCOUNT_SID: "US123" },
        /TWILIO_ACCOUNT_SID must be "AC" followed by 32 hex/,
      ],
      [[TO], { ...good, TWILIO_AUTH_TOKEN: "" }, /TWILIO_AUTH_TOKEN is not set.*Auth Token/],
      [[TO], { ...good, TWILIO_PHONE_NUMBER: "" }, /TWILIO_PHONE_NUMBER is not set.*--from/],
      [[TO, "--from", "5551234"], good, /--from must be a phone number in E\.164/],
      [["555-123-4567"], good, /number to call must be in E\.164 form/],
      [[], good, /give the number to call/],
    ];
    for (const [args, env, message] of cases) {
      const output = await makeCall(args, env).output();
      const stderr = new TextDecoder().decode(output.stderr);
      assert.equal(output.code, 2, `${args.join(" ")}: ${stderr}`);
      assert.match(stderr, message);
      assert.ok(!/\n\s+at /.test(stderr), `no stack trace: ${stderr}`);
    }
    assert.deepEqual(api.requests, [], "no request reached the API");
  } finally {
    await api.close();
  }
});

Deno.test("deno task call: a Twilio API error is one line with its code and docs link", async () => {
  const api = await sim({ verifiedNumbers: ["+15550000000"] });
  try {
    const env = {
      TWILIO_ACCOUNT_SID: accountSid,
      TWILIO_AUTH_TOKEN: authToken,
      TWILIO_PHONE_NUMBER: FROM,
      TWILIO_API_URL: api.url,
      PUBLIC_URL: "https://example.ngrok.app",
    };
    const trial = await makeCall([TO], env).output();
    const stderr = new TextDecoder().decode(trial.stderr).trim();
    assert.equal(trial.code, 1, stderr);
    assert.equal(stderr.split("\n").length, 1, stderr);
    assert.match(
      stderr,
      /Twilio error 21219: .*unverified.*https:\/\/www\.twilio\.com\/docs\/errors\/21219/,
    );

    const auth = await makeCall([TO], { ...env, TWILIO_AUTH_TOKEN: "0".repeat(32) }).output();
    const authErr = new TextDecoder().decode(auth.stderr).trim();
    assert.equal(auth.code, 1);
    assert.match(authErr, /Twilio error 20003: .*TWILIO_AUTH_TOKEN.*docs\/errors\/20003/);
    assert.equal(api.calls.size, 0);
  } finally {
    await api.close();
  }
});

Deno.test("deno task call refuses a public URL Twilio cannot reach", async () => {
  const output = await makeCall([TO], {
    TWILIO_ACCOUNT_SID: accountSid,
    TWILIO_AUTH_TOKEN: authToken,
    TWILIO_PHONE_NUMBER: FROM,
    PUBLIC_URL: "http://127.0.0.1:8080",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 2);
  assert.match(stderr, /Twilio cannot reach.*NGROK_AUTHTOKEN/);
});
