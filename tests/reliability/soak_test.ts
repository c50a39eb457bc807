/**
 * Long runs and memory, against a server in a child process (so its memory,
 * descriptors and children are read from /proc):
 *
 * - Soak: many concurrent real-time simulated calls (100 for 60 s here;
 *   `deno task soak` runs 100 for 10 minutes). The engine only counts: 200
 *   tracks of real decoding would not run in real time on two cores, and the
 *   soak is about the server. Every frame sent must reach the engine, and
 *   memory, sockets and children must return to where they were after a
 *   warm-up.
 * - Hostile load: connection churn and frames of up to 65 MiB; memory
 *   returns to baseline.
 *
 * SOAK_CALLS and SOAK_SECONDS override the size.
 */
import assert from "node:assert/strict";
import { makeSid, simulateCall } from "../../lib/sim/twilio_sim.ts";
import { connectedMessage } from "../../lib/twilio/protocol.ts";
import type { NullEngineCounts } from "../../lib/transcribe/null_engine.ts";
import { audioSet, conversation, toMulaw } from "../helpers.ts";
import { childrenOf, fdsOf, rssOf } from "../procfs.ts";
import {
  type ChildServer,
  closed,
  openSigned,
  report,
  sleep,
  spawnServer,
  start,
} from "./fixtures.ts";

const TOKEN = "soak-token-3e5a7c9b1d2f4a6c";

interface Stats {
  memory: { rss: number; heapUsed: number; heapTotal: number };
  counts: NullEngineCounts;
  activeCalls: number;
}

async function stats(server: ChildServer): Promise<Stats> {
  return JSON.parse(await server.command("stats"));
}

async function childServer(): Promise<ChildServer> {
  return await spawnServer("tests/reliability/child_server.ts", ["--engine", "null"], {
    TWILIO_AUTH_TOKEN: TOKEN,
    HOST: "127.0.0.1",
    PORT: "0",
    DATA_DIR: await Deno.makeTempDir({ prefix: "callscribe-soak-" }),
  }, { v8Flags: "--expose-gc" });
}

/**
 * The calls' webhook and status-callback requests keep no idle connection: a
 * pool would hold on the server as many sockets as requests once overlapped
 * (13 → 23 after a wave), which the socket count would read as a leak.
 */
const noKeepAlive = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });

/** `calls` concurrent real-time calls of `seconds` each; returns the frames sent. */
async function callWave(server: ChildServer, audio: Uint8Array, calls: number, seconds: number) {
  const callee = new Uint8Array(seconds * 8000);
  for (let i = 0; i < callee.length; i += audio.length) {
    callee.set(audio.subarray(0, callee.length - i), i);
  }
  const results = await Promise.all(
    Array.from({ length: calls }, async (_, i) => {
      // Spread the starts over a second, as calls would arrive.
      await sleep((i * 1000) / calls);
      return await simulateCall({
        serverUrl: server.url,
        calleeAudio: callee,
        authToken: TOKEN,
        callSid: makeSid("CA"),
        tailMs: 0,
        httpClient: noKeepAlive,
      });
    }),
  );
  for (const r of results) {
    for (const how of Object.values(r.serverClosed)) assert.match(how!, /^1000 /);
  }
  return results.reduce((n, r) => n + r.framesSent, 0);
}

async function settle(server: ChildServer): Promise<Stats> {
  let s = await stats(server);
  for (let i = 0; i < 100 && s.activeCalls > 0; i++) {
    await sleep(100);
    s = await stats(server);
  }
  return s;
}

/** Sockets that may come and go between readings with nothing leaked (the test's own requests). */
const KEEP_ALIVE_SLACK = 4;
const CALLS = Number(Deno.env.get("SOAK_CALLS") ?? 100);
const SECONDS = Number(Deno.env.get("SOAK_SECONDS") ?? 60);

Deno.test(`soak: ${CALLS} concurrent calls for ${SECONDS} s; no frame dropped, nothing leaked`, async () => {
  const audio = toMulaw(
    (await conversation((await audioSet("asterisk-allison-8k")).slice(0, 3), 500)).samples,
  );
  const server = await childServer();
  try {
    // Warm-up: the same load, briefly, so that pools and heaps reach their working size.
    let framesSent = await callWave(server, audio, CALLS, Math.min(SECONDS, 30));
    const before = await settle(server);
    const rssBefore = await rssOf(server.pid);
    const fdsBefore = await fdsOf(server.pid);
    const waveStarted = performance.now();
    framesSent += await callWave(server, audio, CALLS, SECONDS);
    const wallSeconds = (performance.now() - waveStarted) / 1000;
    const after = await settle(server);
    const rssAfter = await rssOf(server.pid);
    // Connections of the last calls may still be closing: a leak stays, a closing socket goes.
    let fdsAfter = await fdsOf(server.pid);
    for (let i = 0; i < 30 && fdsAfter.sockets > fdsBefore.sockets + KEEP_ALIVE_SLACK; i++) {
      await sleep(100);
      fdsAfter = await fdsOf(server.pid);
    }

    assert.equal(after.activeCalls, 0);
    // Zero dropped frames: every frame of both tracks reached the engine, and no gap was filled.
    assert.equal(after.counts.bytes, framesSent * 2 * 160);
    assert.equal(after.counts.writes, framesSent * 2);
    assert.equal(after.counts.tracksOpened, CALLS * 2 * 2);
    assert.equal(after.counts.tracksClosed, after.counts.tracksOpened);
    // Nothing leaked: memory, sockets, children. Both readings follow a last-resort GC (see
    // child_server.ts), so V8's reserve of heap pages grown into under load is not counted.
    assert.ok(
      after.memory.heapUsed <= before.memory.heapUsed * 1.1,
      `heap used ${before.memory.heapUsed} -> ${after.memory.heapUsed}`,
    );
    assert.ok(rssAfter <= rssBefore * 1.1, `RSS ${rssBefore} -> ${rssAfter}`);
    assert.ok(
      // A leak would be one or more per call, hundreds here.
      fdsAfter.sockets <= fdsBefore.sockets + KEEP_ALIVE_SLACK,
      `sockets ${fdsBefore.sockets} -> ${fdsAfter.sockets}`,
    );
    assert.ok(
      fdsAfter.total <= fdsBefore.total + KEEP_ALIVE_SLACK,
      `fds ${fdsBefore.total} -> ${fdsAfter.total}`,
    );
    assert.deepEqual(await childrenOf(server.pid), []);
    report("soak", {
      calls: CALLS,
      seconds: SECONDS,
      wallSeconds: wallSeconds.toFixed(1),
      framesSent,
      framesDropped: framesSent * 2 - after.counts.writes,
      rssBeforeMB: (rssBefore / 1e6).toFixed(1),
      rssAfterMB: (rssAfter / 1e6).toFixed(1),
      heapBeforeMB: (before.memory.heapUsed / 1e6).toFixed(1),
      heapAfterMB: (after.memory.heapUsed / 1e6).toFixed(1),
      v8ReservedBeforeMB: (before.memory.heapTotal / 1e6).toFixed(1),
      v8ReservedAfterMB: (after.memory.heapTotal / 1e6).toFixed(1),
      fdsBefore: fdsBefore.total,
      fdsAfter: fdsAfter.total,
    });
  } finally {
    server.kill("SIGTERM");
    await server.status;
  }
});

