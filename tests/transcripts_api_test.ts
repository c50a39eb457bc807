/**
 * The transcript API over real HTTP: a real simulated call is stored as it
 * is transcribed, then listed, searched, exported, streamed and deleted;
 * bad input gets 400/404; the dashboard token guards the API and pages but
 * never Twilio's routes.
 */
import assert from "node:assert/strict";
import { parseSync } from "subtitle";
import { loadConfig } from "../app/config.ts";
import { memoryLogger } from "../lib/log.ts";
import { startServer } from "../app/start_server.ts";
import { makeSid, simulateCall } from "../lib/sim/twilio_sim.ts";
import { signRequest } from "../lib/twilio/signature.ts";
import {
  audioSet,
  conversation,
  finals,
  sharedEngine,
  tempWav,
  testServer,
  toMulaw,
} from "./helpers.ts";

interface SseEvent {
  id?: string;
  event: string;
  data: string;
}

/** Reads Server-Sent Events until `until` says stop (or `timeoutMs`), then disconnects. */
async function readSse(
  url: string,
  headers: Record<string, string>,
  until: (events: SseEvent[]) => boolean,
  timeoutMs = 10_000,
): Promise<SseEvent[]> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  const events: SseEvent[] = [];
  try {
    const response = await fetch(url, { headers, signal: abort.signal });
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /^text\/event-stream/);
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    while (!until(events)) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event: SseEvent = { event: "message", data: "" };
        for (const line of block.split("\n")) {
          const [field, ...rest] = line.split(": ");
          if (field === "id") event.id = rest.join(": ");
          if (field === "event") event.event = rest.join(": ");
          if (field === "data") event.data = rest.join(": ");
        }
        if (event.data) events.push(event);
      }
    }
    await reader.cancel();
  } catch (error) {
    if (!abort.signal.aborted) throw error;
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
  return events;
}

