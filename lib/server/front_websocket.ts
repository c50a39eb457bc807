/**
 * The server side of a WebSocket (RFC 6455) on bytes the connection front
 * reads itself: a media stream the app accepted is taken over by the front
 * ({@link StreamHandoff}), so its frames no longer cross a second socket into
 * `Deno.serve` and its event machinery. Text messages are delivered as
 * strings; a binary message is announced at its first frame (as an empty
 * array: it is not read); a message over the limit is refused at its header,
 * never buffered. Pings are answered; a close is echoed, then the connection
 * ends.
 *
 * @module
 */
import { createHash } from "node:crypto";

/** What a {@link FrontWebSocket} needs from its connection and its listener. */
export interface FrontWebSocketOptions {
  /** Writes bytes to the peer, in order. */
  write(bytes: Uint8Array): Promise<void>;
  /** Ends the connection (no more reads or writes). */
  end(): void;
  /** A text message (string), or the start of a binary one (an empty array). */
  onMessage(data: string | Uint8Array): void;
  /**
   * Reads a text message straight from its bytes, before they are decoded
   * (valid only during the call); true when it did, and then no
   * {@link onMessage} follows for it. Without it, or on false, the text is
   * checked as UTF-8 and decoded for {@link onMessage}.
   */
  readText?(bytes: Uint8Array): boolean;
  /** A message of this many bytes is over {@link maxMessageBytes}. */
  onOversized(bytes: number): void;
  /** The stream is over (closed by either side, or the connection lost); called once. */
  onClose(): void;
  /** Largest message read. */
  maxMessageBytes: number;
}

const OP_CONTINUATION = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;

/** A frame buffer larger than this is let go once empty (a stream's frames are small). */
const KEPT_BUFFER_BYTES = 16 * 1024;

/** How long a close we sent waits for the peer's before the connection is ended. */
const CLOSE_WAIT_MS = 2000;

/** The queue's least size once used (a transcription stream sends little: nothing is kept ahead). */
const OUT_BUFFER_BYTES = 512;

const utf8 = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();
/** Where {@link FrontWebSocket.send} encodes (one event loop, one message at a time). */
let scratch = new Uint8Array(4096);

/** One accepted WebSocket on the front. */
export class FrontWebSocket {
  #options: FrontWebSocketOptions;
  /** Bytes of a frame not yet complete: the first `#pendingBytes` of `#pending`. */
  #pending = new Uint8Array(0);
  #pendingBytes = 0;
  /** A frame could not be parsed: nothing after it is read. */
  #broken = false;
  /** The text message being assembled from fragments. */
  #fragments: Uint8Array[] = [];
  #fragmentBytes = 0;
  /** A fragmented binary message is being skipped. */
  #binary = false;
  /** Bytes of the current frame still to skip unread. */
  #discard = 0;
  #closeSent = false;
  #ended = false;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;

  /** Answers the upgrade that sent `key` (`101`), then serves the stream. */
  constructor(key: string, options: FrontWebSocketOptions) {
    this.#options = options;
    const answer = handshake(key);
    const at = this.#reserve(answer.length);
    this.#out.set(answer, at);
    this.#outBytes = answer.length;
    this.#drain();
  }

  /** Bytes queued for the peer and not yet written. */
  get unsentBytes(): number {
    return this.#outBytes + this.#inFlight;
  }

