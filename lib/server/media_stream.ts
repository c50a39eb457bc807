/**
 * One Twilio Media Stream connection, independent of the socket library:
 * the Deno adapter hands it text frames and a way to send and close.
 *
 * Two kinds of stream reach us per call: `transcription` (`<Start><Stream>`,
 * unidirectional, both tracks) feeds the transcribers; `audio`
 * (`<Connect><Stream>`, bidirectional) is the laptop leg, which sends audio
 * into the call.
 *
 * @module
 */
import type { AudioBridge, BridgeManager } from "../laptop_audio/bridge.ts";
import type { CallRegistry } from "../call/registry.ts";
import type { CallSession } from "../call/session.ts";
import type { Logger } from "../log.ts";
import { decodeBase64 } from "../twilio/base64.ts";
import { parseTwilioMessage, ProtocolError, type StartMessage } from "../twilio/protocol.ts";

/** What a stream handler needs from its socket. */
export interface StreamSocket {
  send(text: string): void;
  close(code: number, reason: string): void;
  /** Bytes sent but not yet taken by the other side (grows when it stops reading). */
  unsentBytes(): number;
}

/** Which of the two streams of a call this is. */
export type StreamKind = "transcription" | "audio";

/** Close codes (RFC 6455) used when we drop a stream. */
export const CLOSE = {
  normal: 1000,
  unsupportedData: 1003,
  policyViolation: 1008,
  tooBig: 1009,
} as const;

/** Largest message we accept; Twilio's media messages are well under 1 KiB. */
export const MAX_MESSAGE_BYTES = 64 * 1024;

/** Default for {@link MediaStreamOptions.idleTimeoutMs}. */
export const STREAM_IDLE_MS = 30_000;

/**
 * Most we queue for a peer that does not read: 1 MiB is about a minute of
 * call audio as Twilio media messages. Past it the peer is gone or stuck.
 */
export const MAX_UNSENT_BYTES = 1024 * 1024;

/** Twilio ends every call after 4 hours; a media timestamp past that is not Twilio's. */
export const MAX_CALL_MS = 4 * 3600 * 1000;

/** Options of a stream handler. */
export interface MediaStreamOptions {
  kind: StreamKind;
  registry: CallRegistry;
  socket: StreamSocket;
  log: Logger;
  /** For the audio leg: the laptop's microphone and speaker (one call at a time). */
  bridges?: BridgeManager;
  /**
   * No message for this long closes the stream and ends its call (default
   * {@link STREAM_IDLE_MS}): Twilio sends media every 20 ms while a call lives,
   * so a silent socket is a dead peer, and its call would otherwise stay open.
   */
  idleTimeoutMs?: number;
}

/** Handles the messages of one stream, from `connected` to `stop`. */
export class MediaStreamHandler {
  #options: MediaStreamOptions;
  #session: CallSession | null = null;
  #streamSid = "";
  #closed = false;
  #bridge: AudioBridge | null = null;
  #lastMessageAt = performance.now();
  #idleTimer: ReturnType<typeof setInterval>;
  #unsentChecks = 0;
  /** Media messages received on the audio leg (played on the laptop's speaker when bridged). */
  receivedFrames = 0;

  constructor(options: MediaStreamOptions) {
    this.#options = options;
    const idleMs = options.idleTimeoutMs ?? STREAM_IDLE_MS;
    // One check per quarter of the timeout, not a timer reset per 20 ms message.
    this.#idleTimer = setInterval(() => this.#checkPeer(idleMs), idleMs / 4);
  }