Deno.test("api: a real call is stored, listed, searched on both tracks, exported and deleted", async () => {
  const callee = await conversation((await audioSet("librispeech-samples")).slice(0, 2));
  const caller = await conversation((await audioSet("librivox-sense-and-sensibility")).slice(0, 2));
  const server = await testServer({ audioInput: await tempWav(caller.samples) });
  try {
    const callSid = makeSid("CA");
    const ended = server.registry.whenEnded(callSid);
    // Listen from the start; the stream must carry the call from start to end.
    const live = readSse(
      `${server.url}/api/events`,
      {},
      (events) => events.some((e) => e.event === "call-ended"),
      120_000,
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    await simulateCall({
      serverUrl: server.url,
      calleeAudio: toMulaw(callee.samples),
      authToken: server.token,
      callSid,
      from: "+15005550006",
      to: "+15557654321",
      fast: true,
      tailMs: Math.max(1000, caller.durationMs - callee.durationMs + 1000),
    });
    await ended;
    const inbound = finals(server.events, callSid, "inbound");
    const outbound = finals(server.events, callSid, "outbound");
    assert.ok(inbound.length > 0 && outbound.length > 0, "both sides were heard");

    const list = await (await fetch(`${server.url}/api/calls`)).json();
    assert.equal(list.total, 1);
    assert.equal(list.calls[0].callSid, callSid);
    assert.equal(list.calls[0].status, "completed");
    assert.equal(list.calls[0].segmentCount, inbound.length + outbound.length);

    const detail = await (await fetch(`${server.url}/api/calls/${callSid}`)).json();
    assert.equal(detail.from, "+15005550006");
    assert.equal(detail.engine, "local");
    assert.deepEqual(
      detail.segments.filter((s: { track: string }) => s.track === "outbound").map((
        s: { text: string },
      ) => s.text),
      outbound.map((t) => t.text),
    );

    // A word heard on each track finds the call; a word never said does not.
    const longest = (text: string) => text.split(" ").sort((a, b) => b.length - a.length)[0];
    for (const word of [longest(inbound[0].text), longest(outbound[0].text)]) {
      const found = await (await fetch(`${server.url}/api/calls?q=${word.toLowerCase()}`)).json();
      assert.deepEqual(found.calls.map((c: { callSid: string }) => c.callSid), [callSid], word);
    }
    const none = await (await fetch(`${server.url}/api/calls?q=xylophonequartz`)).json();
    assert.equal(none.total, 0);
    const byNumber = await (await fetch(`${server.url}/api/calls?number=7654321`)).json();
    assert.equal(byNumber.total, 1);

    const srtResponse = await fetch(`${server.url}/api/calls/${callSid}/transcript.srt`);
    assert.equal(srtResponse.status, 200);
    assert.match(srtResponse.headers.get("content-disposition") ?? "", /attachment/);
    const cues = parseSync(await srtResponse.text()).filter((n) => n.type === "cue");
    assert.equal(cues.length, inbound.length + outbound.length);
    const vtt = await (await fetch(`${server.url}/api/calls/${callSid}/transcript.vtt`)).text();
    assert.ok(vtt.startsWith("WEBVTT\n"));
    const txt = await (await fetch(`${server.url}/api/calls/${callSid}/transcript.txt`)).text();
    assert.ok(txt.includes(`Inbound: ${inbound[0].text}`), txt);
    assert.ok(txt.includes(`Outbound: ${outbound[0].text}`), txt);

    // The live stream had the call: started, partials, every final (with its stored id), ended.
    const events = await live;
    const types = events.map((e) => e.event);
    assert.equal(types[0], "call-started");
    assert.ok(types.includes("partial"));
    assert.equal(types.at(-1), "call-ended");
    const liveFinals = events.filter((e) => e.event === "final").map((e) => JSON.parse(e.data));
    assert.deepEqual(
      liveFinals.map((f) => f.text).sort(),
      [...inbound, ...outbound].map((t) => t.text).sort(),
    );
    assert.ok(liveFinals.every((f) => typeof f.id === "number"));
    const ids = events.map((e) => Number(e.id!.split("-")[1]));
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b), "event ids increase");

    // Resume: from the id of the first final, the rest comes again, nothing missing.
    const firstFinal = events.findIndex((e) => e.event === "final");
    const resumed = await readSse(
      `${server.url}/api/calls/${callSid}/events`,
      { "last-event-id": events[firstFinal].id! },
      (got) => got.some((e) => e.event === "call-ended"),
    );
    assert.deepEqual(resumed.map((e) => e.id), events.slice(firstFinal + 1).map((e) => e.id));
    // An id from an earlier server run: the finals are replayed from the store.
    const replayed = await readSse(
      `${server.url}/api/calls/${callSid}/events`,
      { "last-event-id": "zzzz-5" },
      (got) => got.some((e) => e.event === "call-ended"),
    );
    assert.deepEqual(
      replayed.filter((e) => e.event === "final").map((e) => JSON.parse(e.data).id),
      detail.segments.map((s: { id: number }) => s.id).sort((a: number, b: number) => a - b),
    );

    const deleted = await fetch(`${server.url}/api/calls/${callSid}`, { method: "DELETE" });
    assert.equal(deleted.status, 200);
    await deleted.body?.cancel();
    assert.equal((await fetch(`${server.url}/api/calls/${callSid}`)).status, 404);
    assert.equal(
      (await (await fetch(`${server.url}/api/calls?q=${longest(inbound[0].text)}`)).json()).total,
      0,
    );
  } finally {
    await server.shutdown();
  }
});

Deno.test("api: unknown SIDs are 404, bad parameters 400 with a message", async () => {
  const server = await testServer();
  try {
    const cases: Array<[string, number, RegExp, string?]> = [
      ["/api/calls/CAnope", 404, /no call with SID CAnope/],
      ["/api/calls/CAnope/transcript.srt", 404, /no call/],
      ["/api/calls/CAnope/events", 404, /no call/],
      ["/api/calls/CAnope/transcript.docx", 404, /transcript\.srt/],
      ["/api/calls/CAnope", 404, /no call/, "DELETE"],
      ["/api/calls?limit=0", 400, /limit must be a whole number from 1 to 200, got "0"/],
      ["/api/calls?limit=abc", 400, /limit must be/],
      ["/api/calls?offset=-1", 400, /offset must be/],
      ["/api/calls?since=yesterday", 400, /since must be a date \(2024-05-01\)/],
      ["/api/calls?since=2024-05-02&until=2024-05-01", 400, /since must be before until/],
      ["/api/calls?number=bob", 400, /number must be/],
      ["/api/calls?q=" + "a".repeat(201), 400, /at most 200/],
    ];
    for (const [path, status, message, method] of cases) {
      const response = await fetch(server.url + path, { method });
      assert.equal(response.status, status, path);
      assert.match((await response.json()).error, message, path);
    }
    // The dashboard shows the problem instead of crashing.
    const page = await fetch(`${server.url}/?since=nope`);
    assert.equal(page.status, 400);
    assert.match(await page.text(), /since must be a date/);
    const missing = await fetch(`${server.url}/calls/CAnope`);
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
    // Search syntax is never an error.
    const odd = await fetch(`${server.url}/api/calls?q=${encodeURIComponent('"AND (* NEAR')}`);
    assert.equal(odd.status, 200);
    assert.equal((await odd.json()).total, 0);
    // Still healthy afterwards.
    assert.equal((await fetch(`${server.url}/healthz`).then((r) => r.json())).ok, true);
  } finally {
    await server.shutdown();
  }
});

