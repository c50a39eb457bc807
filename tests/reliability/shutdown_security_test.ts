/**
 * `main.ts` as a child process, as users run it: SIGTERM and SIGINT during
 * live calls flush every call (finals for what was heard), store them, end
 * the ffmpeg children and exit 0 within a bound. The same runs carry
 * distinctive fake secrets in the environment and hostile requests; no
 * secret may appear in any line the server writes. With no HOST set it
 * listens on 127.0.0.1 only.
 *
 * SIGKILL is covered by tests/store_crash_test.ts (every printed final is in
 * the store, because the store is written before printing).
 */
import assert from "node:assert/strict";
import { makeSid, postSigned, simulateCall } from "../../lib/sim/twilio_sim.ts";
import { SqliteStore } from "../../lib/store/sqlite.ts";
import { signRequest } from "../../lib/twilio/signature.ts";
import { audioSet, conversation, tempWav, toMulaw } from "../helpers.ts";
import { childrenOf, processOf } from "../procfs.ts";
import { closed, freePort, openSigned, report, sleep, spawnServer } from "./fixtures.ts";

/** Fake secrets, distinctive enough that any leak is found by a plain search. */
const SECRETS = {
  TWILIO_AUTH_TOKEN: "twilio-SECRET-4f8a1c2e9b7d3a6f",
  ASSEMBLYAI_API_KEY: "aai-SECRET-7c3e9a1f5b2d8e4c",
  NGROK_AUTHTOKEN: "ngrok-SECRET-2b6d9f1a3c5e7a8b",
  DASHBOARD_TOKEN: "dash-SECRET-9e1c3a5f7b2d4e6a",
  TWILIO_API_SECRET: "twapi-SECRET-1a2b3c4d5e6f7a8b",
};

interface Printed {
  type: string;
  callSid: string;
  track: string;
  text: string;
  startMs: number;
  endMs: number;
}

async function runShutdown(signal: "SIGTERM" | "SIGINT", calls: number) {
  const port = freePort();
  const dataDir = await Deno.makeTempDir({ prefix: "callscribe-shutdown-" });
  const caller = await conversation((await audioSet("librivox-sense-and-sensibility")).slice(0, 4));
  const server = await spawnServer("main.ts", ["--format", "jsonl", "--port", String(port)], {
    ...SECRETS,
    TRANSCRIBER: "local",
    DATA_DIR: dataDir,
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    // The signal ends the live calls at once (no drain): their flush is what is tested.
    DRAIN_TIMEOUT: "0",
    // A real ffmpeg child per bridged call, to see it ended.
    AUDIO_INPUT: await tempWav(caller.samples),
  });
  const token = SECRETS.TWILIO_AUTH_TOKEN;
  const speech = await conversation((await audioSet("asterisk-allison-8k")).slice(0, 6), 700);
  const sids = Array.from({ length: calls }, () => makeSid("CA"));
  const running = sids.map((callSid) =>
    simulateCall({
      serverUrl: server.url,
      calleeAudio: toMulaw(speech.samples),
      authToken: token,
      callSid,
    })
      .catch((error) => error)
  );
  try {
    // Hostile requests while the calls run: their refusals are logged, and must not leak.
    await hostileRequests(server.url, token);
    // Mid-call: a final has been printed, and more speech is still to come.
    for (let i = 0; i < 300 && !server.stdout.some((l) => l.includes('"final"')); i++) {
      await sleep(100);
    }
    assert.ok(server.stdout.some((l) => l.includes('"final"')), "no final before the signal");
    const children = await childrenOf(server.pid);
    assert.ok(children.length >= 1, "no ffmpeg child was running for the bridged call");
    const signalledAt = performance.now();
    server.kill(signal);
    const status = await server.status;
    const exitMs = performance.now() - signalledAt;
    assert.equal(status.code, 0, server.stderr.join("\n"));
    assert.ok(exitMs < 30_000, `took ${exitMs} ms to exit`);
    await Promise.all(running);
    // No child (ffmpeg) outlived the server.
    const alive: number[] = [];
    for (const pid of children) {
      const child = await processOf(pid);
      if (child && !child.zombie) alive.push(pid);
    }
    assert.deepEqual(alive, [], "child processes outlived the server");

    // Every call was flushed: something heard on each, all of it stored, each call ended.
    const printed: Printed[] = server.stdout.filter((l) => l.startsWith("{")).map((l) =>
      JSON.parse(l)
    )
      .filter((l) => l.type === "final");
    const store = SqliteStore.open(dataDir);
    try {
      for (const callSid of sids) {
        const mine = printed.filter((p) => p.callSid === callSid);
        assert.ok(mine.length >= 1, `call ${callSid} printed no final`);
        const stored = await store.segments(callSid);
        for (const p of mine) {
          assert.ok(
            stored.some((s) => s.track === p.track && s.text === p.text && s.startMs === p.startMs),
            `printed but not stored: ${JSON.stringify(p)}`,
          );
        }
        const call = await store.getCall(callSid);
        assert.ok(
          call && call.status !== "in-progress" && call.status !== "interrupted",
          `${callSid}: ${call?.status}`,
        );
      }
    } finally {
      await store.close();
    }
    assert.ok(server.stderr.some((l) => l.includes(`${signal}: ending`)), server.stderr.join("\n"));
    // Bound to loopback by default (no HOST in the environment).
    assert.ok(server.stderr.some((l) => l.includes(`listening on http://127.0.0.1:${port}`)));
    assertNoSecrets([...server.stdout, ...server.stderr]);
    return {
      exitMs,
      printed: printed.length,
      children: children.length,
      lines: server.stdout.length + server.stderr.length,
    };
  } finally {
    server.kill("SIGKILL");
    await server.status;
    await Promise.all(running);
  }
}

