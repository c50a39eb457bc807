/**
 * What Twilio tells us about each call's progress through status callbacks:
 * call progress (initiated, ringing, answered, completed + duration) and the
 * transcription stream's events (started, stopped, error). Kept per call,
 * bounded, and each change is logged.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import { printable } from "../text/printable.ts";

/** One call's progress as reported by Twilio. */
export interface CallProgress {
  callSid: string;
  direction?: string;
  from?: string;
  to?: string;
  /** Progress events in arrival order: initiated, ringing, answered, completed, busy, … */
  events: string[];
  /** Seconds, from the final callback's `CallDuration`. */
  durationSeconds?: number;
  /** Stream status events: `stream-started`, `stream-stopped`, `stream-error`. */
  streamEvents: Array<{ streamSid: string; event: string; error?: string }>;
}

const EVENT_NAMES: Record<string, string> = { "in-progress": "answered" };

/** A `CallStatus` as people say it: the name of the `StatusCallbackEvent` that reports it. */
export function statusWord(status: string): string {
  return EVENT_NAMES[status] ?? status;
}

/** Statuses after which a call is over. */
export const FINAL_CALL_STATUSES = new Set([
  "completed",
  "busy",
  "failed",
  "no-answer",
  "canceled",
]);

const MEMORY = 1000;

/** Call progress by Call SID. */
export class CallStatusBook {
  #calls = new Map<string, CallProgress>();
  #log: Logger;

  constructor(log: Logger) {
    this.#log = log;
  }

  /** The progress of a call, if Twilio reported any. */
  get(callSid: string): CallProgress | undefined {
    return this.#calls.get(callSid);
  }

  /** Records a call status callback (Twilio's form parameters). */
  recordCall(params: Record<string, string>): CallProgress {
    const call = this.#call(params.CallSid);
    call.direction ??= params.Direction;
    call.from ??= params.From;
    call.to ??= params.To;
    const status = params.CallStatus ?? "unknown";
    const event = statusWord(status);
    call.events.push(event);
    if (params.CallDuration !== undefined) call.durationSeconds = Number(params.CallDuration);
    const who = call.from && call.to
      ? ` (${callKind(call.direction)} ${printable(call.from, 64)} → ${printable(call.to, 64)})`
      : "";
    const duration = call.durationSeconds !== undefined && FINAL_CALL_STATUSES.has(status)
      ? ` after ${call.durationSeconds} s`
      : "";
    const line = `call ${printable(call.callSid, 64)} ${printable(event, 40)}${duration}${
      event === "initiated" ? who : ""
    }`;
    if (status === "failed" || status === "busy" || status === "no-answer") this.#log.warn(line);
    else this.#log.info(line);
    return call;
  }

  /** Records a stream status callback. */
  recordStream(params: Record<string, string>): CallProgress {
    const call = this.#call(params.CallSid);
    const event = params.StreamEvent ?? "unknown";
    const error = params.StreamError || undefined;
    call.streamEvents.push({ streamSid: params.StreamSid ?? "", event, error });
    const name = params.StreamName ? ` "${printable(params.StreamName, 64)}"` : "";
    const sid = printable(call.callSid, 64);
    if (event === "stream-error") {
      this.#log.error(`call ${sid} stream${name}: ${printable(error ?? "error", 300)}`);
    } else {
      this.#log.info(`call ${sid} stream${name} ${printable(event.replace(/^stream-/, ""), 40)}`);
    }
    return call;
  }

  #call(callSid = "unknown"): CallProgress {
    let call = this.#calls.get(callSid);
    if (!call) {
      call = { callSid, events: [], streamEvents: [] };
      this.#calls.set(callSid, call);
      if (this.#calls.size > MEMORY) this.#calls.delete(this.#calls.keys().next().value!);
    }
    return call;
  }
}

/** `outbound-api`/`outbound-dial` → "outbound call", `inbound` → "inbound call". */
export function callKind(direction?: string): string {
  if (!direction) return "call";
  return direction.startsWith("inbound") ? "inbound call" : "outbound call";
}
