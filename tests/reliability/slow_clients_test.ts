/**
 * Slow and idle clients against the server as a child process under a low
 * open-file limit (`ulimit -n 256`): more connections than the limit allows,
 * idle, trickling their request head a line at a time, or their body a byte
 * at a time. The server closes each after its time limit, keeps answering
 * /healthz, a call that was live goes on to its end with every frame, and the
 * process never exits (before the limits it died of `Too many open files`).
 */
import assert from "node:assert/strict";
import { makeSid, simulateCall } from "../../lib/sim/twilio_sim.ts";
import { audioSet, conversation, toMulaw } from "../helpers.ts";
import { freePort, report, sleep, spawnServer } from "./fixtures.ts";

const FILE_LIMIT = 256;
const TOKEN = "slow-clients-token-0123456789";

/** A server (null engine, no laptop audio) under {@link FILE_LIMIT} with a 2 s header timeout. */
async function limitedServer(env: Record<string, string>) {
  const port = freePort();
  const dataDir = await Deno.makeTempDir({ prefix: "callscribe-slow-" });
  const server = await spawnServer("tests/reliability/child_server.ts", ["--engine", "null"], {
    TWILIO_AUTH_TOKEN: TOKEN,
    PORT: String(port),
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    DATA_DIR: dataDir,
    AUDIO_INPUT: "none",
    AUDIO_OUTPUT: "none",
    HTTP_HEADER_TIMEOUT: "2",
    ...env,
  }, { fileLimit: FILE_LIMIT });
  return { port, dataDir, server };
}

/** A raw connection that sends `chunks` one at a time, `everyMs` apart, until the server closes it. */
async function slowClient(port: number, first: string, next: string, everyMs: number) {
  const opened = performance.now();
  let conn: Deno.Conn;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
  } catch (error) {
    return { text: `cannot connect: ${(error as Error).message}`, afterMs: 0 };
  }
  const encoder = new TextEncoder();
  let open = true;
  const answer = (async () => {
    const buffer = new Uint8Array(1024);
    let text = "";
    for (;;) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) break;
      text += new TextDecoder().decode(buffer.subarray(0, n));
    }
    open = false;
    return { text, afterMs: performance.now() - opened };
  })();
  (async () => {
    if (first) await conn.write(encoder.encode(first)).catch(() => {});
    while (open && next) {
      await sleep(everyMs);
      await conn.write(encoder.encode(next)).catch(() => {});
    }
  })();
  const result = await answer;
  try {
    conn.close();
  } catch {
    // closed by the server
  }
  return result;
}

