/**
 * Webhook delivery against a real HTTP receiver that checks every request
 * with the `standardwebhooks` library: signing, the retry policy, the
 * worker over the real SQLite outbox (through a receiver that fails, is
 * slow, answers 429 and goes down), failure handling and the size limit.
 */
import assert from "node:assert/strict";
import { Webhook } from "standardwebhooks";
import type { CallEvent, CallInfo } from "../lib/call/events.ts";
import { loadWebhooks } from "../app/config.ts";
import { UserError } from "../lib/user_error.ts";
import { backoffDelay } from "../lib/async/backoff.ts";
import {
  classifyResponse,
  nextAttemptAt,
  parseRetryAfter,
  type RetryPolicy,
} from "../lib/delivery/retry_policy.ts";
import { type WebhookSettings, webhookSettings } from "../lib/delivery/settings.ts";
import { generateSecret, WebhookSigner } from "../lib/delivery/signer.ts";
import { WebhookQueue } from "../lib/delivery/webhook_queue.ts";
import { DeliveryWorker } from "../lib/delivery/worker.ts";
import { memoryLogger } from "../lib/log.ts";
import { storeCommit } from "../lib/call/store_commit.ts";
import type { TranscriptStore } from "../lib/store/db.ts";
import { SqliteStore } from "../lib/store/sqlite.ts";
import { SqlOutbox } from "../lib/delivery/sql_outbox.ts";
import { checkArrivals, misbehaving, WebhookReceiver } from "./webhook_receiver.ts";
import { PostgresStore } from "../lib/store/postgres.ts";
import { startTestPostgres } from "./test_postgres.ts";

const SECRET = generateSecret();
const FAST: RetryPolicy = { windowMs: 60_000, baseMs: 50, maxMs: 400 };

function info(callSid: string): CallInfo {
  return {
    callSid,
    label: callSid.slice(-4),
    direction: "outbound-api",
    from: "+15550001",
    to: "+15550002",
  };
}

function final(callSid: string, n: number): CallEvent {
  return {
    type: "transcript",
    call: info(callSid),
    transcript: {
      type: "final",
      track: n % 2 ? "outbound" : "inbound",
      text: `utterance ${n}`,
      startMs: n * 1000,
      endMs: n * 1000 + 800,
      words: [{ text: "utterance", startMs: n * 1000, endMs: n * 1000 + 400, confidence: 0.9 }],
    },
  };
}

/** A store (SQLite in memory by default) with its outbox, queue and worker for `endpoints`. */
function harness(
  endpoints: string[],
  overrides: Partial<WebhookSettings> = {},
  store: TranscriptStore = new SqliteStore(":memory:"),
  owner?: string,
) {
  const settings = webhookSettings({
    endpoints,
    secret: SECRET,
    events: new Set(["call-started", "final", "call-ended"]),
    retry: FAST,
    timeoutMs: 400,
    ...overrides,
  });
  const log = memoryLogger();
  const outbox = new SqlOutbox(store);
  const queue = new WebhookQueue(settings, log);
  const worker = new DeliveryWorker(outbox, settings, { log, pollMs: 100, owner });
  const sent: { id: string; callSid: string }[] = [];
  const write = storeCommit(store, {
    engine: "test",
    within: async (tx, event, ended) => {
      const message = await queue.queue(outbox, tx, event, ended);
      if (message) sent.push({ id: message.id, callSid: message.callSid });
    },
  });
  const emit = async (event: CallEvent) => {
    await write(event);
    worker.wake();
  };
  return { settings, store, outbox, log, queue, worker, sent, emit };
}

Deno.test("signature: the receiver's standardwebhooks check accepts our requests, not a tampered body or an old timestamp", () => {
  const signer = new WebhookSigner(SECRET);
  const receiver = new Webhook(SECRET);
  const body = JSON.stringify({ type: "final", callSid: "CA1", text: "hello" });
  const headers = signer.headers("msg_1", body);
  assert.deepEqual(receiver.verify(body, headers), JSON.parse(body));
  assert.throws(
    () => receiver.verify(body.replace("hello", "hellO"), headers),
    /No matching signature/,
  );
  const old = signer.headers("msg_1", body, new Date(Date.now() - 10 * 60_000));
  assert.throws(() => receiver.verify(body, old), /timestamp too old/);
  assert.throws(() => new Webhook(generateSecret()).verify(body, headers), /No matching signature/);
  assert.throws(() => new WebhookSigner("whsec_c2hvcnQ="), /24 to 64 bytes/);
});

