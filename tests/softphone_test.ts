/**
 * The browser softphone's socket, `/api/calls/<CallSid>/softphone`, without
 * a browser: it opens only with a dashboard session and from this server's
 * own pages; it relays the call's `/audio` stream both ways (8 kHz 16-bit
 * PCM to and from the page, µ-law to Twilio); one laptop leg per call, so a
 * second tab, or a tab on a call the ffmpeg bridge has, is refused; a tab
 * that leaves frees the leg and the call goes on. (The real browser:
 * softphone_browser_test.ts.)
 */
import assert from "node:assert/strict";
import { makeSid, simulateCall } from "../lib/sim/twilio_sim.ts";
import { LEG_REFUSED } from "../lib/server/softphone.ts";
import { startTwilioRestSim } from "./fakes/twilio_rest.ts";
import { sleep } from "../lib/async/sleep.ts";
import { audioSet, conversation, tempWav, testServer, toMulaw } from "./helpers.ts";

const DASHBOARD_TOKEN = "softphone-test-dashboard-token-0123456789";

/** The session cookie a login link gives (`name=value`). */
export async function loginCookie(loginLink: string): Promise<string> {
  const response = await fetch(loginLink, { redirect: "manual" });
  await response.body?.cancel();
  const cookie = response.headers.get("set-cookie")?.split(";")[0];
  assert.ok(cookie, `the login link gave no cookie (${response.status})`);
  return cookie;
}

