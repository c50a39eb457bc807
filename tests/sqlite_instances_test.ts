/**
 * Two servers on one DATA_DIR (SQLite), as separate processes: a second
 * server starting (`deno task demo`, `call --simulate`, a stray `serve`)
 * leaves the first one's live call alone, and queues no `call-ended` for it;
 * a server killed with SIGKILL has its call swept by the next start.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { start } from "./reliability/fixtures.ts";
import { type ChildServer, spawnServer } from "./reliability/fixtures.ts";
import { openSigned } from "./helpers.ts";
import { makeSid } from "../lib/sim/twilio_sim.ts";
import { twilioMediaMessage } from "../lib/twilio/protocol.ts";

const TOKEN = "instances-test-token-5e1f0c";
const SECRET = "whsec_" + btoa("0123456789abcdef0123456789abcdef");

function startServer(dataDir: string): Promise<ChildServer> {
  return spawnServer("main.ts", ["--format", "jsonl", "--port", "0"], {
    DATA_DIR: dataDir,
    TWILIO_AUTH_TOKEN: TOKEN,
    TRANSCRIBER: "local",
    SHERPA_WORKERS: "1",
    // Webhooks to a port nothing listens on: what is queued stays in the outbox to be read.
    WEBHOOK_URL: "http://127.0.0.1:9/hooks",
    WEBHOOK_SECRET: SECRET,
  });
}

/** Opens a call's transcription stream on `server` and sends its `start` and some audio. */
async function liveCall(server: ChildServer): Promise<{ callSid: string; ws: WebSocket }> {
  const callSid = makeSid("CA");
  const ws = await openSigned(server.url.replace(/^http/, "ws") + "/stream", TOKEN, callSid);
  const streamSid = makeSid("MZ");
  ws.send(start(streamSid, callSid));
  for (let i = 0; i < 10; i++) {
    ws.send(twilioMediaMessage({
      streamSid,
      sequenceNumber: i + 2,
      track: "inbound",
      chunk: i + 1,
      timestamp: i * 20,
      payload: new Uint8Array(160).fill(0xff),
    }));
  }
  // The call is in the store once the server logged it.
  for (let i = 0; i < 100 && !server.stderr.some((l) => l.includes(`${callSid} started`)); i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { callSid, ws };
}

function callRow(dataDir: string, callSid: string) {
  const db = new DatabaseSync(join(dataDir, "callscribe.db"), { readOnly: true });
  try {
    const call = db.prepare("SELECT status, end_reason FROM calls WHERE call_sid = ?").get(
      callSid,
    ) as { status: string; end_reason: string | null };
    const ended = (db.prepare(
      "SELECT COUNT(*) AS n FROM webhook_outbox WHERE call_sid = ? AND event_type = 'call-ended'",
    ).get(callSid) as { n: number }).n;
    return { ...call, endedWebhooks: ended };
  } finally {
    db.close();
  }
}

async function stop(server: ChildServer, signal: Deno.Signal = "SIGTERM") {
  server.kill(signal);
  await server.status;
}

Deno.test("sqlite instances: a second server leaves the first one's live call alone", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "callscribe-instances-" });
  const first = await startServer(dataDir);
  let ws: WebSocket | undefined;
  try {
    const call = await liveCall(first);
    ws = call.ws;
    assert.equal(callRow(dataDir, call.callSid).status, "in-progress");

    const second = await startServer(dataDir);
    await stop(second);
    assert.ok(
      !second.stderr.some((l) => l.includes("cut off")),
      `the second server swept a live call:\n${second.stderr.join("\n")}`,
    );
    assert.deepEqual(callRow(dataDir, call.callSid), {
      status: "in-progress",
      end_reason: null,
      endedWebhooks: 0,
    });
    assert.equal(ws.readyState, WebSocket.OPEN, "the first server's stream is still open");
  } finally {
    ws?.close();
    await stop(first);
  }
});

Deno.test("sqlite instances: a killed server's call is swept by the next start", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "callscribe-instances-" });
  const first = await startServer(dataDir);
  const { callSid, ws } = await liveCall(first);
  await stop(first, "SIGKILL");
  ws.close();
  assert.equal(callRow(dataDir, callSid).status, "in-progress");

  const next = await startServer(dataDir);
  await stop(next);
  assert.ok(next.stderr.some((l) => l.includes("1 call(s) from an earlier run were cut off")));
  assert.deepEqual(callRow(dataDir, callSid), {
    status: "interrupted",
    end_reason: "server stopped",
    endedWebhooks: 1,
  });
  // Only the live server's lock file is ever left: the killed one's was removed by the sweep.
  assert.deepEqual([...Deno.readDirSync(join(dataDir, "instances"))], []);
});
