/**
 * Sends the outbox to the endpoints. One loop per endpoint, so a failing
 * endpoint never holds up another; within an endpoint several calls are in
 * flight at once, each call's events one after the other (the outbox only
 * hands out a call's oldest pending event). Never on a call's audio path:
 * the store only writes a row; everything here runs on its own.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { Delivery, Outbox } from "./outbox.ts";
import { type AttemptOutcome, classifyResponse, nextAttemptAt } from "./retry_policy.ts";
import { endpointLabel, type WebhookSettings } from "./settings.ts";
import { WebhookSigner } from "./signer.ts";
import type { WebhookMessage } from "./webhook_message.ts";

/** How the worker runs (tests and benchmarks change these). */
export interface DeliveryWorkerOptions {
  log: Logger;
  /** Calls of one endpoint in flight at once (default 8). */
  concurrency?: number;
  /** How often the outbox is looked at without a wake-up: another instance's events, expired claims (default 1 s). */
  pollMs?: number;
  /** The claim's lease beyond the attempt timeout (default 30 s). */
  leaseMarginMs?: number;
  /** Jitter source (default Math.random). */
  random?: () => number;
  /** Names this worker's claims (default a random UUID). */
  owner?: string;
}

/** What the worker has done since it started. */
export interface DeliveryCounts {
  delivered: number;
  retried: number;
  failed: number;
  /** Partials sent (one attempt each) and dropped because the endpoint was busy. */
  partialsSent: number;
  partialsDropped: number;
}

const PARTIALS_IN_FLIGHT = 4;
const PRUNE_EVERY_MS = 3600_000;
/** Delivered rows are kept a day, for the API. */
const KEEP_DELIVERED_MS = 24 * 3600_000;

/** The delivery worker of one server. */
export class DeliveryWorker {
  readonly owner: string;
  readonly counts: DeliveryCounts = {
    delivered: 0,
    retried: 0,
    failed: 0,
    partialsSent: 0,
    partialsDropped: 0,
  };
  #outbox: Outbox;
  #settings: WebhookSettings;
  #signer: WebhookSigner;
  #log: Logger;
  #concurrency: number;
  #pollMs: number;
  #leaseMs: number;
  #random: () => number;
  #stopping = new AbortController();
  #wakers = new Map<string, () => void>();
  #loops: Promise<void>[] = [];
  #down = new Set<string>();
  #partials = new Map<string, number>();
  #pruneTimer?: ReturnType<typeof setInterval>;
  /** Attempts in flight, over all endpoints. */
  #attempts = 0;
  /** Per endpoint, deliveries that succeeded and are not marked yet (marked together by the loop). */
  #succeeded = new Map<string, number[]>();

  constructor(outbox: Outbox, settings: WebhookSettings, options: DeliveryWorkerOptions) {
    this.#outbox = outbox;
    this.#settings = settings;
    this.#signer = new WebhookSigner(settings.secret);
    this.#log = options.log;
    this.#concurrency = options.concurrency ?? 8;
    this.#pollMs = options.pollMs ?? 1000;
    this.#leaseMs = settings.timeoutMs + (options.leaseMarginMs ?? 30_000);
    this.#random = options.random ?? Math.random;
    this.owner = options.owner ?? crypto.randomUUID();
  }

  /** Starts one loop per endpoint. */
  start(): void {
    if (this.#loops.length) return;
    this.#loops = this.#settings.endpoints.map((endpoint) => this.#run(endpoint));
    const timer = setInterval(() => {
      this.#outbox.prune(Date.now() - KEEP_DELIVERED_MS).catch((error) =>
        this.#log.error(`cannot prune the webhook outbox: ${(error as Error).message}`)
      );
    }, PRUNE_EVERY_MS);
    Deno.unrefTimer(timer);
    this.#pruneTimer = timer;
  }

