/**
 * What webhook delivery is configured with (`WEBHOOK_*`, parsed and
 * checked by `config.ts`).
 *
 * @module
 */
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from "./retry_policy.ts";
import type { WebhookEventType } from "./webhook_message.ts";

/** Webhook delivery settings. */
export interface WebhookSettings {
  /** Every event goes to each of these (`WEBHOOK_URL`, comma-separated). */
  endpoints: readonly string[];
  /** `whsec_…` (`WEBHOOK_SECRET`). Never logged. */
  secret: string;
  /** The events sent (`WEBHOOK_EVENTS`); `partial` only when named. */
  events: ReadonlySet<WebhookEventType>;
  /** Most undelivered events kept per endpoint (`WEBHOOK_OUTBOX_LIMIT`); past it new ones are dropped, loudly. */
  outboxLimit: number;
  /** An attempt with no answer after this long is retried (10 s). */
  timeoutMs: number;
  /** How long and how often an event is retried (`WEBHOOK_RETRY_WINDOW`, `WEBHOOK_BACKOFF_BASE`). */
  retry: RetryPolicy;
}

/** Default of `WEBHOOK_OUTBOX_LIMIT`. */
export const DEFAULT_OUTBOX_LIMIT = 100_000;
/** How long one attempt may take. */
export const ATTEMPT_TIMEOUT_MS = 10_000;

/** Settings with the defaults filled in. */
export function webhookSettings(
  settings: Pick<WebhookSettings, "endpoints" | "secret" | "events"> & Partial<WebhookSettings>,
): WebhookSettings {
  return {
    outboxLimit: DEFAULT_OUTBOX_LIMIT,
    timeoutMs: ATTEMPT_TIMEOUT_MS,
    retry: DEFAULT_RETRY_POLICY,
    ...settings,
  };
}

/** A URL as logs may show it: no user info, no query (either may hold a credential). */
export function endpointLabel(url: string): string {
  const parsed = new URL(url);
  return `${parsed.origin}${parsed.pathname}`;
}