/** Requests an attacker (or a misconfigured Twilio) sends; the answers are checked elsewhere. */
async function hostileRequests(url: string, token: string) {
  const form = { CallSid: makeSid("CA"), From: "+15005550006" };
  for (const path of ["/twiml/outbound", "/twiml/inbound", "/twilio/status"]) {
    const wrong = await postSigned(url + path, form, "not-the-token");
    await wrong.body?.cancel();
    assert.equal(wrong.status, 403);
  }
  const api = await fetch(`${url}/api/calls`, { headers: { authorization: "Bearer wrong" } });
  await api.body?.cancel();
  assert.equal(api.status, 401);
  const login = await fetch(`${url}/login`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: "token=wrong",
    redirect: "manual",
  });
  await login.body?.cancel();
  assert.equal(login.status, 401);
  const ws = await openSigned(url.replace("http", "ws") + "/stream", token);
  const done = closed(ws);
  ws.send("{not json");
  await done;
  // A signed upgrade to an unknown route, and an unsigned one to a real route.
  const unsigned = await fetch(`${url}/stream`, {
    headers: { "X-Twilio-Signature": signRequest(token, "ws://elsewhere/stream", {}) },
  });
  await unsigned.body?.cancel();
  assert.equal(unsigned.status, 426);
}

function assertNoSecrets(lines: string[]) {
  const all = lines.join("\n");
  for (const [name, value] of Object.entries(SECRETS)) {
    assert.ok(!all.includes(value), `${name} appears in the output`);
    // Nor a recognisable part of it.
    assert.ok(!all.includes(value.slice(-12)), `the end of ${name} appears in the output`);
  }
}

Deno.test("SIGTERM during two calls: both flushed and stored, ffmpeg ended, exit 0, no secret logged", async () => {
  const figures = await runShutdown("SIGTERM", 2);
  report("SIGTERM", {
    calls: 2,
    exitMs: Math.round(figures.exitMs),
    finalsPrinted: figures.printed,
    ffmpegChildren: figures.children,
    linesSearchedForSecrets: figures.lines,
  });
});

Deno.test("SIGINT during a call: flushed and stored, exit 0, no secret logged", async () => {
  const figures = await runShutdown("SIGINT", 1);
  report("SIGINT", {
    calls: 1,
    exitMs: Math.round(figures.exitMs),
    finalsPrinted: figures.printed,
    linesSearchedForSecrets: figures.lines,
  });
});
