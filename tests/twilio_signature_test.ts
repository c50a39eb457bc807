/**
 * `X-Twilio-Signature`, checked against the worked example in Twilio's
 * "Webhooks security" guide (https://www.twilio.com/docs/usage/webhooks/webhooks-security).
 */
import assert from "node:assert/strict";
import { signatureValid, signRequest } from "../lib/twilio/signature.ts";

// Twilio's published test vector.
const AUTH_TOKEN = "12345";
const URL = "https://mycompany.com/myapp.php?foo=1&bar=2";
const PARAMS: Record<string, string> = {
  CallSid: "CA1234567890ABCDE",
  Caller: "+12349013030",
  Digits: "1234",
  From: "+12349013030",
  To: "+18005551212",
};
const SIGNATURE = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";

Deno.test("Twilio's published signature validates", () => {
  assert.equal(signatureValid(AUTH_TOKEN, SIGNATURE, URL, PARAMS), true);
});

Deno.test("signRequest reproduces Twilio's published signature", () => {
  assert.equal(signRequest(AUTH_TOKEN, URL, PARAMS), SIGNATURE);
});

Deno.test("the signature does not depend on the order parameters arrive in", () => {
  const reversed = Object.fromEntries(Object.entries(PARAMS).reverse());
  assert.equal(signRequest(AUTH_TOKEN, URL, reversed), SIGNATURE);
  assert.equal(signatureValid(AUTH_TOKEN, SIGNATURE, URL, reversed), true);
});

Deno.test("a forged signature fails", () => {
  for (
    const forged of [
      "1/KCTR6DLpKmkAf8muzZqo1nDgQ=", // one character changed
      "0/KCTR6DLpKmkAf8muzZqo1nDgQ", // one character short
      SIGNATURE + "=",
      "",
      "forged",
      signRequest(AUTH_TOKEN, URL, {}),
    ]
  ) {
    assert.equal(signatureValid(AUTH_TOKEN, forged, URL, PARAMS), false, forged);
  }
});

Deno.test("a signature for another URL fails", () => {
  for (
    const url of [
      "https://mycompany.com/myapp.php?foo=1&bar=3",
      "https://mycompany.com/myapp.php?bar=2&foo=1",
      "https://mycompany.com/myapp.php",
      "https://mycompany.com/other.php?foo=1&bar=2",
      "https://evil.example/myapp.php?foo=1&bar=2",
      "http://mycompany.com/myapp.php?foo=1&bar=2",
    ]
  ) {
    assert.equal(signatureValid(AUTH_TOKEN, SIGNATURE, url, PARAMS), false, url);
  }
});

Deno.test("a signature under another auth token fails", () => {
  for (const token of ["54321", "123456", "1234", ""]) {
    assert.equal(signatureValid(token, SIGNATURE, URL, PARAMS), false, token);
  }
});

Deno.test("a changed, added or missing parameter fails", () => {
  const cases: Record<string, string>[] = [
    { ...PARAMS, Digits: "9999" },
    { ...PARAMS, To: "+18005551213" },
    { ...PARAMS, Extra: "1" },
    { ...PARAMS, digits: "1234" },
    Object.fromEntries(Object.entries(PARAMS).filter(([name]) => name !== "Caller")),
    {},
  ];
  for (const params of cases) {
    assert.equal(
      signatureValid(AUTH_TOKEN, SIGNATURE, URL, params),
      false,
      JSON.stringify(params),
    );
  }
});

Deno.test("a wss URL with no parameters round-trips sign → validate", () => {
  const url = "wss://calls.example.com/stream";
  const signature = signRequest(AUTH_TOKEN, url, {});
  assert.match(signature, /^[A-Za-z0-9+/]{27}=$/); // base64 of a 20-byte HMAC-SHA1
  assert.equal(signatureValid(AUTH_TOKEN, signature, url, {}), true);
  assert.equal(signatureValid("54321", signature, url, {}), false);
  assert.equal(signatureValid(AUTH_TOKEN, signature, "wss://calls.example.com/audio", {}), false);
  assert.equal(signatureValid(AUTH_TOKEN, signature, url, { a: "b" }), false);
  // The two streams of a call are signed differently.
  assert.notEqual(signRequest(AUTH_TOKEN, "wss://calls.example.com/audio", {}), signature);
});

Deno.test("a wss URL with a path and port round-trips sign → validate", () => {
  const url = "wss://abc.ngrok.app:8443/callscribe/audio";
  const signature = signRequest("s3cr3t-token", url, {});
  assert.equal(signatureValid("s3cr3t-token", signature, url, {}), true);
  assert.equal(
    signatureValid("s3cr3t-token", signature, "wss://abc.ngrok.app/callscribe/audio", {}),
    false,
  );
});