Deno.test("retry policy: exponential backoff with jitter, Retry-After honoured, the window ends it", () => {
  const policy: RetryPolicy = { windowMs: 24 * 3600_000, baseMs: 1000, maxMs: 3600_000 };
  const jittered = { initialMs: policy.baseMs, maxMs: policy.maxMs, jitter: true };
  assert.equal(backoffDelay(1, { ...jittered, random: () => 0 }), 500);
  assert.equal(backoffDelay(1, { ...jittered, random: () => 1 }), 1000);
  assert.equal(backoffDelay(4, { ...jittered, random: () => 1 }), 8000);
  assert.equal(backoffDelay(30, { ...jittered, random: () => 1 }), 3600_000);
  const delays = new Set(Array.from({ length: 20 }, () => backoffDelay(3, jittered)!));
  assert.ok(delays.size > 10, "jitter spreads the waits");
  for (const d of delays) assert.ok(d >= 2000 && d <= 4000);

  assert.equal(parseRetryAfter("7"), 7000);
  assert.equal(parseRetryAfter(new Date(60_000).toUTCString(), 30_000), 30_000);
  assert.equal(parseRetryAfter("soon"), undefined);
  assert.deepEqual(classifyResponse(204, null), { kind: "delivered" });
  assert.equal(classifyResponse(503, null).kind, "retry");
  assert.equal(classifyResponse(429, "3").kind, "retry");
  assert.equal((classifyResponse(429, "3") as { retryAfterMs: number }).retryAfterMs, 3000);
  assert.equal(classifyResponse(404, null).kind, "failed");
  assert.equal(classifyResponse(301, null).kind, "failed");

  const now = 1_000_000;
  const base = { createdAt: now, now, policy, random: () => 1 };
  assert.equal(nextAttemptAt({ ...base, attempts: 1 }), now + 1000);
  assert.equal(nextAttemptAt({ ...base, attempts: 1, retryAfterMs: 120_000 }), now + 120_000);
  // The last attempt is made as the window closes; past it the delivery fails.
  const late = now + policy.windowMs - 10;
  assert.equal(nextAttemptAt({ ...base, now: late, attempts: 20 }), now + policy.windowMs);
  assert.equal(nextAttemptAt({ ...base, now: now + policy.windowMs, attempts: 20 }), null);
  assert.equal(nextAttemptAt({ ...base, now: late, attempts: 1, retryAfterMs: 60_000 }), null);
});

Deno.test("config: WEBHOOK_URL needs a long enough whsec_ secret; events are checked; names the variable", () => {
  assert.equal(loadWebhooks({}), null);
  const url = "https://example.com/hooks";
  assert.throws(
    () => loadWebhooks({ WEBHOOK_URL: url }),
    (e) => e instanceof UserError && /WEBHOOK_URL is set but WEBHOOK_SECRET is not/.test(e.message),
  );
  assert.throws(
    () => loadWebhooks({ WEBHOOK_URL: url, WEBHOOK_SECRET: "hunter2hunter2" }),
    (e) =>
      e instanceof UserError && /^WEBHOOK_SECRET must start with whsec_/.test(e.message) &&
      !e.message.includes("hunter2"),
  );
  assert.throws(
    () => loadWebhooks({ WEBHOOK_URL: url, WEBHOOK_SECRET: "whsec_" + btoa("sixteen bytes!!!") }),
    /WEBHOOK_SECRET must hold 24 to 64 bytes of key, this one holds 16/,
  );
  assert.throws(
    () => loadWebhooks({ WEBHOOK_URL: "ftp://x", WEBHOOK_SECRET: SECRET }),
    /WEBHOOK_URL must be http\(s\) URLs/,
  );
  assert.throws(
    () =>
      loadWebhooks({
        WEBHOOK_URL: url,
        WEBHOOK_SECRET: SECRET,
        WEBHOOK_EVENTS: "final,transcript",
      }),
    /WEBHOOK_EVENTS must name events from call-started, final, call-ended, partial, got "transcript"/,
  );
  assert.throws(
    () => loadWebhooks({ WEBHOOK_URL: url, WEBHOOK_SECRET: SECRET, WEBHOOK_OUTBOX_LIMIT: "many" }),
    /WEBHOOK_OUTBOX_LIMIT must be a whole number of events above 0/,
  );
  const settings = loadWebhooks({
    WEBHOOK_URL: `${url}, http://127.0.0.1:9/b,${url}`,
    WEBHOOK_SECRET: SECRET,
    WEBHOOK_RETRY_WINDOW: "60",
  })!;
  assert.deepEqual(settings.endpoints, [url, "http://127.0.0.1:9/b"]);
  assert.deepEqual([...settings.events], ["call-started", "final", "call-ended"]);
  assert.equal(settings.retry.windowMs, 60_000);
  assert.equal(settings.timeoutMs, 10_000);
  const partials = loadWebhooks({
    WEBHOOK_URL: url,
    WEBHOOK_SECRET: SECRET,
    WEBHOOK_EVENTS: "final,partial",
  })!;
  assert.deepEqual([...partials.events], ["final", "partial"]);
});

