/**
 * A webhook receiver for the tests: a real HTTP server on 127.0.0.1 that
 * checks every request with the `standardwebhooks` library (what a user's
 * product would run), records what arrived, and misbehaves on demand:
 * fails a seeded share of requests with 500, answers some slowly, answers
 * 429 with `Retry-After`, and goes down (connection refused) for a stretch.
 */
import { Webhook } from "standardwebhooks";
import { seededRandom } from "../lib/seeded_random.ts";

/** One request that passed the signature check. */
export interface Received {
  id: string;
  timestamp: number;
  body: Record<string, unknown>;
  raw: string;
  /** performance.now() when it arrived (before any slow answer). */
  at: number;
  /** What the receiver answered. */
  status: number;
  /** Whether the answer was held back (`slowMs`). */
  slow: boolean;
}

/** How the receiver misbehaves (all off by default). */
export interface Chaos {
  /** Seed of the random choices (same seed, same choices). */
  seed?: number;
  /** Share of requests answered 500. */
  failShare?: number;
  /** Share answered 429 with `Retry-After: retryAfterSeconds`. */
  tooManyShare?: number;
  retryAfterSeconds?: number;
  /** Share answered after `slowMs`. */
  slowShare?: number;
  slowMs?: number;
}

/** Misbehaviour for the delivery tests: a fifth 500s, a tenth 429s (`Retry-After: 1`), some slow answers. */
export function misbehaving(seed: number, slowMs = 700): Chaos {
  return { seed, failShare: 0.2, tooManyShare: 0.1, retryAfterSeconds: 1, slowShare: 0.1, slowMs };
}

/** A small seeded generator (mulberry32). */
export const seeded = seededRandom;

/** A running receiver. */
export class WebhookReceiver {
  /** Requests with a valid signature, accepted or not, in arrival order. */
  readonly requests: Received[] = [];
  /** Requests whose signature check failed, with the library's reason. */
  readonly rejected: { reason: string; raw: string }[] = [];
  chaos: Chaos;
  /** The status answered to every valid request when set (e.g. 410). */
  fixedStatus?: number;
  #webhook: Webhook;
  #random: () => number;
  #server!: Deno.HttpServer;
  #port = 0;
  #waiters: Array<() => void> = [];

  private constructor(secret: string, chaos: Chaos) {
    this.#webhook = new Webhook(secret);
    this.chaos = chaos;
    this.#random = seeded(chaos.seed ?? 1);
  }

  /** Starts a receiver checking signatures made with `secret`. */
  static async start(secret: string, chaos: Chaos = {}): Promise<WebhookReceiver> {
    const receiver = new WebhookReceiver(secret, chaos);
    await receiver.#listen(0);
    return receiver;
  }

  /** The URL to send to. */
  get url(): string {
    return `http://127.0.0.1:${this.#port}/hooks`;
  }

  /** Requests that were answered 2xx (what the sender counts as delivered). */
  get accepted(): Received[] {
    return this.requests.filter((r) => r.status >= 200 && r.status < 300);
  }

  /** Checks a request the way a user's product does; throws the library's error when it is not valid. */
  verify(raw: string, headers: Headers): Record<string, unknown> {
    return this.#webhook.verify(raw, Object.fromEntries(headers)) as Record<string, unknown>;
  }

  /** Resolves once `predicate` holds (checked after each request), or rejects after `timeoutMs`. */
  async until(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 250));
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Refuses connections for `ms` (the port is closed), then listens on the same port again. */
  async downFor(ms: number): Promise<void> {
    await this.#server.shutdown();
    await new Promise((resolve) => setTimeout(resolve, ms));
    await this.#listen(this.#port);
  }

  /** Stops listening. */
  async close(): Promise<void> {
    await this.#server.shutdown();
  }

  async #listen(port: number): Promise<void> {
    const ready = Promise.withResolvers<void>();
    this.#server = Deno.serve({
      hostname: "127.0.0.1",
      port,
      onListen: ({ port }) => {
        this.#port = port;
        ready.resolve();
      },
    }, (request) => this.#handle(request));
    await ready.promise;
  }

  async #handle(request: Request): Promise<Response> {
    const at = performance.now();
    const raw = await request.text();
    let body: Record<string, unknown>;
    try {
      body = this.verify(raw, request.headers);
    } catch (error) {
      this.rejected.push({ reason: (error as Error).message, raw });
      this.#notify();
      return new Response("bad signature", { status: 400 });
    }
    const chaos = this.chaos;
    const roll = this.#random();
    let status = this.fixedStatus ?? 204;
    let headers: HeadersInit = {};
    if (this.fixedStatus === undefined) {
      const fail = chaos.failShare ?? 0;
      const tooMany = chaos.tooManyShare ?? 0;
      if (roll < fail) status = 500;
      else if (roll < fail + tooMany) {
        status = 429;
        headers = { "retry-after": String(chaos.retryAfterSeconds ?? 1) };
      }
    }
    const slow = this.fixedStatus === undefined && this.#random() < (chaos.slowShare ?? 0);
    if (slow) await new Promise((resolve) => setTimeout(resolve, chaos.slowMs ?? 0));
    this.requests.push({
      id: request.headers.get("webhook-id")!,
      timestamp: Number(request.headers.get("webhook-timestamp")),
      body,
      raw,
      at,
      status,
      slow,
    });
    this.#notify();
    return new Response(status === 204 ? null : "no", { status, headers });
  }

  #notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}

/**
 * Checks what a receiver accepted against what was sent: every message
 * arrived, each call's in the order sent, and repeats carry the same id and
 * the same body. `sent` is in the order each call's events were stored.
 */
export function checkArrivals(
  received: Received[],
  sent: { id: string; callSid: string }[],
): { duplicates: number } {
  const firstBody = new Map<string, string>();
  let duplicates = 0;
  const order = new Map<string, string[]>();
  for (const r of received) {
    if (r.status < 200 || r.status >= 300) continue;
    const seen = firstBody.get(r.id);
    if (seen !== undefined) {
      duplicates++;
      if (seen !== r.raw) throw new Error(`webhook-id ${r.id} arrived twice with different bodies`);
      continue;
    }
    firstBody.set(r.id, r.raw);
    const callSid = String(r.body.callSid);
    order.set(callSid, [...(order.get(callSid) ?? []), r.id]);
  }
  const missing = sent.filter((s) => !firstBody.has(s.id));
  if (missing.length) {
    throw new Error(
      `${missing.length} of ${sent.length} events never arrived, e.g. ${missing[0].id}`,
    );
  }
  const expected = new Map<string, string[]>();
  for (const s of sent) expected.set(s.callSid, [...(expected.get(s.callSid) ?? []), s.id]);
  for (const [callSid, ids] of expected) {
    const got = (order.get(callSid) ?? []).filter((id) => ids.includes(id));
    if (got.join() !== ids.join()) {
      throw new Error(
        `call ${callSid}: events arrived out of order:\n${got.join()}\nexpected\n${ids.join()}`,
      );
    }
  }
  return { duplicates };
}