  /** Ends a stream whose peer went silent, or stopped reading what we send. */
  #checkPeer(idleMs: number): void {
    if (performance.now() - this.#lastMessageAt >= idleMs) {
      return this.#fail(
        CLOSE.policyViolation,
        `no message for ${idleMs / 1000} s (Twilio sends media every 20 ms); the call is ended`,
      );
    }
    // A burst of audio can sit unsent for a moment; over the limit at two checks in a row, the
    // peer is not reading, and what we queue for it would only grow.
    const unsent = this.#options.socket.unsentBytes();
    this.#unsentChecks = unsent > MAX_UNSENT_BYTES ? this.#unsentChecks + 1 : 0;
    if (this.#unsentChecks >= 2) {
      this.#fail(CLOSE.policyViolation, `the other side stopped reading (${unsent} bytes unsent)`);
    }
  }

  /** Handles one WebSocket message. */
  onMessage(data: string | ArrayBuffer | Blob | Uint8Array): void {
    if (this.#closed) return;
    this.#lastMessageAt = performance.now();
    if (typeof data !== "string") {
      this.#fail(CLOSE.unsupportedData, "binary frames are not part of the Twilio protocol");
      return;
    }
    if (data.length > MAX_MESSAGE_BYTES) {
      this.#fail(CLOSE.tooBig, `message of ${data.length} bytes exceeds ${MAX_MESSAGE_BYTES}`);
      return;
    }
    try {
      this.#handle(data);
    } catch (error) {
      if (error instanceof ProtocolError) this.#fail(CLOSE.policyViolation, error.message);
      else this.#fail(CLOSE.policyViolation, `internal error: ${(error as Error).message}`);
    }
  }

  /** The socket closed; a transcription stream that never sent `stop` still ends its call. */
  onClose(): void {
    clearInterval(this.#idleTimer);
    if (this.#closed) return;
    this.#closed = true;
    this.#finish("stream closed without stop");
  }

  #handle(text: string): void {
    const message = parseTwilioMessage(text);
    switch (message.event) {
      case "connected":
        return;
      case "start":
        return this.#start(message);
      case "media": {
        const session = this.#requireStarted("media");
        if (this.#options.kind === "audio") {
          this.receivedFrames++;
          this.#bridge?.play(decodeBase64(message.media.payload));
          return;
        }
        if (message.media.timestamp > MAX_CALL_MS) {
          // Gap filling would feed hours of silence: no Twilio call is that long.
          throw new ProtocolError(
            `media.timestamp ${message.media.timestamp} is beyond the longest call (4 hours)`,
          );
        }
        session.media(
          message.media.track,
          message.media.timestamp,
          decodeBase64(message.media.payload),
        );
        return;
      }
      case "stop":
        this.#requireStarted("stop");
        this.#closed = true;
        this.#finish("stop");
        this.#options.socket.close(CLOSE.normal, "stop received");
        return;
      case "mark":
        this.#requireStarted(message.event);
        this.#bridge?.markEchoed(message.mark.name);
        return;
      case "dtmf":
        this.#requireStarted(message.event);
        return;
    }
  }

  #start(message: StartMessage): void {
    if (this.#session) throw new ProtocolError("a second start on the same stream");
    const { start } = message;
    const parameters = start.customParameters;
    this.#streamSid = message.streamSid;
    this.#session = this.#options.registry.attachStream(message.streamSid, {
      callSid: start.callSid,
      direction: parameters.direction ?? "unknown",
      from: parameters.from,
      to: parameters.to,
    });
    if (this.#options.kind === "transcription") {
      for (const track of start.tracks) this.#session.openTrack(track);
    } else {
      const { socket } = this.#options;
      this.#bridge = this.#options.bridges?.open({
        callSid: start.callSid,
        streamSid: message.streamSid,
        send: (text) => {
          if (!this.#closed) socket.send(text);
        },
      }) ?? null;
    }
  }

  #requireStarted(event: string): CallSession {
    if (!this.#session) throw new ProtocolError(`${event} before start`);
    return this.#session;
  }

  #finish(reason: string): void {
    clearInterval(this.#idleTimer);
    if (this.#bridge) {
      this.#options.bridges?.release(this.#bridge);
      this.#bridge = null;
    }
    const session = this.#session;
    if (!session) return;
    this.#options.registry.detachStream(this.#streamSid);
    // The transcription stream ends its call; so does the last stream of a call that had no
    // other (an audio leg alone would otherwise keep its session forever).
    if (this.#options.kind === "transcription" || session.streams.size === 0) {
      this.#options.registry.endCall(session.info.callSid, reason).catch((error) =>
        this.#options.log.error(`ending call ${session.info.callSid}: ${error.message}`)
      );
    }
  }

  #fail(code: number, reason: string): void {
    const sid = this.#streamSid || "(before start)";
    this.#options.log.warn(`${this.#options.kind} stream ${sid} closed: ${reason}`);
    this.#closed = true;
    this.#finish(`stream closed: ${reason}`);
    // Close reasons are limited to 123 bytes by RFC 6455.
    this.#options.socket.close(code, reason.slice(0, 120));
  }
}