Deno.test("slow and idle connections beyond the file limit are closed in time; /healthz and a live call go on", async () => {
  const { port, dataDir, server } = await limitedServer({
    HTTP_BODY_TIMEOUT: "2",
    HTTP_IDLE_TIMEOUT: "3",
  });
  try {
    // A live call first: its streams are open before the flood.
    // Eight seconds of speech: the call outlasts the flood and its time limits.
    const speech = await conversation((await audioSet("asterisk-allison-8k")).slice(0, 2), 700);
    const call = simulateCall({
      serverUrl: server.url,
      calleeAudio: toMulaw(speech.samples.subarray(0, 8 * 8000)),
      authToken: TOKEN,
      callSid: makeSid("CA"),
    });
    call.catch(() => {}); // awaited below; a failure before that must not go unhandled
    await sleep(1000);

    const clients = [];
    for (let i = 0; i < 150; i++) clients.push(slowClient(port, "", "", 0));
    for (let i = 0; i < 150; i++) {
      clients.push(slowClient(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n", "X-Slow: 1\r\n", 300));
    }
    for (let i = 0; i < 100; i++) {
      const head = "POST /twiml/outbound HTTP/1.1\r\nHost: x\r\n" +
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 65536\r\n\r\n";
      clients.push(slowClient(port, head, "a", 300));
    }

    // While they are open: /healthz answers, at once or as soon as a slow body's time is up
    // (at the cap, slow heads make room at once; slow bodies only after their 408).
    const health: number[] = [];
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      for (;;) {
        const response = await fetch(`${server.url}/healthz`, {
          signal: AbortSignal.timeout(8000),
        });
        await response.body?.cancel();
        if (response.status === 200) break;
        assert.equal(response.status, 503, "healthz during the flood: 200, or 503 at the cap");
        assert.ok(performance.now() - started < 2000 + 1000, "healthz answered 200 in time");
        await sleep(100);
      }
      health.push(performance.now() - started);
      await sleep(300);
    }

    const results = await Promise.all(clients);
    // Every slow connection was closed by the server: within its limit, or at once (the cap).
    const slowest = Math.max(...results.map((r) => r.afterMs));
    assert.ok(slowest < 2000 + 2000 + 3000, `a slow connection stayed open ${slowest} ms`);
    const timedOut = results.filter((r) => r.text.startsWith("HTTP/1.1 408")).length;
    const busy = results.filter((r) => r.text.startsWith("HTTP/1.1 503")).length;

    const result = await call;
    for (const [stream, closed] of Object.entries(result.serverClosed)) {
      // Normal ends: the stream's own stop, or the call's end closing the other stream.
      assert.match(closed, /^1000 (stop received|call ended)$/, `the live call's ${stream} stream`);
    }
    const stats = JSON.parse(await server.command("stats"));
    // Both tracks of the call opened and closed in order, with at least every inbound frame.
    assert.equal(stats.counts.tracksOpened, 2);
    assert.equal(stats.counts.tracksClosed, 2);
    assert.ok(stats.counts.bytes >= result.framesSent * 160, JSON.stringify(stats.counts));
    assert.equal(stats.activeCalls, 0);

    // Still the same process, never out of descriptors.
    const exited = await Promise.race([
      server.status.then(() => true),
      sleep(200).then(() => false),
    ]);
    assert.equal(exited, false, `the server exited:\n${server.stderr.join("\n")}`);
    assert.ok(!server.stderr.some((line) => /Uncaught/.test(line)), server.stderr.join("\n"));
    report("slow clients", {
      connections: clients.length,
      fileLimit: FILE_LIMIT,
      status408: timedOut,
      status503: busy,
      slowestClosedMs: Math.round(slowest),
      healthzMaxMs: Math.round(Math.max(...health)),
      stderrLines: server.stderr.length,
    });
  } finally {
    server.kill();
    await server.status;
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
});

Deno.test("MAX_CONNECTIONS above what the file limit allows is lowered: the server keeps answering", async () => {
  const { port, dataDir, server } = await limitedServer({ MAX_CONNECTIONS: "1000" });
  const conns: Deno.Conn[] = [];
  try {
    for (let i = 0; i < 400; i++) {
      conns.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    }
    // Complete request heads (their bodies never come): each reaches Deno.serve behind the front.
    const head = new TextEncoder().encode(
      "POST /twiml/outbound HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n",
    );
    for (const conn of conns.slice(0, 150)) conn.write(head).catch(() => {});
    await sleep(1000);
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) {
      const response = await fetch(`${server.url}/healthz`, { signal: AbortSignal.timeout(5000) });
      statuses.push(response.status);
      await response.body?.cancel();
      await sleep(300);
    }
    // Before the cap was lowered, Deno.serve ran out of descriptors and stopped: 503 from then on.
    assert.equal(
      statuses.filter((status) => status === 200).length,
      statuses.length,
      `${statuses}`,
    );
    assert.ok(
      server.stderr.some((line) => /MAX_CONNECTIONS=1000 needs about .* using \d+/.test(line)),
      server.stderr.join("\n"),
    );
    assert.ok(
      !server.stderr.some((line) => /HTTP server stopped/.test(line)),
      server.stderr.join("\n"),
    );
  } finally {
    for (const conn of conns) {
      try {
        conn.close();
      } catch {
        // closed by the server
      }
    }
    server.kill();
    await server.status;
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
});
