/**
 * One Twilio Media Stream connection, independent of the socket library:
 * the server adapter hands it text frames and a way to send and close
 * (the contract of `./stream_socket.ts`).
 *
 * {@link MediaStreamHandler} is the lifecycle every stream shares (limits,
 * idle and unread-peer checks, strict parsing, start and stop, ending the
 * call). Two kinds of stream reach us per call, one small class each:
 * {@link TranscriptionStream} (`<Start><Stream>`, unidirectional, both tracks)
 * feeds the transcribers; {@link LaptopAudioStream} (`<Connect><Stream>`,
 * bidirectional) is the laptop leg, which sends audio into the call.
 *
 * @module
 */
import type { AudioBridge, BridgeManager } from "../laptop_audio/bridge.ts";
import type { CallRegistry } from "../call/registry.ts";
import type { CallSession } from "../call/session.ts";
import type { Logger } from "../log.ts";
import type { OfferedLeg, Softphone } from "./softphone.ts";
import type { SocketListener, StreamSocket } from "./stream_socket.ts";
import { parseKeytermList } from "../transcribe/keyterms.ts";
import { decodeBase64 } from "../twilio/base64.ts";
import { type MediaBytes, readMediaBytes } from "../twilio/media_bytes.ts";
import { PayloadSlab } from "../twilio/payload_slab.ts";
import { parseTwilioMessage, ProtocolError, type StartMessage } from "../twilio/protocol.ts";

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
  registry: CallRegistry;
  socket: StreamSocket;
  log: Logger;
  /** The call this stream's URL was made for: a `start` naming another is refused. */
  callSid?: string;
  /**
   * No message for this long closes the stream and ends its call (default
   * {@link STREAM_IDLE_MS}): Twilio sends media every 20 ms while a call lives,
   * so a silent socket is a dead peer, and its call would otherwise stay open.
   */
  idleTimeoutMs?: number;
}

/** Handles the messages of one stream, from `connected` to `stop`; one subclass per stream kind. */
export abstract class MediaStreamHandler implements SocketListener {
  /** Which of the two streams of a call this is (for log lines). */
  abstract readonly kind: StreamKind;
  protected readonly options: MediaStreamOptions;
  #session: CallSession | null = null;
  #streamSid = "";
  #closed = false;
  /** Messages so far, and when a check last saw their count change (no clock read per message). */
  #messages = 0;
  #messagesAtCheck = 0;
  #lastMessageAt = performance.now();
  #idleTimer: ReturnType<typeof setInterval>;
  #unsentChecks = 0;
  /** Space for the audio of the media messages read from their bytes. */
  readonly #payloads = new PayloadSlab();

  constructor(options: MediaStreamOptions) {
    this.options = options;
    const idleMs = options.idleTimeoutMs ?? STREAM_IDLE_MS;
    // One check per quarter of the timeout, not a timer reset per 20 ms message.
    this.#idleTimer = setInterval(() => this.#checkPeer(idleMs), idleMs / 4);
  }

  /** The stream has stopped or failed: nothing more is sent on it. */
  protected get closed(): boolean {
    return this.#closed;
  }

  /** The stream started (its call's session and `start` message are known). */
  protected abstract started(session: CallSession, message: StartMessage): void;
  /** One media message's audio, after `start`. */
  protected abstract media(session: CallSession, media: MediaBytes): void;
  /** Twilio echoed a mark we sent. */
  protected markEchoed(_name: string): void {}
  /** The stream is over; release what {@link started} took. */
  protected finished(): void {}
  /** Whether the end of this stream ends its call. */
  protected abstract endsCall(session: CallSession): boolean;

