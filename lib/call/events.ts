/**
 * What happens on calls, as events. Each goes through the call-event
 * pipeline (`./pipeline.ts`): committed to the store first, then published
 * to the dashboard, the printer, the webhooks and tests.
 *
 * @module
 */
import type { CallQuality } from "../recording/track_quality.ts";
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

/**
 * What the laptop leg sent into the call (the outbound track): its microphone,
 * a WAV file (`AUDIO_INPUT=<wav>`), or nothing: `off` when no input was
 * configured or usable, or the laptop was busy with another call.
 */
export type LaptopInput = "microphone" | "file" | "off";

/** What a call's audio was like: each track's quality, and the recording's length (null: none). */
export interface CallAudioSummary {
  quality: CallQuality;
  recordedMs: number | null;
  /** What the laptop leg sent; null when the call had no laptop leg (forwarded) or it is unknown. */
  laptopInput?: LaptopInput | null;
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