Deno.test("api: with DASHBOARD_TOKEN, no token is 401 and the token is 200; Twilio routes ignore it", async () => {
  const dashboardToken = "dash-" + makeSid("").slice(0, 24);
  const server = await testServer({ dashboardToken });
  try {
    for (const path of ["/", "/api/calls", "/api/events", "/calls/CA1", "/api/calls/CA1"]) {
      const response = await fetch(server.url + path);
      assert.equal(response.status, 401, path);
      await response.body?.cancel();
    }
    const wrong = await fetch(`${server.url}/api/calls`, {
      headers: { authorization: "Bearer not-the-token" },
    });
    assert.equal(wrong.status, 401);
    assert.match((await wrong.json()).error, /Authorization: Bearer/);

    const bearer = await fetch(`${server.url}/api/calls`, {
      headers: { authorization: `Bearer ${dashboardToken}` },
    });
    assert.equal(bearer.status, 200);
    assert.equal((await bearer.json()).total, 0);

    // The login form: a wrong token is refused, the right one sets a cookie that opens the pages.
    const login = (token: string) =>
      fetch(`${server.url}/login`, {
        method: "POST",
        body: new URLSearchParams({ token }),
        redirect: "manual",
      });
    const refused = await login("guess");
    assert.equal(refused.status, 401);
    await refused.body?.cancel();
    const accepted = await login(dashboardToken);
    assert.equal(accepted.status, 303);
    await accepted.body?.cancel();
    const cookie = accepted.headers.get("set-cookie")!.split(";")[0];
    assert.ok(!cookie.includes(dashboardToken), "the cookie does not carry the token itself");
    const dashboard = await fetch(`${server.url}/`, { headers: { cookie } });
    assert.equal(dashboard.status, 200);
    assert.match(await dashboard.text(), /Active calls/);
    const api = await fetch(`${server.url}/api/calls`, { headers: { cookie } });
    assert.equal(api.status, 200);
    await api.body?.cancel();

    // Twilio's webhook is checked by signature, not by the dashboard token.
    const twimlUrl = `${server.url}/twiml/outbound`;
    const form = { CallSid: "CA1", From: "+15005550006", To: "+15551234567" };
    const twiml = await fetch(twimlUrl, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        "x-twilio-signature": signRequest(server.token, twimlUrl, form),
      },
      body: new URLSearchParams(form),
    });
    assert.equal(twiml.status, 200);
    await twiml.body?.cancel();
    assert.equal((await fetch(`${server.url}/healthz`).then((r) => r.json())).ok, true);
  } finally {
    await server.shutdown();
  }
});

Deno.test("startup says what guards the dashboard: a token beyond loopback, generated when unset", async () => {
  const log = memoryLogger();
  const dataDir = await Deno.makeTempDir();
  const open = await startServer(
    loadConfig({ HOST: "0.0.0.0", PORT: "0", TWILIO_AUTH_TOKEN: "t", DATA_DIR: dataDir }),
    await sharedEngine(),
    log,
  );
  await open.shutdown();
  assert.ok(
    log.lines.some((l) =>
      /^warn: reachable from outside \(HOST is 0\.0\.0\.0\) and DASHBOARD_TOKEN is not set/.test(l)
    ),
    log.lines.join("\n"),
  );

  const quiet = memoryLogger();
  const guarded = await startServer(
    loadConfig({
      HOST: "0.0.0.0",
      PORT: "0",
      TWILIO_AUTH_TOKEN: "t",
      DATA_DIR: dataDir,
      DASHBOARD_TOKEN: "secret-token-7f3a9c1e5b",
    }),
    await sharedEngine(),
    quiet,
  );
  await guarded.shutdown();
  assert.ok(!quiet.lines.some((l) => l.startsWith("warn:")), quiet.lines.join("\n"));
  assert.ok(quiet.lines.some((l) => /^info: the dashboard and \/api need DASHBOARD_TOKEN/.test(l)));
  assert.ok(!quiet.lines.join("\n").includes("secret-token-7f3a9c1e5b"));
  // Loopback is the default.
  assert.equal(loadConfig({}).host, "127.0.0.1");
});
