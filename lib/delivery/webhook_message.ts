/**
 * What a webhook carries. The body of each event is the object
 * `--format jsonl` prints for it; `call-ended` adds the call's metadata and
 * its whole transcript, both tracks merged by time, as the `json` export has
 * them (`call`, `segments`).
 *
 * @module
 */
import type { CallEvent } from "../call/events.ts";
import { eventRecord } from "../console/printer.ts";
import type { Segment, StoredCall } from "../store/db.ts";
import { mergeByTime, transcriptRecord } from "../export/transcript_export.ts";

/** The events a webhook endpoint can ask for (`WEBHOOK_EVENTS`). */
export const WEBHOOK_EVENT_TYPES = ["call-started", "final", "call-ended", "partial"] as const;
/** One of {@link WEBHOOK_EVENT_TYPES}. */
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];
/** Sent when `WEBHOOK_EVENTS` is not set: everything but partials. */
export const DEFAULT_WEBHOOK_EVENTS: readonly WebhookEventType[] = [
  "call-started",
  "final",
  "call-ended",
];

/** One event, ready to sign and send to every endpoint. */
export interface WebhookMessage {
  /** The `webhook-id`: the same for every attempt and every endpoint, so receivers can drop repeats. */
  id: string;
  type: WebhookEventType;
  callSid: string;
  /** The JSON body, exactly as signed. */
  body: string;
}

/** A new message id (`msg_` and 32 hex digits). */
export function newMessageId(): string {
  return `msg_${crypto.randomUUID().replaceAll("-", "")}`;
}

/**
 * The message for a call event, or null for events webhooks do not carry
 * (`call-error`). `ended` is the call as stored after it ended, with its
 * segments: required for `call-ended`.
 */
export function webhookMessage(
  event: CallEvent,
  ended?: { call: StoredCall; segments: Segment[] },
): WebhookMessage | null {
  const record = eventRecord(event, true);
  if (!record || event.type === "call-error") return null;
  const type = record.type as WebhookEventType;
  if (type === "call-ended") {
    if (!ended) throw new TypeError("Cannot build call-ended webhook: the stored call is missing");
    Object.assign(record, transcriptRecord(ended.call, mergeByTime(ended.segments)));
  }
  return { id: newMessageId(), type, callSid: event.call.callSid, body: JSON.stringify(record) };
}
