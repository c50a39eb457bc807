/**
 * Twilio Media Streams messages: strict parsing of what Twilio sends, and
 * builders for what we send on a bidirectional stream (and, for the
 * simulator, for what Twilio sends). No sockets here.
 *
 * Numeric fields (`sequenceNumber`, `chunk`, `timestamp`) arrive as strings
 * and are parsed to numbers; `dtmf.track` is `inbound_track` on the wire.
 *
 * @module
 */
import { encodeBase64 } from "./base64.ts";
import { ProtocolError } from "./errors.ts";

export { ProtocolError };

/** A media track as Twilio names it in `media` messages. */
export type MediaTrack = "inbound" | "outbound";

/** Sent once when the WebSocket is established. */
export interface ConnectedMessage {
  event: "connected";
  protocol: string;
  version: string;
}

/** Stream metadata; the first message with a stream SID. */
export interface StartMessage {
  event: "start";
  sequenceNumber: number;
  streamSid: string;
  start: {
    accountSid: string;
    streamSid: string;
    callSid: string;
    tracks: MediaTrack[];
    customParameters: Record<string, string>;
    mediaFormat: { encoding: "audio/x-mulaw"; sampleRate: 8000; channels: 1 };
  };
}

/** 20 ms (usually) of base64 µ-law audio on one track. */
export interface MediaMessage {
  event: "media";
  sequenceNumber: number;
  streamSid: string;
  media: { track: MediaTrack; chunk: number; timestamp: number; payload: string };
}

/** A key pressed on the phone (bidirectional streams only). */
export interface DtmfMessage {
  event: "dtmf";
  sequenceNumber: number;
  streamSid: string;
  dtmf: { track: "inbound"; digit: string };
}

/** Echo of a mark we sent: the audio before it has played (or was cleared). */
export interface MarkMessage {
  event: "mark";
  sequenceNumber: number;
  streamSid: string;
  mark: { name: string };
}

/** The stream has ended. */
export interface StopMessage {
  event: "stop";
  sequenceNumber: number;
  streamSid: string;
  stop: { accountSid: string; callSid: string };
}

/** Any message Twilio sends on a Media Stream. */
export type TwilioMessage =
  | ConnectedMessage
  | StartMessage
  | MediaMessage
  | DtmfMessage
  | MarkMessage
  | StopMessage;

type Json = Record<string, unknown>;

function object(value: unknown, path: string): Json {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ProtocolError(`${path} must be an object`);
  }
  return value as Json;
}

function string(parent: Json, key: string, path: string): string {
  const value = parent[key];
  if (typeof value !== "string") {
    throw new ProtocolError(`${path}.${key} must be a string, got ${describe(value)}`);
  }
  return value;
}

/** Twilio's numeric fields: a string of digits. */
function digits(parent: Json, key: string, path: string): number {
  const value = parent[key];
  if (typeof value !== "string" || !isDigits(value)) {
    throw new ProtocolError(`${path}.${key} must be a string of digits, got ${describe(value)}`);
  }
  return Number(value);
}

/** 1 to 15 ASCII digits (three fields of every media frame: a loop costs half the regular expression). */
function isDigits(value: string): boolean {
  if (value.length === 0 || value.length > 15) return false;
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code < 48 || code > 57) return false;
  }
  return true;
}

function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 40 ? text.slice(0, 40) + "…" : text;
}

function track(value: string, path: string): MediaTrack {
  if (value !== "inbound" && value !== "outbound") {
    throw new ProtocolError(`${path} must be "inbound" or "outbound", got ${describe(value)}`);
  }
  return value;
}

/** Parses one message; throws {@link ProtocolError} naming the problem. */
export function parseTwilioMessage(text: string): TwilioMessage {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ProtocolError("message is not JSON");
  }
  const message = object(parsed, "message");
  const event = message.event;
  switch (event) {
    case "media": {
      const media = object(message.media, "media");
      return {
        event,
        sequenceNumber: digits(message, "sequenceNumber", "message"),
        streamSid: string(message, "streamSid", "message"),
        media: {
          track: track(string(media, "track", "media"), "media.track"),
          chunk: digits(media, "chunk", "media"),
          timestamp: digits(media, "timestamp", "media"),
          payload: string(media, "payload", "media"),
        },
      };
    }
    case "connected":
      return {
        event,
        protocol: string(message, "protocol", "message"),
        version: string(message, "version", "message"),
      };
    case "start":
      return parseStart(message);
    case "dtmf": {
      const dtmf = object(message.dtmf, "dtmf");
      const wireTrack = string(dtmf, "track", "dtmf");
      if (wireTrack !== "inbound_track") {
        throw new ProtocolError(`dtmf.track must be "inbound_track", got ${describe(wireTrack)}`);
      }
      return {
        event,
        sequenceNumber: digits(message, "sequenceNumber", "message"),
        streamSid: string(message, "streamSid", "message"),
        dtmf: { track: "inbound", digit: string(dtmf, "digit", "dtmf") },
      };
    }
    case "mark":
      return {
        event,
        sequenceNumber: digits(message, "sequenceNumber", "message"),
        streamSid: string(message, "streamSid", "message"),
        mark: { name: string(object(message.mark, "mark"), "name", "mark") },
      };
    case "stop": {
      const stop = object(message.stop, "stop");
      return {
        event,
        sequenceNumber: digits(message, "sequenceNumber", "message"),
        streamSid: string(message, "streamSid", "message"),
        stop: {
          accountSid: string(stop, "accountSid", "stop"),
          callSid: string(stop, "callSid", "stop"),
        },
      };
    }
    default:
      throw new ProtocolError(`unknown event ${describe(event)}`);
  }
}