/** The HTTP status a WebSocket upgrade request gets (raw, so any header can be sent). */
async function upgradeStatus(url: string, headers: Record<string, string>): Promise<number> {
  const { hostname, port, pathname } = new URL(url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  try {
    const lines = [
      `GET ${pathname} HTTP/1.1`,
      `Host: ${hostname}:${port}`,
      "Upgrade: websocket",
      "Connection: Upgrade",
      "Sec-WebSocket-Version: 13",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    ];
    await conn.write(new TextEncoder().encode(lines.join("\r\n") + "\r\n\r\n"));
    const buffer = new Uint8Array(1024);
    const n = await conn.read(buffer);
    const head = new TextDecoder().decode(buffer.subarray(0, n ?? 0));
    return Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
  } finally {
    conn.close();
  }
}

/** One softphone socket, with what it got. */
interface Tab {
  ws: WebSocket;
  first: Promise<{ type: string; message?: string }>;
  closed: Promise<CloseEvent>;
  frames: Int16Array[];
}

function openTab(url: string, cookie: string): Tab {
  const ws = new WebSocket(url, { headers: { cookie } });
  ws.binaryType = "arraybuffer";
  const frames: Int16Array[] = [];
  const first = Promise.withResolvers<{ type: string; message?: string }>();
  const closed = new Promise<CloseEvent>((resolve) => ws.addEventListener("close", resolve));
  ws.onmessage = (event) => {
    if (typeof event.data === "string") first.resolve(JSON.parse(event.data));
    else frames.push(new Int16Array(event.data));
  };
  ws.onerror = () => first.reject(new Error("the softphone socket failed"));
  return { ws, first: first.promise, closed, frames };
}

/** Opens tabs until one gets past "not live" (the call's /audio stream starts a moment later). */
async function takeLeg(url: string, cookie: string): Promise<Tab> {
  for (let i = 0; i < 100; i++) {
    const tab = openTab(url, cookie);
    const first = await tab.first;
    if (first.type === "refused" && /not live/.test(first.message ?? "")) {
      await tab.closed;
      await sleep(100);
      continue;
    }
    return tab;
  }
  throw new Error("the call's laptop leg never became available");
}

Deno.test("softphone socket: refused without a session (401) and from a foreign Origin (403)", async () => {
  const server = await testServer({ dashboardToken: DASHBOARD_TOKEN });
  try {
    const cookie = await loginCookie(server.loginLink()!);
    const url = `${server.url}/api/calls/${makeSid("CA")}/softphone`;
    const own = new URL(server.url).origin;
    assert.equal(await upgradeStatus(url, { Origin: own }), 401, "no session");
    assert.equal(
      await upgradeStatus(url, { Origin: own, Cookie: "callscribe_session=made-up" }),
      401,
      "an unknown session",
    );
    assert.equal(
      await upgradeStatus(url, { Origin: "https://evil.example", Cookie: cookie }),
      403,
      "a page on another site, with the user's cookie",
    );
    assert.equal(
      await upgradeStatus(url, {
        Origin: own,
        Cookie: cookie,
        "Sec-Fetch-Site": "cross-site",
      }),
      403,
      "Sec-Fetch-Site says another site",
    );
    // The same request from our own page opens: the refusals above are the checks, not a fault.
    assert.equal(await upgradeStatus(url, { Origin: own, Cookie: cookie }), 101);
    assert.ok(!server.log.lines.join("\n").includes(cookie.split("=")[1]), "no session id logged");
  } finally {
    await server.shutdown();
  }
});

Deno.test("softphone socket: relays both ways; a second tab is refused; leaving frees the leg and the call goes on", async () => {
  const server = await testServer({ dashboardToken: DASHBOARD_TOKEN });
  try {
    const cookie = await loginCookie(server.loginLink()!);
    const callee = await conversation((await audioSet("librispeech-samples")).slice(0, 1), 500);
    const callSid = makeSid("CA");
    const call = simulateCall({
      serverUrl: server.url,
      authToken: server.token,
      callSid,
      calleeAudio: toMulaw(callee.samples),
      tailMs: 4000,
    });
    const url = `${server.url.replace(/^http/, "ws")}/api/calls/${callSid}/softphone`;
    const first = await takeLeg(url, cookie);
    assert.deepEqual(await first.first, { type: "ready", sampleRate: 8000 });

    // The page's microphone: a 440 Hz tone, 20 ms frames of 16-bit PCM at 8 kHz.
    const tone = new Int16Array(160).map((_, i) =>
      Math.round(8000 * Math.sin(i * 2 * Math.PI / 8000 * 440))
    );
    // A burst of 4 s at once (a tab that stalled): 2 s ahead of the clock go through, the rest
    // is dropped, so Twilio never queues seconds of the laptop's voice.
    for (let i = 0; i < 200; i++) first.ws.send(tone.slice().buffer);

    const second = openTab(url, cookie);
    const refused = await second.first;
    assert.equal(refused.type, "refused");
    assert.match(refused.message ?? "", /another browser tab has this call's laptop leg/);
    assert.equal((await second.closed).code, LEG_REFUSED);

    await sleep(1000);
    assert.ok(first.frames.length >= 25, `the page got ${first.frames.length} frames of the call`);
    assert.ok(first.frames.every((f) => f.length === 160));
    // The callee's speech, not only silence, reached the page.
    const peak = Math.max(...first.frames.flatMap((f) => [...f].map(Math.abs)));
    assert.ok(peak > 1000, `the loudest sample the page got is ${peak}`);

    first.ws.close(1000, "tab closed");
    await first.closed;
    await sleep(300);
    assert.equal(server.registry.hasEnded(callSid), false, "the call goes on without the tab");
    assert.match(server.log.lines.join("\n"), /the browser left the laptop leg; the call goes on/);
    const again = await takeLeg(url, cookie);
    assert.equal((await again.first).type, "ready", "a new tab takes the freed leg");

    const result = await call;
    // What the first tab sent reached the simulated callee as audio, no more than 2 s of it.
    assert.ok(result.outboundFramesPlayed >= 95, `${result.outboundFramesPlayed} frames played`);
    assert.ok(result.outboundFramesPlayed <= 110, `${result.outboundFramesPlayed} frames played`);
    assert.match(server.log.lines.join("\n"), /sends audio faster than real time/);
    const ended = await again.closed;
    assert.equal(ended.code, 1000);
  } finally {
    await server.shutdown();
  }
});

Deno.test("softphone socket: logging out closes the tab's socket (the leg freed, the call goes on) and the old session cannot reopen it", async () => {
  const server = await testServer({ dashboardToken: DASHBOARD_TOKEN });
  try {
    const cookie = await loginCookie(server.loginLink()!);
    const other = await loginCookie(server.loginLink()!);
    const callee = await conversation((await audioSet("librispeech-samples")).slice(0, 1), 500);
    const callSid = makeSid("CA");
    const call = simulateCall({
      serverUrl: server.url,
      authToken: server.token,
      callSid,
      calleeAudio: toMulaw(callee.samples),
      tailMs: 3000,
    });
    const url = `${server.url.replace(/^http/, "ws")}/api/calls/${callSid}/softphone`;
    const tab = await takeLeg(url, cookie);
    assert.equal((await tab.first).type, "ready");
    const messages: string[] = [];
    tab.ws.addEventListener("message", (e) => {
      if (typeof e.data === "string") messages.push(JSON.parse(e.data).message);
    });
    const own = new URL(server.url).origin;
    const logout = await fetch(`${server.url}/logout`, {
      method: "POST",
      headers: { cookie, origin: own },
      redirect: "manual",
    });
    await logout.body?.cancel();
    assert.equal(logout.status, 303);
    const closed = await tab.closed;
    assert.equal(closed.reason, "logged out");
    assert.deepEqual(messages, ["you logged out"]);
    assert.equal(server.registry.hasEnded(callSid), false, "the call goes on");
    assert.equal(
      await upgradeStatus(url.replace(/^ws/, "http"), { Origin: own, Cookie: cookie }),
      401,
      "the logged-out session opens no new socket",
    );
    // Another session's tab takes the freed leg.
    const again = await takeLeg(url, other);
    assert.equal((await again.first).type, "ready");
    await call;
    await again.closed;
  } finally {
    await server.shutdown();
  }
});

Deno.test("softphone socket: a call the ffmpeg bridge has refuses the browser (one laptop leg per call)", async () => {
  const caller = await conversation((await audioSet("librivox-sense-and-sensibility")).slice(0, 1));
  const server = await testServer({
    dashboardToken: DASHBOARD_TOKEN,
    audioInput: await tempWav(caller.samples),
    pacedInput: true,
  });
  try {
    const cookie = await loginCookie(server.loginLink()!);
    const callSid = makeSid("CA");
    const call = simulateCall({
      serverUrl: server.url,
      authToken: server.token,
      callSid,
      calleeAudio: toMulaw(new Float32Array(8000)),
      tailMs: 2000,
    });
    const url = `${server.url.replace(/^http/, "ws")}/api/calls/${callSid}/softphone`;
    const tab = await takeLeg(url, cookie);
    const first = await tab.first;
    assert.equal(first.type, "refused");
    assert.match(first.message ?? "", /microphone and speaker \(AUDIO_INPUT\/AUDIO_OUTPUT\)/);
    assert.equal((await tab.closed).code, LEG_REFUSED);
    await call;
  } finally {
    await server.shutdown();
  }
});

Deno.test("dashboard dial-out: POST /api/calls places the call through Twilio's REST API with the server's credentials", async () => {
  const accountSid = makeSid("AC");
  const authToken = "dial-out-test-auth-token-0123456789ab";
  const sim = await startTwilioRestSim({
    accountSid,
    authToken,
    calleeAudio: toMulaw(new Float32Array(8000)),
    tailMs: 1000,
    ringMs: 100,
  });
  const server = await testServer({
    dashboardToken: DASHBOARD_TOKEN,
    token: authToken,
    env: {
      TWILIO_ACCOUNT_SID: accountSid,
      TWILIO_PHONE_NUMBER: "+15005550006",
      TWILIO_API_URL: sim.url,
    },
  });
  try {
    const cookie = await loginCookie(server.loginLink()!);
    const own = new URL(server.url).origin;
    const post = (to: string, headers: Record<string, string>) =>
      fetch(`${server.url}/api/calls`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify({ to }),
      });
    const placed = await post("+15557654321", { cookie, origin: own });
    const { callSid } = await placed.json();
    assert.equal(placed.status, 201);
    assert.equal(sim.calls.get(callSid)?.to, "+15557654321");
    assert.equal(sim.calls.get(callSid)?.from, "+15005550006");
    await sim.calls.get(callSid)!.done;
    await server.registry.whenEnded(callSid);
    assert.ok(
      server.events.some((e) => e.type === "call-started" && e.call.callSid === callSid),
      "the placed call reached this server (its TwiML and streams)",
    );

    const bad = await post("555-1234", { cookie, origin: own });
    assert.equal(bad.status, 400);
    assert.match((await bad.json()).error, /E\.164 form such as \+15551234567/);
    const foreign = await post("+15557654321", { cookie, origin: "https://evil.example" });
    assert.equal(foreign.status, 403);
    await foreign.body?.cancel();
    const anonymous = await post("+15557654321", { origin: own });
    assert.equal(anonymous.status, 401);
    await anonymous.body?.cancel();
    assert.equal(sim.calls.size, 1, "only the checked request placed a call");
  } finally {
    await server.shutdown();
    await sim.close();
  }
});

Deno.test("dashboard dial-out without Twilio credentials: one line naming the settings", async () => {
  const server = await testServer({ dashboardToken: DASHBOARD_TOKEN });
  try {
    const cookie = await loginCookie(server.loginLink()!);
    const response = await fetch(`${server.url}/api/calls`, {
      method: "POST",
      headers: { "content-type": "application/json", cookie },
      body: JSON.stringify({ to: "+15557654321" }),
    });
    assert.equal(response.status, 503);
    assert.match(
      (await response.json()).error,
      /needs the server's Twilio credentials \(TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_PHONE_NUMBER in its \.env\): TWILIO_ACCOUNT_SID is not set/,
    );
  } finally {
    await server.shutdown();
  }
});