Deno.test("hostile load: churn and frames up to 65 MiB leave memory and sockets at baseline", async () => {
  const server = await childServer();
  const wsUrl = server.url.replace("http", "ws");
  const codes = new Map<number, number>();
  try {
    // Warm-up: a little of everything that follows.
    // The allocator keeps the pages of the largest frame seen for reuse (RSS, not heap): the
    // warm-up sends one, so the check below is about growth, not the first high-water mark.
    await churn(wsUrl, 200);
    await bigFrame(wsUrl, 63);
    const before = await stats(server);
    const rssBefore = await rssOf(server.pid);
    const fdsBefore = await fdsOf(server.pid);

    const churned = await churn(wsUrl, 3000);
    // Deno accepts text frames up to 64 MiB before our 64 KiB check sees them; beyond, it drops the
    // connection itself. Each is only possible on a signed socket.
    for (const mib of [16, 16, 16, 16, 63, 65]) {
      const code = await bigFrame(wsUrl, mib);
      codes.set(code, (codes.get(code) ?? 0) + 1);
      if (mib < 64) assert.equal(code, 1009, `${mib} MiB frame`);
      else assert.notEqual(code, -1, `${mib} MiB frame: the server did not close`);
    }
    await sleep(500);
    const after = await settle(server);
    const rssAfter = await rssOf(server.pid);
    // Connections of the last calls may still be closing: a leak stays, a closing socket goes.
    let fdsAfter = await fdsOf(server.pid);
    for (let i = 0; i < 30 && fdsAfter.sockets > fdsBefore.sockets + KEEP_ALIVE_SLACK; i++) {
      await sleep(100);
      fdsAfter = await fdsOf(server.pid);
    }
    assert.equal(after.activeCalls, 0);
    assert.ok(
      after.memory.heapUsed <= before.memory.heapUsed + 4e6,
      `heap ${before.memory.heapUsed} -> ${after.memory.heapUsed}`,
    );
    // RSS moves by up to one big frame as the allocator keeps or returns pages (measured: 83-119
    // MB over twelve 16-65 MiB frames, no growth); more than that would be a leak.
    assert.ok(rssAfter <= rssBefore + 100e6, `RSS ${rssBefore} -> ${rssAfter}`);
    assert.ok(
      fdsAfter.sockets <= fdsBefore.sockets,
      `sockets ${fdsBefore.sockets} -> ${fdsAfter.sockets}`,
    );
    report("hostile load", {
      connectionsChurned: churned,
      bigFrames: 6,
      closeCodes: [...codes].map(([c, n]) => `${c}x${n}`).join(","),
      heapBeforeMB: (before.memory.heapUsed / 1e6).toFixed(1),
      heapAfterMB: (after.memory.heapUsed / 1e6).toFixed(1),
      rssBeforeMB: (rssBefore / 1e6).toFixed(1),
      rssAfterMB: (rssAfter / 1e6).toFixed(1),
      socketsBefore: fdsBefore.sockets,
      socketsAfter: fdsAfter.sockets,
    });
  } finally {
    server.kill("SIGTERM");
    await server.status;
  }
});

/** Opens and drops `total` signed sockets, 16 at a time; every other one starts a call first. */
async function churn(wsUrl: string, total: number): Promise<number> {
  let next = 0;
  const worker = async () => {
    while (next < total) {
      const i = next++;
      const callSid = makeSid("CA");
      const ws = await openSigned(wsUrl + (i % 2 ? "/stream" : "/audio"), TOKEN, callSid);
      const done = closed(ws);
      if (i % 4 < 2) {
        ws.send(connectedMessage());
        ws.send(start(makeSid("MZ"), callSid));
      }
      ws.close();
      await done;
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  return total;
}

/** Sends one text frame of `mib` MiB on a signed stream; returns the close code seen. */
async function bigFrame(wsUrl: string, mib: number): Promise<number> {
  const ws = await openSigned(wsUrl + "/stream", TOKEN);
  const done = closed(ws, 30_000);
  ws.send("x".repeat(mib * 1024 * 1024));
  return (await done).code;
}
