/**
 * The one backoff: how long to wait before the next attempt of something that
 * failed (an ffmpeg restart, a reconnect, a webhook delivery). Wait with
 * `sleep` (./sleep.ts) and an AbortSignal, so that shutting down cancels the
 * wait.
 *
 * @module
 */
/** An exponential backoff: `initialMs`, doubling, at most `maxMs`, for `attempts` attempts. */
export interface BackoffOptions {
  /** The first delay (default 250 ms). */
  initialMs?: number;
  /** The longest delay (default 5000 ms). */
  maxMs?: number;
  /** How many attempts before giving up (default: never give up). */
  attempts?: number;
  /**
   * "Equal jitter": half of each delay fixed, half random, so that many
   * senders failing at once (an endpoint's outage) do not all come back at
   * once (default: none, every delay exact).
   */
  jitter?: boolean;
  /** The jitter's random numbers in [0, 1) (default `Math.random`). */
  random?: () => number;
}

/** The delay before attempt `attempt` (1 for the first retry), or undefined once attempts are used up. */
export function backoffDelay(attempt: number, options: BackoffOptions = {}): number | undefined {
  if (attempt > (options.attempts ?? Infinity)) return undefined;
  const delay = Math.min(options.maxMs ?? 5000, (options.initialMs ?? 250) * 2 ** (attempt - 1));
  if (!options.jitter) return delay;
  return delay / 2 + (options.random ?? Math.random)() * (delay / 2);
}