/** Emits a call: started, `finals` finals, ended. */
async function emitCall(emit: (e: CallEvent) => Promise<void>, callSid: string, finals: number) {
  await emit({ type: "call-started", call: info(callSid), at: Date.now() });
  for (let n = 0; n < finals; n++) await emit(final(callSid, n));
  await emit({ type: "call-ended", call: info(callSid), at: Date.now(), reason: "hangup" });
}

Deno.test("worker: through 500s, slow answers, 429 with Retry-After and an outage, every event arrives signed, in order per call, repeats only with the same webhook-id", async () => {
  const receiver = await WebhookReceiver.start(SECRET, misbehaving(15));
  const h = harness([receiver.url]);
  h.worker.start();
  try {
    const calls = Array.from({ length: 6 }, (_, i) => `CA${String(i).padStart(32, "0")}`);
    for (const sid of calls.slice(0, 3)) await emitCall(h.emit, sid, 12);
    await receiver.until(() => receiver.accepted.length >= 10, 30_000, "the first deliveries");
    // Down for a stretch while more calls happen.
    const outage = receiver.downFor(1500);
    for (const sid of calls.slice(3)) await emitCall(h.emit, sid, 12);
    await outage;
    const ids = new Set(h.sent.map((s) => s.id));
    await receiver.until(
      () => h.worker.counts.delivered === ids.size,
      60_000,
      `all ${ids.size} events`,
    );
    assert.equal(receiver.rejected.length, 0, "every request carried a valid signature");
    const { duplicates } = checkArrivals(receiver.requests, h.sent);
    assert.equal(h.sent.length, 6 * 14);
    // Each call-ended carries the whole transcript, merged by time, and the call.
    const ended = receiver.accepted.find((r) => r.body.type === "call-ended")!;
    assert.equal((ended.body.segments as unknown[]).length, 12);
    assert.equal((ended.body.call as { status: string }).status, "completed");
    // 429 with Retry-After: 1 was honoured: the same event came back a second later at the earliest.
    // (A slow 429 came after the sender's timeout: it never saw that one.)
    const tooMany = receiver.requests.filter((r) => r.status === 429 && !r.slow);
    assert.ok(tooMany.length > 0, "the seed gave some 429s");
    for (const r of tooMany) {
      const later = receiver.requests.filter((n) => n.id === r.id && n.at > r.at).map((n) => n.at);
      const wait = Math.min(...later) - r.at;
      if (later.length) assert.ok(wait >= 950, `retried ${Math.round(wait)} ms after 429`);
    }
    assert.ok(receiver.requests.some((r) => r.status === 500), "the seed gave some 500s");
    assert.ok(h.worker.counts.retried > 0);
    assert.equal(h.worker.counts.failed, 0);
    assert.equal(await h.outbox.count("pending"), 0);
    console.log(
      `${ids.size} events, ${receiver.requests.length} requests, ${duplicates} duplicates (same webhook-id), ${h.worker.counts.retried} retries`,
    );
  } finally {
    await h.worker.stop();
    await h.store.close();
    await receiver.close();
  }
});

