/**
 * Stream URLs that only open their own call. Twilio strips query strings
 * from stream URLs, so the capability is in the path:
 * `wss://host/stream/<CallSid>/<token>` (and `/audio/…` for the laptop leg),
 * the token an HMAC-SHA256 over the call SID, the stream kind and an expiry.
 * A stream URL and its `X-Twilio-Signature` seen once (a proxy log, a
 * captured header) then open nothing but that call's stream of that kind,
 * only until it expires, and only while no such stream is open and the call
 * has not ended.
 *
 * The key is `STREAM_SECRET`, or derived from the Twilio auth token (so a
 * leaked stream key is not the account's token), or random per process when
 * there is neither (signature checks skipped): the instance that wrote the
 * TwiML is the one that checks its streams.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { StreamKind } from "./media_stream.ts";

/** How long after the TwiML a stream may start (Twilio opens it as the TwiML runs). */
export const STREAM_TOKEN_TTL_MS = 10 * 60_000;

/** The route of each stream kind. */
export const STREAM_ROUTES: Record<StreamKind, string> = {
  transcription: "/stream",
  audio: "/audio",
};

/** A Twilio Call SID (`CA` and 32 hex digits; any letters and digits are let through). */
const CALL_SID = /^CA[0-9A-Za-z]{2,64}$/;

/** Mints and checks per-call stream tokens, and keeps one stream per call and kind. */
export class StreamAccess {
  #key: Uint8Array;
  #ttlMs: number;
  #open = new Set<string>();

  constructor(key: Uint8Array, options: { ttlMs?: number } = {}) {
    this.#key = key;
    this.#ttlMs = options.ttlMs ?? STREAM_TOKEN_TTL_MS;
  }

  /** The key from STREAM_SECRET, else from the auth token, else random. */
  static fromSecrets(
    secrets: { streamSecret?: string; authToken?: string },
    options: { ttlMs?: number } = {},
  ): StreamAccess {
    const key = secrets.streamSecret
      ? new TextEncoder().encode(secrets.streamSecret)
      : secrets.authToken
      ? createHmac("sha256", secrets.authToken).update("callscribe stream token key v1").digest()
      : randomBytes(32);
    return new StreamAccess(key, options);
  }

  /** The path of a call's stream: `/stream/<CallSid>/<token>`. */
  path(callSid: string, kind: StreamKind, now = Date.now()): string {
    return `${STREAM_ROUTES[kind]}/${callSid}/${this.#token(callSid, kind, now + this.#ttlMs)}`;
  }

  #token(callSid: string, kind: StreamKind, expiresAt: number): string {
    const expiry = expiresAt.toString(36);
    return `${expiry}.${this.#mac(callSid, kind, expiry).toString("base64url")}`;
  }

  #mac(callSid: string, kind: StreamKind, expiry: string) {
    return createHmac("sha256", this.#key).update(`${callSid}\n${kind}\n${expiry}`).digest();
  }

  /** Why `token` does not open `kind` of `callSid` (null when it does). Never names the token. */
  check(callSid: string, kind: StreamKind, token: string, now = Date.now()): string | null {
    if (!CALL_SID.test(callSid)) return "the path does not name a Call SID";
    const match = /^([0-9a-z]{1,12})\.([A-Za-z0-9_-]{43})$/.exec(token);
    if (!match) return "the stream token is malformed";
    const [, expiry, mac] = match;
    // Compared as text: base64url has several spellings of the same bytes, the token only one.
    const expected = Buffer.from(this.#mac(callSid, kind, expiry).toString("base64url"));
    const given = Buffer.from(mac);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      return `the stream token is not valid for the ${kind} stream of ${callSid}`;
    }
    if (parseInt(expiry, 36) <= now) return "the stream token has expired";
    return null;
  }

  /**
   * Takes the one `kind` stream of `callSid`; the returned function gives it
   * back. Null while that stream is open.
   */
  claim(callSid: string, kind: StreamKind): (() => void) | null {
    const key = `${callSid}/${kind}`;
    if (this.#open.has(key)) return null;
    this.#open.add(key);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#open.delete(key);
    };
  }
}
