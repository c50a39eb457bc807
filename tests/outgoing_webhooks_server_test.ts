/**
 * Webhooks from a running server: `deno task serve` refuses bad settings
 * before anything else; a server killed with SIGKILL mid-call and started
 * again delivers every event of every call, in order per call, signed,
 * through a receiver that fails, is slow, answers 429 and goes down (the
 * killed call too: its call-ended says interrupted, with its finals); failed
 * deliveries are listed, counted on the dashboard and retried from the API
 * and the dashboard.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { generateSecret } from "../lib/delivery/signer.ts";
import { makeSid, simulateCall } from "../lib/sim/twilio_sim.ts";
import { NullEngine } from "../lib/transcribe/null_engine.ts";
import { SqliteStore } from "../lib/store/sqlite.ts";
import { PostgresStore } from "../lib/store/postgres.ts";
import { startTestPostgres } from "./test_postgres.ts";
import { SqlOutbox } from "../lib/delivery/sql_outbox.ts";
import { audioSet, conversation, testServer, toMulaw } from "./helpers.ts";
import { checkArrivals, misbehaving, WebhookReceiver } from "./webhook_receiver.ts";
import { readLines } from "./read_lines.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const SECRET = generateSecret();

Deno.test("serve: bad webhook settings stop the server before anything starts, naming the variable", async () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ WEBHOOK_URL: "https://example.com/h" }, /WEBHOOK_URL is set but WEBHOOK_SECRET is not/],
    [
      { WEBHOOK_URL: "https://example.com/h", WEBHOOK_SECRET: "whsec_" + btoa("too short") },
      /WEBHOOK_SECRET must hold 24 to 64 bytes/,
    ],
    [
      { WEBHOOK_URL: "https://example.com/h", WEBHOOK_SECRET: SECRET, WEBHOOK_EVENTS: "finals" },
      /WEBHOOK_EVENTS must name events from/,
    ],
  ];
  for (const [env, message] of cases) {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "main.ts", "--port", "0"],
      cwd: ROOT,
      // A model that is not there: reaching the model lookup (or a download) would say so instead.
      env: {
        NO_COLOR: "1",
        TWILIO_AUTH_TOKEN: "t".repeat(32),
        SHERPA_MODEL_DIR: "/nonexistent",
        ...env,
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 2, stderr);
    assert.match(stderr, message);
    assert.doesNotMatch(stderr, /model|listening/i);
    assert.ok(!stderr.includes(SECRET.slice(6)), "the secret is never printed");
  }
});

interface Child {
  process: Deno.ChildProcess;
  url: Promise<string>;
  stdout: string[];
  stderr: string[];
}

function startChild(dataDir: string, env: Record<string, string>): Child {
  const process = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", "--format", "jsonl", "--port", "0"],
    cwd: ROOT,
    env: {
      NO_COLOR: "1",
      DATA_DIR: dataDir,
      HOST: "127.0.0.1",
      PUBLIC_URL: "",
      NGROK_AUTHTOKEN: "",
      AUDIO_INPUT: "none",
      ...env,
    },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const child: Child = { process, url: Promise.resolve(""), stdout: [], stderr: [] };
  const listening = Promise.withResolvers<string>();
  child.url = listening.promise;
  (async () => {
    for await (const chunk of process.stderr.pipeThrough(new TextDecoderStream())) {
      child.stderr.push(chunk);
      const match = /listening on (http:\/\/[^\s]+)/.exec(child.stderr.join(""));
      if (match) listening.resolve(match[1]);
    }
    listening.reject(new Error(`the server exited before listening:\n${child.stderr.join("")}`));
  })();
  (async () => {
    for await (const line of readLines(process.stdout)) child.stdout.push(line);
  })();
  return child;
}

const printedFinals = (child: Child) =>
  child.stdout.map((l) => JSON.parse(l)).filter((l) => l.type === "final");

for (const backend of ["SQLite", "PostgreSQL"] as const) {
  Deno.test(`webhooks on ${backend}: across SIGKILL and restart mid-call and a receiver that fails, is slow, answers 429 and goes down, every event arrives in order, signed, and the killed call ends as interrupted`, () =>
    killAndRestart(backend));
}

async function killAndRestart(backend: "SQLite" | "PostgreSQL") {
  const pg = backend === "PostgreSQL" ? await startTestPostgres() : null;
  const databaseUrl = pg ? await pg.createDatabase() : "";
  const receiver = await WebhookReceiver.start(SECRET, misbehaving(7, 800));
  const dataDir = await Deno.makeTempDir({ prefix: "callscribe-webhooks-" });
  const token = "webhook-test-token-0123456789";
  const env = {
    TWILIO_AUTH_TOKEN: token,
    WEBHOOK_URL: receiver.url,
    WEBHOOK_SECRET: SECRET,
    WEBHOOK_BACKOFF_BASE: "100",
    DATABASE_URL: databaseUrl,
    // PostgreSQL: the second instance marks the killed one's call interrupted 2 s after its last beat.
    INSTANCE_TIMEOUT: "2",
  };
  const speech = await conversation((await audioSet("asterisk-allison-8k")).slice(9, 14), 700);
  let first: Child | null = startChild(dataDir, env);
  let second: Child | null = null;
  const killedCall = makeSid("CA");
  const laterCall = makeSid("CA");
  try {
    // Real time: the kill comes while the call is still streaming.
    const call = simulateCall({
      serverUrl: await first.url,
      calleeAudio: toMulaw(speech.samples),
      authToken: token,
      callSid: killedCall,
    }).catch((error) => error);
    await receiver.until(() => printedFinals(first!).length >= 1, 60_000, "a first final");
    // The receiver goes down for a stretch while the call goes on.
    await receiver.downFor(1500);
    await receiver.until(() => printedFinals(first!).length >= 3, 60_000, "three finals");
    first.process.kill("SIGKILL");
    assert.equal((await first.process.status).signal, "SIGKILL");
    const printedBeforeKill = printedFinals(first);
    first = null;
    await call;

    second = startChild(dataDir, env);
    const url = await second.url;
    await simulateCall({
      serverUrl: url,
      calleeAudio: toMulaw(speech.samples),
      authToken: token,
      callSid: laterCall,
      fast: true,
    });
    // The outbox drains: nothing pending, nothing failed (the API says so).
    const deliveries = async (status: string) =>
      (await (await fetch(`${url}/api/webhooks/deliveries?status=${status}`)).json()).total;
    const deadline = Date.now() + 120_000;
    const killedCallEnded = () =>
      receiver.accepted.some((r) => r.body.callSid === killedCall && r.body.type === "call-ended");
    while (
      (await deliveries("pending")) > 0 || !second.stdout.some((l) => l.includes("call-ended")) ||
      !killedCallEnded()
    ) {
      assert.ok(
        Date.now() < deadline,
        "within 2 minutes the outbox did not drain, or the killed call got no call-ended",
      );
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    assert.equal(await deliveries("failed"), 0);
    second.process.kill("SIGTERM");
    assert.equal((await second.process.status).code, 0);
    second = null;

    const store = pg ? await PostgresStore.connect(databaseUrl) : SqliteStore.open(dataDir);
    let sent;
    try {
      sent = (await new SqlOutbox(store).list({ limit: 200 })).deliveries.reverse();
    } finally {
      await store.close();
    }
    assert.equal(receiver.rejected.length, 0, "every request carried a valid signature");
    const { duplicates } = checkArrivals(
      receiver.requests,
      sent.map((d) => ({ id: d.messageId, callSid: d.callSid })),
    );
    const arrived = receiver.accepted.map((r) => r.body);
    // Every final printed before the kill came as a webhook, with the body jsonl printed.
    for (const final of printedBeforeKill) {
      assert.ok(
        arrived.some((b) => JSON.stringify(b) === JSON.stringify(final)),
        `printed but never sent: ${JSON.stringify(final)}`,
      );
    }
    const types = (sid: string) => arrived.filter((b) => b.callSid === sid).map((b) => b.type);
    assert.equal(types(killedCall)[0], "call-started");
    // The killed call ends too: marked interrupted by the next server (SQLite) or by the other
    // instance's sweep (PostgreSQL), its call-ended queued in that transaction, with its words.
    assert.equal(types(killedCall).at(-1), "call-ended");
    const interrupted = arrived.find((b) => b.callSid === killedCall && b.type === "call-ended")!;
    assert.equal((interrupted.call as { status: string }).status, "interrupted");
    assert.equal(interrupted.reason, pg ? "instance stopped" : "server stopped");
    const killedFinals = new Map(
      receiver.accepted.filter((r) => r.body.callSid === killedCall && r.body.type === "final")
        .map((r) => [r.id, r.body.text]), // a repeat has the same webhook-id
    );
    assert.deepEqual(
      (interrupted.segments as Array<{ text: string }>).map((s) => s.text),
      [...killedFinals.values()],
    );
    assert.deepEqual(types(laterCall).at(-1), "call-ended");
    const ended = arrived.find((b) => b.callSid === laterCall && b.type === "call-ended")!;
    assert.equal((ended.call as { callSid: string }).callSid, laterCall);
    assert.equal(
      (ended.segments as unknown[]).length,
      types(laterCall).filter((t) => t === "final").length,
    );
    assert.ok(
      receiver.requests.some((r) => r.status === 429) &&
        receiver.requests.some((r) => r.status === 500),
    );
    console.log(
      `${backend}: ${sent.length} events (${printedBeforeKill.length} finals printed before the kill), ` +
        `${receiver.requests.length} requests, ${duplicates} repeats with the same webhook-id`,
    );
  } finally {
    for (const child of [first, second]) {
      if (!child) continue;
      try {
        child.process.kill("SIGKILL");
      } catch {
        // already gone
      }
      await child.process.status;
    }
    await receiver.close();
    await pg?.stop();
  }
}

Deno.test("webhooks: a failed delivery is listed by the API, counted on the dashboard, and retried from the API and the dashboard", async () => {
  const receiver = await WebhookReceiver.start(SECRET);
  receiver.fixedStatus = 422;
  const server = await testServer({
    engine: new NullEngine(),
    env: {
      WEBHOOK_URL: receiver.url,
      WEBHOOK_SECRET: SECRET,
      WEBHOOK_EVENTS: "call-started,call-ended",
    },
  });
  try {
    const callSid = makeSid("CA");
    server.registry.attachStream(makeSid("MZ"), { callSid, direction: "outbound-api" });
    await server.registry.endCall(callSid, "hangup");
    const api = (path: string, init?: RequestInit) => fetch(`${server.url}${path}`, init);
    let failed;
    const deadline = Date.now() + 10_000;
    do {
      await new Promise((resolve) => setTimeout(resolve, 50));
      failed = await (await api("/api/webhooks/deliveries?status=failed")).json();
    } while (failed.total < 2 && Date.now() < deadline);
    assert.equal(failed.total, 2);
    assert.deepEqual(failed.deliveries.map((d: { event: string }) => d.event), [
      "call-ended",
      "call-started",
    ]);
    assert.match(failed.deliveries[0].lastError, /HTTP 422/);
    assert.equal(failed.deliveries[0].body.callSid, callSid);
    assert.equal((await api("/api/webhooks/deliveries?status=lost")).status, 400);

    const dashboard = await (await api("/")).text();
    assert.match(dashboard, /data-webhooks-failed>2</);
    assert.match(dashboard, /Retry failed/);

    receiver.fixedStatus = undefined;
    const one = await api(`/api/webhooks/deliveries/${failed.deliveries[1].id}/retry`, {
      method: "POST",
    });
    assert.deepEqual(await one.json(), { retried: 1 });
    await receiver.until(() => receiver.accepted.length === 1, 10_000, "the retried call-started");
    assert.equal(
      (await api("/api/webhooks/deliveries/999999/retry", { method: "POST" })).status,
      404,
    );
    // The dashboard's button retries the rest.
    const form = await api("/webhooks/retry", { method: "POST", redirect: "manual" });
    assert.equal(form.status, 303);
    await receiver.until(() => receiver.accepted.length === 2, 10_000, "the retried call-ended");
    assert.deepEqual(receiver.accepted.map((r) => r.body.type), ["call-started", "call-ended"]);
    assert.match(await (await api("/")).text(), /data-webhooks-failed>0</);
  } finally {
    await server.shutdown();
    await receiver.close();
  }
});