Deno.test("worker: a 4xx fails the event at once; it is listed as failed, and retried by hand it is sent", async () => {
  const receiver = await WebhookReceiver.start(SECRET);
  receiver.fixedStatus = 410;
  const h = harness([receiver.url]);
  h.worker.start();
  try {
    await emitCall(h.emit, "CA" + "f".repeat(32), 1);
    // A failed event no longer holds up the call: each of its three events is tried once.
    await receiver.until(() => h.worker.counts.failed === 3, 10_000, "every event to fail once");
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(receiver.requests.length, 3, "a 4xx is not retried");
    const failed = await h.outbox.list({ status: "failed" });
    assert.equal(failed.total, 3);
    assert.match(failed.deliveries[0].lastError!, /HTTP 410 \(not retried/);
    assert.ok(h.log.lines.some((l) => l.startsWith("error: webhook") && l.includes("HTTP 410")));
    receiver.fixedStatus = undefined;
    assert.equal(await h.outbox.retryFailed(Date.now()), 3);
    h.worker.wake();
    await receiver.until(() => receiver.accepted.length === 3, 10_000, "the retried events");
    checkArrivals(receiver.requests, h.sent);
    assert.equal(await h.outbox.count("failed"), 0);
  } finally {
    await h.worker.stop();
    await h.store.close();
    await receiver.close();
  }
});

Deno.test("worker: an endpoint that is down does not hold up another; its events fail at the end of the retry window", async () => {
  const healthy = await WebhookReceiver.start(SECRET);
  const dead = await WebhookReceiver.start(SECRET);
  await dead.close();
  const h = harness([dead.url, healthy.url], { retry: { windowMs: 1500, baseMs: 50, maxMs: 200 } });
  h.worker.start();
  try {
    for (let i = 0; i < 3; i++) await emitCall(h.emit, `CA${i}${"0".repeat(31)}`, 5);
    await healthy.until(
      () => healthy.accepted.length === h.sent.length,
      10_000,
      "the healthy endpoint",
    );
    checkArrivals(healthy.requests, h.sent);
    await healthy.until(
      () => h.worker.counts.failed === h.sent.length,
      10_000,
      "the window to end",
    );
    const failed = await h.outbox.list({ status: "failed", limit: 200 });
    assert.equal(failed.total, h.sent.length);
    for (const d of failed.deliveries) {
      assert.equal(d.endpoint, dead.url);
      assert.match(d.lastError!, /cannot connect: .*; gave up at the end of the retry window/);
    }
    // Each call's first event was retried until the window closed; the ones behind it, as old, fail on their first try.
    assert.ok(
      failed.deliveries.filter((d) => d.attempts > 3).length >= 3,
      "retried before giving up",
    );
    assert.ok(h.log.lines.some((l) => l.includes("is not accepting events")));
  } finally {
    await h.worker.stop();
    await h.store.close();
    await healthy.close();
  }
});

Deno.test("worker: an answer slower than the timeout is retried; the receiver drops the repeat by webhook-id", async () => {
  const receiver = await WebhookReceiver.start(SECRET, { slowShare: 1, slowMs: 600 });
  const h = harness([receiver.url], { timeoutMs: 200 });
  h.worker.start();
  try {
    await h.emit({ type: "call-started", call: info("CA" + "5".repeat(32)), at: Date.now() });
    await receiver.until(() => receiver.requests.length >= 2, 10_000, "a retry after the timeout");
    receiver.chaos = {};
    await receiver.until(() => h.worker.counts.delivered === 1, 10_000, "the delivery");
    const ids = new Set(receiver.requests.map((r) => r.id));
    assert.equal(ids.size, 1, "every attempt carried the same webhook-id");
    assert.ok(receiver.requests.length >= 2);
    assert.match((await h.outbox.list({})).deliveries[0].status, /delivered/);
  } finally {
    await h.worker.stop();
    await h.store.close();
    await receiver.close();
  }
});

Deno.test("worker: draining before a shutdown sends what is due, then stop leaves nothing in flight", async () => {
  const receiver = await WebhookReceiver.start(SECRET);
  const h = harness([receiver.url]);
  h.worker.start();
  try {
    await emitCall(h.emit, "CA" + "d".repeat(32), 3);
    await h.worker.drain(5000);
    await h.worker.stop();
    assert.equal(receiver.accepted.length, 5);
    checkArrivals(receiver.requests, h.sent);
    assert.equal(await h.outbox.count("pending"), 0);
  } finally {
    await h.worker.stop();
    await h.store.close();
    await receiver.close();
  }
});

Deno.test("queue: a full outbox drops new events for that endpoint with a loud warning", async () => {
  const h = harness(["http://127.0.0.1:9/never"], { outboxLimit: 3 });
  try {
    await emitCall(h.emit, "CA" + "1".repeat(32), 4);
    assert.equal(await h.outbox.pendingCount("http://127.0.0.1:9/never"), 3);
    assert.equal(h.sent.length, 3);
    const warnings = h.log.lines.filter((l) => l.includes("webhook outbox for"));
    assert.equal(warnings.length, 1, "one warning, not one per event");
    assert.match(
      warnings[0],
      /^warn: !!! .*is full \(3 undelivered events, WEBHOOK_OUTBOX_LIMIT=3\): NEW EVENTS FOR IT ARE DROPPED/,
    );
    // The transcript itself is stored as always.
    assert.equal((await h.store.segments("CA" + "1".repeat(32))).length, 4);
  } finally {
    await h.store.close();
  }
});

Deno.test("outbox on PostgreSQL: two instances share one outbox, no event is sent by both, a dead instance's claims are taken over", async () => {
  const pg = await startTestPostgres();
  // Answers take 50 ms, so that neither instance alone can hold every call's next event.
  const receiver = await WebhookReceiver.start(SECRET, { slowShare: 1, slowMs: 50 });
  const stores: PostgresStore[] = [];
  const workers: DeliveryWorker[] = [];
  try {
    const url = await pg.createDatabase();
    stores.push(await PostgresStore.connect(url), await PostgresStore.connect(url));
    // Two instances, each with its own connections, writing calls and sending from one table.
    const a = harness([receiver.url], {}, stores[0], "instance-a");
    const b = harness([receiver.url], {}, stores[1], "instance-b");
    workers.push(a.worker, b.worker);
    const calls = Array.from({ length: 24 }, (_, i) => `CA${String(i).padStart(32, "7")}`);
    await Promise.all(calls.map((sid, i) => emitCall((i % 2 ? a : b).emit, sid, 2)));
    a.worker.start();
    b.worker.start();
    const sent = [...a.sent, ...b.sent];
    await receiver.until(
      () => a.worker.counts.delivered + b.worker.counts.delivered === sent.length,
      30_000,
      `all ${sent.length} events`,
    );
    assert.equal(receiver.rejected.length, 0);
    const { duplicates } = checkArrivals(receiver.requests, sent);
    assert.equal(duplicates, 0, "no event was sent twice");
    assert.equal(receiver.requests.length, sent.length);
    assert.ok(
      a.worker.counts.delivered > 0 && b.worker.counts.delivered > 0,
      "both instances sent",
    );
    console.log(
      `${sent.length} events: ${a.worker.counts.delivered} sent by A, ${b.worker.counts.delivered} by B`,
    );

    // An instance that claims an event and dies: its claim lapses and the other sends it.
    await a.worker.stop();
    await b.worker.stop();
    receiver.chaos = {};
    const before = receiver.requests.length;
    await emitCall(b.emit, "CA" + "9".repeat(32), 2);
    const claimedAt = performance.now();
    const claimed = await a.outbox.claim(receiver.url, {
      limit: 10,
      now: Date.now(),
      leaseMs: 500,
      owner: "instance-a",
    });
    assert.equal(claimed.length, 1, "only the call's first event (the others wait behind it)");
    const survivor = new DeliveryWorker(b.outbox, b.settings, { log: b.log, pollMs: 100 });
    workers.push(survivor);
    survivor.start();
    await receiver.until(
      () => receiver.requests.length === before + 4,
      10_000,
      "the taken-over events",
    );
    assert.equal(receiver.requests[before].id, claimed[0].messageId);
    assert.ok(receiver.requests[before].at - claimedAt >= 450, "sent once the dead claim lapsed");
    checkArrivals(receiver.requests, [...sent, ...b.sent.slice(-4)]);
  } finally {
    for (const worker of workers) await worker.stop();
    for (const store of stores) await store.close();
    await receiver.close();
    await pg.stop();
  }
});
