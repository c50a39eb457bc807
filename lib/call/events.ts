/**
 * What happens on calls, as events. Each goes through the call-event
 * pipeline (`./pipeline.ts`): committed to the store first, then published
 * to the dashboard, the printer, the webhooks and tests.
 *
 * @module
 */
import type { CallAudioSummary } from "../recording/call_audio_summary.ts";
import type { Transcript } from "../transcribe/engine.ts";

/** Facts about a call, from Twilio's `start` message and the TwiML parameters. */
export interface CallInfo {
  callSid: string;
  /** Short label shown when several calls are active. */
  label: string;
  direction: string;
  from?: string;
  to?: string;
}

/** One thing that happened on a call. */
export type CallEvent =
  | { type: "call-started"; call: CallInfo; at: number }
  | { type: "transcript"; call: CallInfo; transcript: Transcript }
  | { type: "call-ended"; call: CallInfo; at: number; reason: string; audio?: CallAudioSummary }
  | { type: "call-error"; call: CallInfo; message: string };

/**
 * Receives call events: a session's emit (into the call-event pipeline), or a
 * publisher that needs no stored segment (the console printer).
 */
export type CallListener = (event: CallEvent) => unknown;