  /** Sends a text message. */
  send(text: string): void {
    if (this.#closeSent || this.#ended) return;
    // Encoded into a scratch buffer kept between messages (UTF-8 takes at most 3 bytes a unit).
    if (scratch.length < text.length * 3) scratch = new Uint8Array(text.length * 3);
    const { written } = encoder.encodeInto(text, scratch);
    this.#queueFrame(OP_TEXT, scratch.subarray(0, written));
  }

  /** Starts the closing handshake; the connection ends at the peer's answer or after a wait. */
  close(code: number, reason: string): void {
    if (this.#closeSent || this.#ended) return;
    this.#closeSent = true;
    const text = encoder.encode(reason);
    const payload = new Uint8Array(2 + text.length);
    payload[0] = code >> 8;
    payload[1] = code & 0xff;
    payload.set(text, 2);
    this.#queueFrame(OP_CLOSE, payload);
    this.#closeTimer = setTimeout(() => this.ended(), CLOSE_WAIT_MS);
  }

  /** The connection is gone (or must go): the stream is over. */
  ended(): void {
    if (this.#ended) return;
    this.#ended = true;
    clearTimeout(this.#closeTimer);
    this.#options.end();
    this.#options.onClose();
  }

  /** Bytes read from the peer (the caller may reuse `chunk` afterwards). */
  receive(chunk: Uint8Array): void {
    if (this.#ended || this.#broken) return;
    // A frame split over reads waits in a buffer that grows by doubling (a peer trickling a
    // large frame a byte at a time costs no copying per byte).
    let data = chunk;
    if (this.#pendingBytes > 0) {
      const needed = this.#pendingBytes + chunk.length;
      if (needed > this.#pending.length) {
        const grown = new Uint8Array(Math.max(needed, this.#pending.length * 2));
        grown.set(this.#pending.subarray(0, this.#pendingBytes));
        this.#pending = grown;
      }
      this.#pending.set(chunk, this.#pendingBytes);
      this.#pendingBytes = needed;
      data = this.#pending.subarray(0, needed);
    }
    let at = 0;
    while (!this.#ended && !this.#broken && at < data.length) {
      if (this.#discard > 0) {
        const skipped = Math.min(this.#discard, data.length - at);
        this.#discard -= skipped;
        at += skipped;
        continue;
      }
      const used = this.#frame(data, at);
      if (used === 0) break;
      at += used;
    }
    const left = this.#ended || this.#broken ? 0 : data.length - at;
    if (left === 0) {
      this.#pendingBytes = 0;
      if (this.#pending.length > KEPT_BUFFER_BYTES) this.#pending = new Uint8Array(0);
    } else if (data === chunk) {
      this.#pending = chunk.slice(at);
      this.#pendingBytes = left;
    } else if (at > 0) {
      this.#pending.copyWithin(0, at, at + left);
      this.#pendingBytes = left;
    }
  }

  /** Handles the frame at `at`; returns its bytes, or 0 while it is incomplete. */
  #frame(data: Uint8Array, at: number): number {
    const available = data.length - at;
    if (available < 2) return 0;
    const first = data[at];
    const second = data[at + 1];
    const fin = (first & 0x80) !== 0;
    const opcode = first & 0x0f;
    if ((first & 0x70) !== 0) return this.#fail(1002, "reserved bits set (no extension agreed)");
    if ((second & 0x80) === 0) return this.#fail(1002, "client frames must be masked");
    let length = second & 0x7f;
    let header = 2;
    if (length === 126) {
      if (available < 4) return 0;
      length = (data[at + 2] << 8) | data[at + 3];
      header = 4;
    } else if (length === 127) {
      if (available < 10) return 0;
      // Beyond 2^32 bytes is beyond any limit here.
      const high = (data[at + 2] << 24 | data[at + 3] << 16 | data[at + 4] << 8 | data[at + 5]) >>>
        0;
      const low = (data[at + 6] << 24 | data[at + 7] << 16 | data[at + 8] << 8 | data[at + 9]) >>>
        0;
      length = high > 0 ? Number.MAX_SAFE_INTEGER : low;
      header = 10;
    }
    const control = opcode >= 0x8;
    if (control && (!fin || length > 125)) return this.#fail(1002, "invalid control frame");
    if (!control && opcode !== OP_TEXT && opcode !== OP_CONTINUATION && opcode !== OP_BINARY) {
      return this.#fail(1002, `unknown opcode ${opcode}`);
    }
    const total = header + 4 + length;
    if (!control) {
      if (opcode === OP_BINARY) {
        // Not part of the protocol: announced once, never read.
        this.#binary = !fin;
        this.#options.onMessage(new Uint8Array(0));
      } else if (opcode === OP_CONTINUATION && this.#binary) {
        this.#binary = !fin;
      } else if (!this.#closeSent && this.#fragmentBytes + length > this.#options.maxMessageBytes) {
        this.#options.onOversized(this.#fragmentBytes + length);
      }
      // After our close, data frames are skipped unread (the peer's close is still awaited).
      if (this.#binary || opcode === OP_BINARY || this.#closeSent) {
        return this.#skip(at, total, data);
      }
    }
    const end = at + total;
    if (end > data.length) return 0;
    const mask = at + header;
    const payload = data.subarray(mask + 4, end);
    // Four bytes a turn with the key in locals: no load of the key per byte.
    const m0 = data[mask], m1 = data[mask + 1], m2 = data[mask + 2], m3 = data[mask + 3];
    const whole = payload.length & ~3;
    let i = 0;
    for (; i < whole; i += 4) {
      payload[i] ^= m0;
      payload[i + 1] ^= m1;
      payload[i + 2] ^= m2;
      payload[i + 3] ^= m3;
    }
    for (; i < payload.length; i++) payload[i] ^= data[mask + (i & 3)];
    this.#payload(opcode, fin, payload);
    return end - at;
  }

  #payload(opcode: number, fin: boolean, payload: Uint8Array): void {
    switch (opcode) {
      case OP_TEXT:
      case OP_CONTINUATION: {
        if (opcode === OP_TEXT && this.#fragments.length) {
          this.#fail(1002, "a new message inside a fragmented one");
          return;
        }
        if (opcode === OP_CONTINUATION && !this.#fragments.length) {
          this.#fail(1002, "a continuation without a message");
          return;
        }
        if (!fin) {
          this.#fragments.push(payload.slice());
          this.#fragmentBytes += payload.length;
          return;
        }
        let bytes = payload;
        if (this.#fragments.length) {
          bytes = new Uint8Array(this.#fragmentBytes + payload.length);
          let offset = 0;
          for (const part of this.#fragments) {
            bytes.set(part, offset);
            offset += part.length;
          }
          bytes.set(payload, offset);
          this.#fragments = [];
          this.#fragmentBytes = 0;
        }
        if (this.#options.readText?.(bytes)) return;
        let text: string;
        try {
          text = utf8.decode(bytes);
        } catch {
          this.#fail(1007, "text message is not valid UTF-8");
          return;
        }
        this.#options.onMessage(text);
        return;
      }
      case OP_CLOSE: {
        if (!this.#closeSent && !validClosePayload(payload)) {
          this.#fail(1002, "invalid close frame");
          return;
        }
        if (!this.#closeSent) {
          // Echo the peer's code (RFC 6455 5.5.1), then end.
          this.#closeSent = true;
          this.#queueFrame(OP_CLOSE, payload.length >= 2 ? payload.subarray(0, 2) : payload);
        }
        this.#written().finally(() => this.ended());
        return;
      }
      case OP_PING:
        if (!this.#closeSent) this.#queueFrame(OP_PONG, payload);
        return;
      case OP_PONG:
        return;
    }
  }

  /** Skips a frame of `total` bytes at `at` unread: what is here now, then the rest as it comes. */
  #skip(at: number, total: number, data: Uint8Array): number {
    const here = Math.min(total, data.length - at);
    this.#discard = total - here;
    return here;
  }

  /** A broken frame: close with `code`; nothing more can be parsed, so the connection ends. */
  #fail(code: number, reason: string): number {
    this.#broken = true;
    this.close(code, reason);
    this.#written().finally(() => this.ended());
    return 0;
  }

  /**
   * Frames not yet handed to the connection, appended into one buffer (no
   * object or promise per message: a peer that stops reading while audio is
   * sent ahead leaves megabytes here, which must cost the event loop
   * nothing); written in one write per turn, the next turn's frames going
   * to the spare buffer meanwhile.
   */
  #out = new Uint8Array(0);
  #outBytes = 0;
  #spare = new Uint8Array(0);
  #inFlight = 0;
  #draining: Promise<void> | null = null;

  /** Resolves once every frame queued so far is written (or the connection failed). */
  #written(): Promise<void> {
    return this.#draining ?? Promise.resolve();
  }

  /** Queues a frame: a header for `length` payload bytes, then `payload` (unmasked, FIN set). */
  #queueFrame(opcode: number, payload: Uint8Array): void {
    const length = payload.length;
    const header = length < 126 ? 2 : length < 65536 ? 4 : 10;
    const at = this.#reserve(header + length);
    const out = this.#out;
    out[at] = 0x80 | opcode;
    if (header === 2) out[at + 1] = length;
    else if (header === 4) {
      out[at + 1] = 126;
      out[at + 2] = length >> 8;
      out[at + 3] = length & 0xff;
    } else {
      out[at + 1] = 127;
      out.fill(0, at + 2, at + 6);
      new DataView(out.buffer).setUint32(at + 6, length);
    }
    out.set(payload, at + header);
    this.#outBytes = at + header + length;
    this.#drain();
  }

  /** Room for `bytes` more at the end of the queue; returns where they go. */
  #reserve(bytes: number): number {
    const at = this.#outBytes;
    if (at + bytes > this.#out.length) {
      const grown = new Uint8Array(Math.max(at + bytes, this.#out.length * 2, OUT_BUFFER_BYTES));
      grown.set(this.#out.subarray(0, at));
      this.#out = grown;
    }
    return at;
  }

  #drain(): void {
    if (this.#draining) return;
    this.#draining = (async () => {
      try {
        while (this.#outBytes > 0 && !this.#ended) {
          const chunk = this.#out.subarray(0, this.#outBytes);
          this.#inFlight = this.#outBytes;
          this.#out = this.#spare.length > KEPT_BUFFER_BYTES
            ? new Uint8Array(OUT_BUFFER_BYTES)
            : this.#spare;
          this.#outBytes = 0;
          await this.#options.write(chunk);
          this.#spare = chunk.buffer === this.#out.buffer
            ? this.#spare
            : new Uint8Array(chunk.buffer);
          this.#inFlight = 0;
        }
      } catch {
        this.ended();
      } finally {
        this.#draining = null;
      }
    })();
  }
}

/**
 * A close frame's payload is empty, or a code a peer may send (RFC 6455
 * 7.4: 1000-1003, 1007-1014, 3000-4999) and a UTF-8 reason.
 */
function validClosePayload(payload: Uint8Array): boolean {
  if (payload.length === 0) return true;
  if (payload.length === 1) return false;
  const code = (payload[0] << 8) | payload[1];
  const allowed = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
    (code >= 3000 && code <= 4999);
  if (!allowed) return false;
  try {
    utf8.decode(payload.subarray(2));
    return true;
  } catch {
    return false;
  }
}

/** The `101` answer to an upgrade with this `Sec-WebSocket-Key` (RFC 6455 4.2.2). */
function handshake(key: string): Uint8Array {
  const accept = createHash("sha1").update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
    .digest("base64");
  return encoder.encode(
    "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n" +
      `sec-websocket-accept: ${accept}\r\n\r\n`,
  );
}
