/**
 * Failed logins and bearer checks, counted per client: a client that got
 * {@link MAX_FAILURES} wrong in a row is refused (429, checked before the
 * token is compared) until its count drains, one failure every
 * {@link DRAIN_MS}. A guess costs a client {@link DRAIN_MS} in the long run,
 * so a DASHBOARD_TOKEN of 16 random characters stays out of reach; a right
 * token never waits unless that client is already refused. Memory is bounded:
 * past {@link MAX_CLIENTS} the longest-quiet client is forgotten.
 *
 * @module
 */

/** Wrong tokens a client may send before it is refused. */
export const MAX_FAILURES = 10;
/** One failure is forgiven this often. */
export const DRAIN_MS = 6000;
const MAX_CLIENTS = 10_000;

/** The per-client failure counts of one server. */
export class LoginLimiter {
  readonly #clients = new Map<string, { failures: number; at: number }>();
  readonly #now: () => number;

  /** `now` is the clock (tests move it). */
  constructor(now: () => number = performance.now.bind(performance)) {
    this.#now = now;
  }

  /** Seconds the client must wait before trying again; 0 when it may try now. */
  retryAfter(client: string): number {
    // Refused while more than MAX_FAILURES - 1 are left: after MAX_FAILURES quick ones, until one drains.
    const over = this.#failures(client) - (MAX_FAILURES - 1);
    return over > 0 ? Math.ceil((over * DRAIN_MS) / 1000) : 0;
  }

  /** Counts a wrong token; returns the client's failures now. */
  fail(client: string): number {
    const failures = this.#failures(client) + 1;
    this.#clients.delete(client);
    if (this.#clients.size >= MAX_CLIENTS) {
      this.#clients.delete(this.#clients.keys().next().value!);
    }
    this.#clients.set(client, { failures, at: this.#now() });
    return failures;
  }

  /** Failures left after draining. */
  #failures(client: string): number {
    const entry = this.#clients.get(client);
    if (!entry) return 0;
    const drained = (this.#now() - entry.at) / DRAIN_MS;
    const failures = Math.max(0, entry.failures - drained);
    entry.failures = failures;
    entry.at = this.#now();
    return failures;
  }
}