function parseStart(message: Json): StartMessage {
  const start = object(message.start, "start");
  const format = object(start.mediaFormat, "start.mediaFormat");
  if (format.encoding !== "audio/x-mulaw" || format.sampleRate !== 8000 || format.channels !== 1) {
    throw new ProtocolError(
      `start.mediaFormat must be audio/x-mulaw, 8000 Hz, 1 channel; got ${describe(format)}`,
    );
  }
  const tracks = start.tracks;
  if (!Array.isArray(tracks) || tracks.length === 0) {
    throw new ProtocolError("start.tracks must be a non-empty array");
  }
  const parameters = object(start.customParameters ?? {}, "start.customParameters");
  const customParameters: Record<string, string> = {};
  for (const [key, value] of Object.entries(parameters)) {
    if (typeof value !== "string") {
      throw new ProtocolError(`start.customParameters.${key} must be a string`);
    }
    customParameters[key] = value;
  }
  const streamSid = string(message, "streamSid", "message");
  if (string(start, "streamSid", "start") !== streamSid) {
    throw new ProtocolError("start.streamSid differs from the message's streamSid");
  }
  return {
    event: "start",
    sequenceNumber: digits(message, "sequenceNumber", "message"),
    streamSid,
    start: {
      accountSid: string(start, "accountSid", "start"),
      streamSid,
      callSid: string(start, "callSid", "start"),
      tracks: tracks.map((t, i) => track(t, `start.tracks[${i}]`)),
      customParameters,
      mediaFormat: { encoding: "audio/x-mulaw", sampleRate: 8000, channels: 1 },
    },
  };
}

// What we send on a bidirectional stream.

/** Audio to play into the call (µ-law 8 kHz bytes). */
export function mediaMessage(streamSid: string, payload: Uint8Array): string {
  return `{"event":"media","streamSid":${JSON.stringify(streamSid)},"media":{"payload":"${
    encodeBase64(payload)
  }"}}`;
}

/** A mark Twilio echoes once the audio queued before it has played. */
export function markMessage(streamSid: string, name: string): string {
  return JSON.stringify({ event: "mark", streamSid, mark: { name } });
}

/** Drops the audio queued on the stream. */
export function clearMessage(streamSid: string): string {
  return JSON.stringify({ event: "clear", streamSid });
}

// What Twilio sends, for the simulator.

/** Twilio's first message. */
export function connectedMessage(): string {
  return JSON.stringify({ event: "connected", protocol: "Call", version: "1.0.0" });
}

/** Twilio's `start` message. */
export function startMessage(fields: {
  streamSid: string;
  accountSid: string;
  callSid: string;
  sequenceNumber: number;
  tracks: MediaTrack[];
  customParameters: Record<string, string>;
}): string {
  return JSON.stringify({
    event: "start",
    sequenceNumber: String(fields.sequenceNumber),
    start: {
      accountSid: fields.accountSid,
      streamSid: fields.streamSid,
      callSid: fields.callSid,
      tracks: fields.tracks,
      customParameters: fields.customParameters,
      mediaFormat: { encoding: "audio/x-mulaw", sampleRate: 8000, channels: 1 },
    },
    streamSid: fields.streamSid,
  });
}

/** Twilio's `media` message. */
export function twilioMediaMessage(fields: {
  streamSid: string;
  sequenceNumber: number;
  track: MediaTrack;
  chunk: number;
  timestamp: number;
  payload: Uint8Array;
}): string {
  return `{"event":"media","sequenceNumber":"${fields.sequenceNumber}","media":{"track":"${fields.track}","chunk":"${fields.chunk}","timestamp":"${fields.timestamp}","payload":"${
    encodeBase64(fields.payload)
  }"},"streamSid":${JSON.stringify(fields.streamSid)}}`;
}

/** Twilio's echo of a mark. */
export function twilioMarkMessage(
  fields: { streamSid: string; sequenceNumber: number; name: string },
): string {
  return JSON.stringify({
    event: "mark",
    sequenceNumber: String(fields.sequenceNumber),
    streamSid: fields.streamSid,
    mark: { name: fields.name },
  });
}

/** Twilio's `dtmf` message. */
export function dtmfMessage(
  fields: { streamSid: string; sequenceNumber: number; digit: string },
): string {
  return JSON.stringify({
    event: "dtmf",
    streamSid: fields.streamSid,
    sequenceNumber: String(fields.sequenceNumber),
    dtmf: { track: "inbound_track", digit: fields.digit },
  });
}

/** Twilio's `stop` message. */
export function stopMessage(
  fields: { streamSid: string; sequenceNumber: number; accountSid: string; callSid: string },
): string {
  return JSON.stringify({
    event: "stop",
    sequenceNumber: String(fields.sequenceNumber),
    streamSid: fields.streamSid,
    stop: { accountSid: fields.accountSid, callSid: fields.callSid },
  });
}
