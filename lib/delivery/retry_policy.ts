/**
 * When a webhook delivery is tried again. One policy for every endpoint:
 * 2xx is delivered; a timeout, a connection error, 429 and 5xx are tried
 * again after an exponential backoff with jitter (the one backoff,
 * `lib/async/backoff.ts`; or the endpoint's `Retry-After`, when later) until
 * the retry window ends; any other status fails the delivery at once.
 *
 * @module
 */
import { backoffDelay } from "../async/backoff.ts";

/** How long a webhook is retried and how the waits grow. */
export interface RetryPolicy {
  /** Retries stop this long after the event was stored (default 24 h). */
  windowMs: number;
  /** The first retry waits about this long; each next one twice as long (default 1 s). */
  baseMs: number;
  /** No single wait is longer than this (default 1 h). */
  maxMs: number;
}

/** The policy users get. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  windowMs: 24 * 3600_000,
  baseMs: 1000,
  maxMs: 3600_000,
};

/** What one attempt came to. */
export type AttemptOutcome =
  | { kind: "delivered" }
  | { kind: "retry"; retryAfterMs?: number; error: string }
  | { kind: "failed"; error: string };

/** Classifies an HTTP answer; `retryAfter` is its `Retry-After` header. */
export function classifyResponse(
  status: number,
  retryAfter: string | null,
  now = Date.now(),
): AttemptOutcome {
  if (status >= 200 && status < 300) return { kind: "delivered" };
  if (status === 429 || status >= 500) {
    return {
      kind: "retry",
      retryAfterMs: parseRetryAfter(retryAfter, now),
      error: `HTTP ${status}`,
    };
  }
  return { kind: "failed", error: `HTTP ${status} (not retried: only 429 and 5xx are)` };
}

/**
 * `Retry-After` in ms from `now`: delay-seconds or an HTTP-date (RFC 9110
 * §10.2.3); undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * When to try again after a retryable outcome, or null when the retry window
 * is over (the delivery then fails). The last attempt is made as the window
 * closes; an endpoint asking (`Retry-After`) for a time past it fails now.
 */
export function nextAttemptAt(
  options: {
    createdAt: number;
    attempts: number;
    retryAfterMs?: number;
    now: number;
    policy: RetryPolicy;
    random?: () => number;
  },
): number | null {
  const windowEnd = options.createdAt + options.policy.windowMs;
  if (options.now >= windowEnd) return null;
  const asked = options.retryAfterMs ?? 0;
  if (options.now + asked > windowEnd) return null;
  // Jitter, so that endpoints coming back from an outage are not hit by every sender at once.
  const backoff = backoffDelay(options.attempts, {
    initialMs: options.policy.baseMs,
    maxMs: options.policy.maxMs,
    jitter: true,
    random: options.random,
  })!;
  // Whole ms: the outbox keeps times as integers.
  return Math.round(Math.min(windowEnd, options.now + Math.max(backoff, asked)));
}
