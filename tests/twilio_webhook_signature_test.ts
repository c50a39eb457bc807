/**
 * Every Twilio route refuses requests without a valid X-Twilio-Signature:
 * missing, forged, signed for another URL, or with another account's token.
 * WebSocket upgrades are checked on the raw HTTP exchange, to see the 403.
 */
import assert from "node:assert/strict";
import { makeSid, postSigned } from "../lib/sim/twilio_sim.ts";
import { signRequest } from "../lib/twilio/signature.ts";
import { callStreamUrl, testServer } from "./helpers.ts";

const params = {
  AccountSid: makeSid("AC"),
  CallSid: makeSid("CA"),
  CallStatus: "ringing",
  From: "+15005550006",
  To: "+15551234567",
  Direction: "outbound-api",
  StreamSid: makeSid("MZ"),
  StreamEvent: "stream-started",
};

const WEBHOOKS = ["/twiml/outbound", "/twiml/inbound", "/twilio/status", "/twilio/stream-status"];

/** The four ways a signature can be wrong, for a request to `url`. */
function badSignatures(token: string, url: string, body: Record<string, string>) {
  return {
    missing: undefined,
    forged: "Zm9yZ2VkIHNpZ25hdHVyZQ==",
    "wrong URL": signRequest(token, url.replace(/\/\/[^/]+/, "//attacker.example"), body),
    "wrong token": signRequest("0".repeat(32), url, body),
  };
}

function post(url: string, signature: string | undefined) {
  const headers: Record<string, string> = { "content-type": "application/x-www-form-urlencoded" };
  if (signature) headers["X-Twilio-Signature"] = signature;
  return fetch(url, { method: "POST", headers, body: new URLSearchParams(params) });
}

/** Sends a WebSocket upgrade by hand and returns the HTTP status line's code. */
async function upgradeStatus(serverUrl: string, path: string, signature?: string) {
  const { hostname, port } = new URL(serverUrl);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  try {
    const lines = [
      `GET ${path} HTTP/1.1`,
      `Host: ${hostname}:${port}`,
      "Upgrade: websocket",
      "Connection: Upgrade",
      "Sec-WebSocket-Version: 13",
      `Sec-WebSocket-Key: ${btoa("0123456789abcdef")}`,
      ...(signature ? [`X-Twilio-Signature: ${signature}`] : []),
      "",
      "",
    ];
    await conn.write(new TextEncoder().encode(lines.join("\r\n")));
    const buffer = new Uint8Array(1024);
    const n = await conn.read(buffer);
    const head = new TextDecoder().decode(buffer.subarray(0, n ?? 0));
    return Number(head.match(/^HTTP\/1\.1 (\d{3})/)?.[1]);
  } finally {
    conn.close();
  }
}

Deno.test("every webhook route: 403 for missing, forged, wrong-URL and wrong-token signatures", async () => {
  const server = await testServer();
  try {
    for (const path of WEBHOOKS) {
      const url = server.url + path;
      for (const [kind, signature] of Object.entries(badSignatures(server.token, url, params))) {
        const response = await post(url, signature);
        assert.equal(response.status, 403, `${path} with a ${kind} signature`);
        await response.body?.cancel();
      }
      const good = await postSigned(url, params, server.token);
      assert.ok(good.status === 200 || good.status === 204, `${path} signed: ${good.status}`);
      await good.body?.cancel();
      // A line per kind (no signature, an invalid one); repeats are counted, not logged again.
      const refusals = server.log.lines.filter((l) => l.includes(`refused POST ${path} with`));
      assert.equal(refusals.length, 2, `${path}: each kind of refusal is logged`);
    }
    // A refused status callback records nothing.
    assert.deepEqual(server.statuses.get(params.CallSid)?.events, ["ringing"]);
  } finally {
    await server.shutdown();
  }
});

Deno.test("both WebSocket routes: 403 for missing, forged, wrong-URL and wrong-token signatures", async () => {
  const server = await testServer();
  try {
    for (const route of ["/stream", "/audio"]) {
      const url = callStreamUrl(
        server.url,
        route === "/stream" ? "transcription" : "audio",
        makeSid("CA"),
        server.token,
      );
      const path = new URL(url).pathname;
      for (const [kind, signature] of Object.entries(badSignatures(server.token, url, {}))) {
        assert.equal(await upgradeStatus(server.url, path, signature), 403, `${path}: ${kind}`);
      }
      // The same request, correctly signed, is upgraded.
      const signed = signRequest(server.token, url, {});
      assert.equal(await upgradeStatus(server.url, path, signed), 101, `${path} signed`);
      const refusals = server.log.lines.filter((l) => l.includes(`refused GET ${route}/… with`));
      assert.equal(refusals.length, 2, `${path}: each kind of refusal is logged`);
      // ...without the stream token.
      const token = path.split("/").at(-1)!;
      assert.ok(!server.log.lines.some((l) => l.includes(token)), "a stream token was logged");
    }
  } finally {
    await server.shutdown();
  }
});

Deno.test("GET /api/public-url tells deno task call where Twilio reaches the server", async () => {
  const server = await testServer();
  try {
    const response = await fetch(`${server.url}/api/public-url`);
    assert.deepEqual(await response.json(), { publicUrl: server.publicUrl });
  } finally {
    await server.shutdown();
  }
});
