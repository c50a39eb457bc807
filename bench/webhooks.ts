/**
 * Webhook delivery latency: final committed (with its outbox row) → the
 * request received and its signature checked by a receiver, p50/p99, with
 * many calls storing finals at once. The real SQLite store (a file, synced
 * per commit), the real outbox, worker and signing, and a receiver that
 * verifies with `standardwebhooks` and answers 204.
 *
 * @module
 */
import { Webhook } from "standardwebhooks";
import type { CallEvent, CallInfo } from "../lib/call/events.ts";
import { SqlOutbox } from "../lib/delivery/sql_outbox.ts";
import { webhookSettings } from "../lib/delivery/settings.ts";
import { generateSecret } from "../lib/delivery/signer.ts";
import { WebhookQueue } from "../lib/delivery/webhook_queue.ts";
import { DeliveryWorker } from "../lib/delivery/worker.ts";
import { memoryLogger } from "../lib/log.ts";
import { storeCommit } from "../lib/call/store_commit.ts";
import { SqliteStore } from "../lib/store/sqlite.ts";
import { progress, quantile, sleep } from "./common.ts";

/** What the webhook phase measured. */
export interface WebhookBench {
  calls: number;
  events: number;
  eventsPerSecond: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  latencyMaxMs: number;
}

/**
 * `calls` calls each store a final every `everyMs` for `seconds`; every
 * final goes to one endpoint.
 */
export async function webhookPhase(
  options: { calls: number; seconds: number; everyMs: number; dir: string },
): Promise<WebhookBench> {
  progress(`webhooks: ${options.calls} calls, a final each every ${options.everyMs} ms`);
  const secret = generateSecret();
  const verifier = new Webhook(secret);
  const received = new Map<string, number>();
  const receiver = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (request) => {
      const raw = await request.text();
      verifier.verify(raw, Object.fromEntries(request.headers));
      const id = request.headers.get("webhook-id")!;
      if (!received.has(id)) received.set(id, performance.now());
      return new Response(null, { status: 204 });
    },
  );
  const settings = webhookSettings({
    endpoints: [`http://127.0.0.1:${receiver.addr.port}/hooks`],
    secret,
    events: new Set(["final"]),
  });
  const store = new SqliteStore(`${options.dir}/webhooks.db`);
  const log = memoryLogger();
  const outbox = new SqlOutbox(store);
  const queue = new WebhookQueue(settings, log);
  const worker = new DeliveryWorker(outbox, settings, { log });
  const stored = new Map<string, number>();
  /** Per call, the id of its latest queued event. */
  const queued = new Map<string, string>();
  const write = storeCommit(store, {
    engine: "bench",
    within: async (tx, event, ended) => {
      const message = await queue.queue(outbox, tx, event, ended);
      if (message) queued.set(event.call.callSid, message.id);
    },
  });
  worker.start();
  const started = performance.now();
  const call = async (n: number) => {
    const info: CallInfo = {
      callSid: `CA${String(n).padStart(32, "0")}`,
      label: "",
      direction: "outbound-api",
    };
    await write({ type: "call-started", call: info, at: Date.now() });
    // Spread the calls' finals over the interval.
    await sleep((n / options.calls) * options.everyMs);
    for (let i = 0; performance.now() - started < options.seconds * 1000; i++) {
      const event: CallEvent = {
        type: "transcript",
        call: info,
        transcript: {
          type: "final",
          track: i % 2 ? "outbound" : "inbound",
          text: "the quick brown fox jumps over the lazy dog",
          startMs: i * options.everyMs,
          endMs: i * options.everyMs + 1800,
          words: [],
        },
      };
      await write(event);
      // Committed now.
      stored.set(queued.get(info.callSid)!, performance.now());
      worker.wake();
      await sleep(options.everyMs);
    }
  };
  await Promise.all(Array.from({ length: options.calls }, (_, n) => call(n)));
  const deadline = performance.now() + 30_000;
  while ([...stored.keys()].some((id) => !received.has(id)) && performance.now() < deadline) {
    await sleep(50);
  }
  const elapsed = (performance.now() - started) / 1000;
  await worker.stop();
  await store.close();
  await receiver.shutdown();
  const latencies = [...stored].filter(([id]) => received.has(id)).map(([id, at]) =>
    received.get(id)! - at
  );
  if (latencies.length < stored.size) {
    throw new Error(`bench: ${stored.size - latencies.length} webhooks never arrived`);
  }
  return {
    calls: options.calls,
    events: latencies.length,
    eventsPerSecond: latencies.length / elapsed,
    latencyP50Ms: quantile(latencies, 0.5),
    latencyP99Ms: quantile(latencies, 0.99),
    latencyMaxMs: Math.max(...latencies),
  };
}