  /** Ends a stream whose peer went silent, or stopped reading what we send. */
  #checkPeer(idleMs: number): void {
    const now = performance.now();
    if (this.#messages !== this.#messagesAtCheck) {
      this.#messagesAtCheck = this.#messages;
      this.#lastMessageAt = now;
    }
    // Silent since a check at most a quarter of the timeout after the last message.
    if (now - this.#lastMessageAt >= idleMs) {
      return this.#fail(
        CLOSE.policyViolation,
        `no message for ${idleMs / 1000} s (Twilio sends media every 20 ms); the call is ended`,
      );
    }
    // A burst of audio can sit unsent for a moment; over the limit at two checks in a row, the
    // peer is not reading, and what we queue for it would only grow.
    const unsent = this.options.socket.unsentBytes();
    this.#unsentChecks = unsent > MAX_UNSENT_BYTES ? this.#unsentChecks + 1 : 0;
    if (this.#unsentChecks >= 2) {
      this.#fail(CLOSE.policyViolation, `the other side stopped reading (${unsent} bytes unsent)`);
    }
  }

  /** Handles one WebSocket message. */
  onMessage(data: string | ArrayBuffer | Blob | Uint8Array): void {
    if (this.#closed) return;
    this.#messages++;
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
      this.#refuse(error);
    }
  }

  /**
   * A media message read from its bytes (see {@link readMediaBytes}); any
   * other message is left to {@link onMessage}.
   */
  readText(bytes: Uint8Array): boolean {
    if (this.#closed) return true;
    const media = readMediaBytes(bytes, this.#payloads);
    if (!media) return false;
    this.#messages++;
    try {
      this.media(this.#requireStarted("media"), media);
    } catch (error) {
      this.#refuse(error);
    }
    return true;
  }

  /** What a message's handling threw closes the stream, naming the problem. */
  #refuse(error: unknown): void {
    if (error instanceof ProtocolError) this.#fail(CLOSE.policyViolation, error.message);
    else this.#fail(CLOSE.policyViolation, `internal error: ${(error as Error).message}`);
  }

  /** A message over {@link MAX_MESSAGE_BYTES} was refused by the socket unread. */
  onOversized(bytes: number): void {
    if (this.#closed) return;
    this.#fail(CLOSE.tooBig, `message of ${bytes} bytes exceeds ${MAX_MESSAGE_BYTES}`);
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
        const { sequenceNumber, media } = message;
        const payload = decodeBase64(media.payload);
        return this.media(session, { sequenceNumber, ...media, payload });
      }
      case "stop":
        this.#requireStarted("stop");
        this.#closed = true;
        this.#finish("stop");
        this.options.socket.close(CLOSE.normal, "stop received");
        return;
      case "mark":
        this.#requireStarted(message.event);
        this.markEchoed(message.mark.name);
        return;
      case "dtmf":
        this.#requireStarted(message.event);
        return;
    }
  }

  #start(message: StartMessage): void {
    if (this.#session) throw new ProtocolError("a second start on the same stream");
    const { start } = message;
    const expected = this.options.callSid;
    if (expected && start.callSid !== expected) {
      throw new ProtocolError(
        `start names call ${start.callSid}, but this stream URL is for call ${expected}`,
      );
    }
    const parameters = start.customParameters;
    const keyterms = parseKeytermList(parameters.keyterms);
    this.#streamSid = message.streamSid;
    this.#session = this.options.registry.attachStream(message.streamSid, {
      callSid: start.callSid,
      direction: parameters.direction ?? "unknown",
      from: parameters.from,
      to: parameters.to,
    }, keyterms && { keyterms });
    this.started(this.#session, message);
  }

  #requireStarted(event: string): CallSession {
    if (!this.#session) throw new ProtocolError(`${event} before start`);
    return this.#session;
  }

  #finish(reason: string): void {
    clearInterval(this.#idleTimer);
    this.finished();
    const session = this.#session;
    if (!session) return;
    this.options.registry.detachStream(this.#streamSid);
    if (this.endsCall(session)) {
      this.options.registry.endCall(session.info.callSid, reason).catch((error) =>
        this.options.log.error(`ending call ${session.info.callSid}: ${error.message}`)
      );
    }
  }

  #fail(code: number, reason: string): void {
    const sid = this.#streamSid || "(before start)";
    this.options.log.warn(`${this.kind} stream ${sid} closed: ${reason}`);
    this.#closed = true;
    this.#finish(`stream closed: ${reason}`);
    // Close reasons are limited to 123 bytes by RFC 6455.
    this.options.socket.close(code, reason.slice(0, 120));
  }
}

/** The transcription stream: both tracks of the call, to the call's transcribers. */
export class TranscriptionStream extends MediaStreamHandler {
  readonly kind = "transcription";

  protected started(session: CallSession, message: StartMessage): void {
    for (const track of message.start.tracks) session.openTrack(track);
  }

  protected media(session: CallSession, media: MediaBytes): void {
    if (media.timestamp > MAX_CALL_MS) {
      // Gap filling would feed hours of silence: no Twilio call is that long.
      throw new ProtocolError(
        `media.timestamp ${media.timestamp} is beyond the longest call (4 hours)`,
      );
    }
    session.media(media.track, media.timestamp, media.payload);
  }

  /** The transcription stream always ends its call. */
  protected endsCall(): boolean {
    return true;
  }
}

/** Options of a {@link LaptopAudioStream}. */
export interface LaptopAudioStreamOptions extends MediaStreamOptions {
  /** The laptop's microphone and speaker (one call at a time); none: the leg is silent. */
  bridges?: BridgeManager;
  /** Offers the leg to a browser tab when the ffmpeg bridge does not have it. */
  softphone?: Softphone;
}

/** The bidirectional laptop leg: the call's audio to the laptop's speaker, its microphone into the call. */
export class LaptopAudioStream extends MediaStreamHandler {
  readonly kind = "audio";
  readonly #bridges?: BridgeManager;
  readonly #softphone?: Softphone;
  #bridge: AudioBridge | null = null;
  #leg: OfferedLeg | null = null;

  constructor(options: LaptopAudioStreamOptions) {
    super(options);
    this.#bridges = options.bridges;
    this.#softphone = options.softphone;
  }

  protected started(session: CallSession, message: StartMessage): void {
    const { socket } = this.options;
    const stream = {
      callSid: message.start.callSid,
      streamSid: message.streamSid,
      send: (text: string) => {
        if (!this.closed) socket.send(text);
      },
    };
    this.#bridge = this.#bridges?.open(stream) ?? null;
    // Kept with the call, so its page can tell a silent laptop side from a muted microphone.
    const input = this.#bridge?.input ?? "none";
    session.laptopInput = input === "device" ? "microphone" : input === "file" ? "file" : "off";
    // One laptop leg per call: a browser tab is refused while the ffmpeg bridge has it.
    this.#leg = this.#softphone?.offer({ ...stream, bridged: this.#bridge !== null }) ?? null;
  }

  protected media(_session: CallSession, { payload }: MediaBytes): void {
    this.#bridge?.play(payload);
    this.#leg?.play(payload);
  }

  protected override markEchoed(name: string): void {
    this.#bridge?.markEchoed(name);
  }

  protected override finished(): void {
    this.#leg?.end();
    this.#leg = null;
    if (!this.#bridge) return;
    this.#bridges?.release(this.#bridge);
    this.#bridge = null;
  }

  /** An audio leg alone would otherwise keep its session forever: the last stream ends the call. */
  protected endsCall(session: CallSession): boolean {
    return session.streams.size === 0;
  }
}