  /** New events were committed: look at the outbox now rather than at the next poll. */
  wake(): void {
    for (const wake of this.#wakers.values()) wake();
  }

  /**
   * Sends a partial once to every endpoint, never retried and never stored:
   * partials are superseded within a second. Dropped while an endpoint has
   * a few in flight, so a slow endpoint costs no memory.
   */
  sendPartial(message: WebhookMessage): void {
    if (this.#stopping.signal.aborted) return;
    for (const endpoint of this.#settings.endpoints) {
      const inFlight = this.#partials.get(endpoint) ?? 0;
      if (inFlight >= PARTIALS_IN_FLIGHT) {
        this.counts.partialsDropped++;
        continue;
      }
      this.#partials.set(endpoint, inFlight + 1);
      this.counts.partialsSent++;
      this.#post(endpoint, message.id, message.body)
        .finally(() => this.#partials.set(endpoint, (this.#partials.get(endpoint) ?? 1) - 1));
    }
  }

  /**
   * Before a shutdown: keeps sending until no event is due now (what waits
   * for a retry stays queued) or `timeoutMs` has passed.
   */
  async drain(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && !this.#stopping.signal.aborted) {
      const due = await Promise.all(this.#settings.endpoints.map((e) => this.#outbox.nextDue(e)));
      const idle = due.every((at) => at === null || at > Date.now());
      const unmarked = [...this.#succeeded.values()].some((ids) => ids.length);
      if (idle && this.#attempts === 0 && !unmarked) return;
      this.wake();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Stops claiming, waits for the attempts in flight, and returns. Pending events stay queued. */
  async stop(): Promise<void> {
    this.#stopping.abort();
    clearInterval(this.#pruneTimer);
    this.wake();
    await Promise.allSettled(this.#loops);
  }

  async #run(endpoint: string): Promise<void> {
    const inFlight = new Set<Promise<void>>();
    const signal = this.#stopping.signal;
    this.#succeeded.set(endpoint, []);
    while (!signal.aborted) {
      const woken = new Promise<void>((resolve) => this.#wakers.set(endpoint, resolve));
      let claimed: Delivery[] = [];
      const free = this.#concurrency - inFlight.size;
      try {
        // Marked before claiming: a call's next event is claimable only once this one is delivered.
        await this.#markSucceeded(endpoint);
        if (free > 0) {
          claimed = await this.#outbox.claim(endpoint, {
            limit: free,
            now: Date.now(),
            leaseMs: this.#leaseMs,
            owner: this.owner,
          });
        }
        for (const delivery of claimed) {
          const attempt: Promise<void> = this.#attempt(delivery)
            .catch((error) =>
              this.#log.error(
                `webhook delivery ${delivery.messageId} could not be recorded: ${
                  (error as Error).message
                }`,
              )
            )
            .finally(() => {
              inFlight.delete(attempt);
              this.#wakers.get(endpoint)?.();
            });
          inFlight.add(attempt);
        }
        if (claimed.length > 0 && claimed.length === free) continue;
        // With attempts in flight, their ends wake the loop; otherwise sleep until the next is due.
        const due = free > 0 && !claimed.length && !inFlight.size
          ? await this.#outbox.nextDue(endpoint)
          : null;
        const wait = due === null ? this.#pollMs : Math.min(this.#pollMs, due - Date.now());
        if (wait > 0) await sleepUntilWoken(wait, woken);
      } catch (error) {
        // The database is unreachable (PostgreSQL restarting, …): try again later.
        this.#log.error(`webhook outbox: ${(error as Error).message}`);
        await sleepUntilWoken(this.#pollMs, woken);
      }
    }
    await Promise.allSettled(inFlight);
    await this.#markSucceeded(endpoint).catch((error) =>
      this.#log.error(`webhook outbox: ${(error as Error).message}`)
    );
  }

  async #markSucceeded(endpoint: string): Promise<void> {
    const ids = this.#succeeded.get(endpoint)!;
    if (!ids.length) return;
    const batch = ids.splice(0);
    try {
      await this.#outbox.delivered(batch, Date.now());
    } catch (error) {
      ids.unshift(...batch);
      throw error;
    }
    this.counts.delivered += batch.length;
  }

  async #attempt(delivery: Delivery): Promise<void> {
    this.#attempts++;
    try {
      await this.#record(
        delivery,
        await this.#post(delivery.endpoint, delivery.messageId, delivery.body),
      );
    } finally {
      this.#attempts--;
    }
  }

  async #record(delivery: Delivery, outcome: AttemptOutcome): Promise<void> {
    const now = Date.now();
    const label = endpointLabel(delivery.endpoint);
    if (outcome.kind === "delivered") {
      this.#succeeded.get(delivery.endpoint)!.push(delivery.id);
      if (this.#down.delete(delivery.endpoint)) {
        this.#log.info(`webhook endpoint ${label} accepts events again`);
      }
      return;
    }
    if (outcome.kind === "retry") {
      const at = nextAttemptAt({
        createdAt: delivery.windowStart,
        attempts: delivery.attempts + 1,
        retryAfterMs: outcome.retryAfterMs,
        now,
        policy: this.#settings.retry,
        random: this.#random,
      });
      if (at !== null) {
        await this.#outbox.retryLater(delivery.id, at, outcome.error);
        this.counts.retried++;
        if (!this.#down.has(delivery.endpoint)) {
          this.#down.add(delivery.endpoint);
          this.#log.warn(
            `webhook endpoint ${label} is not accepting events (${outcome.error}); ` +
              "retrying with backoff, nothing is lost",
          );
        }
        return;
      }
      outcome.error += `; gave up at the end of the retry window (${
        formatWindow(this.#settings.retry.windowMs)
      })`;
    }
    await this.#outbox.failed(delivery.id, outcome.error);
    this.counts.failed++;
    this.#log.error(
      `webhook ${delivery.eventType} ${delivery.messageId} for call ${delivery.callSid} to ${label} ` +
        `failed: ${outcome.error}. Retry it from the dashboard or POST /api/webhooks/deliveries/${delivery.id}/retry`,
    );
  }

  /** One signed POST; never throws. */
  async #post(endpoint: string, id: string, body: string): Promise<AttemptOutcome> {
    const timeout = AbortSignal.timeout(this.#settings.timeoutMs);
    try {
      const response = await fetch(endpoint, {
        method: "POST",
        headers: this.#signer.headers(id, body),
        body,
        // A redirect is the endpoint's answer (3xx fails); following it would send the event elsewhere.
        redirect: "manual",
        signal: AbortSignal.any([timeout, this.#stopping.signal]),
      });
      await response.body?.cancel();
      return classifyResponse(response.status, response.headers.get("retry-after"));
    } catch (error) {
      const message = timeout.aborted
        ? `no answer within ${this.#settings.timeoutMs / 1000} s`
        : this.#stopping.signal.aborted
        ? "the server stopped during the attempt"
        : `cannot connect: ${(error as Error).message}`;
      return { kind: "retry", error: message };
    }
  }
}

function sleepUntilWoken(ms: number, woken: Promise<void>): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const slept = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  return Promise.race([slept, woken]).finally(() => clearTimeout(timer));
}

function formatWindow(ms: number): string {
  return ms % 3600_000 === 0 ? `${ms / 3600_000} h` : `${Math.round(ms / 1000)} s`;
}
