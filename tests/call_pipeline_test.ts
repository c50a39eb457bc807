/**
 * The call-event pipeline: publishers only ever hear committed events. A
 * store whose commit fails for one call shows that nothing of that call's
 * final is printed, sent live or delivered, that the failure is reported
 * with the final's words, and that the other call is not disturbed.
 */
import assert from "node:assert/strict";
import { CallEventPipeline } from "../lib/call/pipeline.ts";
import { CallRegistry } from "../lib/call/registry.ts";
import { storeCommit } from "../lib/call/store_commit.ts";
import { createPrinter } from "../lib/console/printer.ts";
import { webhookSettings } from "../lib/delivery/settings.ts";
import { generateSecret } from "../lib/delivery/signer.ts";
import { startOutgoingWebhooks } from "../lib/delivery/outgoing_webhooks.ts";
import { memoryLogger } from "../lib/log.ts";
import { LiveHub } from "../lib/live/live_hub.ts";
import type { TranscriptStore } from "../lib/store/db.ts";
import { SqliteStore } from "../lib/store/sqlite.ts";
import type { TranscriberEngine } from "../lib/transcribe/engine.ts";
import { WebhookReceiver } from "./webhook_receiver.ts";

/** An engine that hears one final per write: the text names the call and the write's size. */
function echoEngine(): TranscriberEngine {
  return {
    name: "echo",
    open: (track, sink) => ({
      write: (bytes) =>
        sink.onTranscript({
          type: "final",
          track,
          text: `said ${bytes.length} bytes`,
          startMs: 0,
          endMs: bytes.length,
          words: [],
        }),
      close: () => Promise.resolve(),
    }),
    whenCaughtUp: () => Promise.resolve(),
    dispose: () => Promise.resolve(),
  };
}

/** `store`, except that committing a final of `brokenCall` fails (the disk is gone, say). */
function breakFinalsOf(store: TranscriptStore, brokenCall: string): TranscriptStore & {
  attempts: number;
} {
  const broken = { attempts: 0 } as TranscriptStore & { attempts: number };
  for (const key of ["kind", "location"] as const) Object.assign(broken, { [key]: store[key] });
  for (const name of Object.getOwnPropertyNames(Object.getPrototypeOf(store))) {
    const value = (store as unknown as Record<string, unknown>)[name];
    if (typeof value === "function" && name !== "constructor") {
      Object.assign(broken, { [name]: value.bind(store) });
    }
  }
  broken.addSegment = (callSid, final, options) => {
    if (callSid !== brokenCall) return store.addSegment(callSid, final, options);
    broken.attempts++;
    return Promise.reject(new Error("disk I/O error"));
  };
  return broken;
}

Deno.test("a final whose commit fails is not printed, sent live or delivered; it is reported with its words; another call goes on", async () => {
  const secret = generateSecret();
  const receiver = await WebhookReceiver.start(secret);
  const log = memoryLogger();
  const store = new SqliteStore(":memory:");
  const broken = breakFinalsOf(store, "CAbroken");
  const webhooks = await startOutgoingWebhooks(
    webhookSettings({
      endpoints: [receiver.url],
      secret,
      events: new Set(["call-started", "final", "call-ended"]),
    }),
    store,
    log,
    { pollMs: 100 },
  );
  const live = new LiveHub({ store });
  const printed: string[] = [];
  const pipeline = new CallEventPipeline({
    commit: storeCommit(broken, { engine: "echo", within: webhooks.inTransaction, log }),
    log,
    retryMs: [1, 1],
  });
  pipeline.publish(webhooks.publisher);
  pipeline.publish(live.publisher());
  pipeline.publish(createPrinter({ format: "jsonl", write: (text) => printed.push(text) }));
  const registry = new CallRegistry(echoEngine(), { pipeline });
  try {
    const good = registry.attachStream("MZgood", { callSid: "CAgood", direction: "inbound" });
    const bad = registry.attachStream("MZbroken", { callSid: "CAbroken", direction: "inbound" });
    bad.media("inbound", 0, new Uint8Array(160));
    good.media("inbound", 0, new Uint8Array(320));
    bad.media("inbound", 20, new Uint8Array(161));
    good.media("inbound", 20, new Uint8Array(321));
    await Promise.all([
      registry.endCall("CAbroken", "stop"),
      registry.endCall("CAgood", "stop"),
    ]);
    await receiver.until(
      () => receiver.accepted.filter((r) => r.body.type === "call-ended").length === 2,
      10_000,
      "both calls' call-ended",
    );

    // The broken call: each final tried three times, then reported with its words.
    assert.equal(broken.attempts, 6);
    const errors = log.lines.filter((line) => line.startsWith("error: call CAbroken"));
    assert.equal(errors.length, 2);
    assert.match(errors[0], /a final could not be stored after 3 attempts \(disk I\/O error\)/);
    assert.match(errors[0], /it is not printed, sent live or delivered/);
    assert.match(errors[0], /"said 160 bytes"/);
    assert.match(errors[1], /"said 161 bytes"/);
    assert.deepEqual(await store.segments("CAbroken"), []);

    // Nothing of its finals printed, sent live or delivered; the failure is, as a call-error.
    const lines = printed.join("").trim().split("\n").map((line) => JSON.parse(line));
    const ofBroken = lines.filter((line) => line.callSid === "CAbroken");
    assert.deepEqual(ofBroken.map((line) => line.type), [
      "call-started",
      "call-error",
      "call-error",
      "call-ended",
    ]);
    assert.match(ofBroken[1].message, /a final could not be stored \(disk I\/O error\)/);
    assert.ok(!printed.join("").includes("said 16"), "no final of the broken call is printed");
    const liveOfBroken = (await live.missed(`${live.epoch}-0`, "CAbroken")).map((e) => e.type);
    assert.deepEqual(liveOfBroken, ["call-started", "call-error", "call-error", "call-ended"]);
    const deliveredOfBroken = receiver.accepted.filter((r) => r.body.callSid === "CAbroken")
      .map((r) => r.body.type);
    assert.deepEqual(deliveredOfBroken, ["call-started", "call-ended"]);

    // The other call: both finals stored, printed, sent live and delivered.
    assert.deepEqual((await store.segments("CAgood")).map((s) => s.text), [
      "said 320 bytes",
      "said 321 bytes",
    ]);
    assert.deepEqual(
      lines.filter((line) => line.callSid === "CAgood" && line.type === "final").map((l) => l.text),
      ["said 320 bytes", "said 321 bytes"],
    );
    const liveFinals = (await live.missed(`${live.epoch}-0`, "CAgood"))
      .filter((e) => e.type === "final").map((e) => e.data.text);
    assert.deepEqual(liveFinals, ["said 320 bytes", "said 321 bytes"]);
    const delivered = receiver.accepted.filter((r) => r.body.callSid === "CAgood")
      .map((r) => r.body.type);
    assert.deepEqual(delivered, ["call-started", "final", "final", "call-ended"]);
  } finally {
    live.close();
    await webhooks.worker.stop();
    await receiver.close();
    await store.close();
  }
});

Deno.test("a publisher hears an event only once its commit has resolved", async () => {
  const order: string[] = [];
  let release!: () => void;
  const pipeline = new CallEventPipeline({
    commit: async (event) => {
      order.push(`commit starts: ${event.type}`);
      await new Promise<void>((resolve) => (release = resolve));
      order.push(`commit done: ${event.type}`);
    },
    log: memoryLogger(),
  });
  pipeline.publish((event) => void order.push(`published: ${event.type}`));
  const call = { callSid: "CA1", label: "CA1", direction: "inbound" };
  const running = pipeline.run({ type: "call-started", call, at: 0 });
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual(order, ["commit starts: call-started"]);
  release();
  await running;
  assert.deepEqual(order, [
    "commit starts: call-started",
    "commit done: call-started",
    "published: call-started",
  ]);
});
