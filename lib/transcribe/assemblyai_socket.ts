/**
 * The reconnect-and-replay socket of one AssemblyAI track: audio goes out in
 * chunks on one session at a time, is kept until a final covers it, and is
 * replayed on a new session when one drops.
 *
 * - Handshake: an attempt fails if `Begin` does not arrive within
 *   `beginTimeoutMs`, then is retried (SDK `connect`: `connectTimeout` 1000 ms,
 *   `maxConnectionRetries` 2, `connectionRetryDelay` 500 ms; our defaults in
 *   `ASSEMBLYAI_DEFAULTS`), so a server that accepts the upgrade and stays
 *   silent cannot hang a call's end.
 * - Rate: a session never gets audio faster than real time plus
 *   {@link PACING_AHEAD_MS} since its `Begin` (the service closes with 3007
 *   "Audio Transmission Rate Exceeded" otherwise).
 * - Catch-up: after an outage, real-time pacing would leave a single session
 *   behind by the outage for the rest of the call. Instead the backlog goes
 *   to a second, catch-up session (paced in real time, terminated when it has
 *   heard it all) while the live session starts half a second before now.
 *   Both hear an overlap around the split; each reports only the words whose
 *   middle falls on its side, so no word is lost or doubled.
 *
 * @module
 */
import { BYTES_PER_MS, durationMs } from "../audio/framing.ts";
import type { Logger } from "../log.ts";
import { backoffDelay, type BackoffOptions } from "../async/backoff.ts";
import { sleep } from "../async/sleep.ts";
import {
  describeClose,
  isTransientClose,
  parseServerMessage,
  ProtocolError,
  type ServerMessage,
  TERMINATE,
} from "./assemblyai_protocol.ts";

/**
 * How far a session's audio may run ahead of the wall clock since its
 * `Begin`. The docs reject audio "faster than real time" without a figure;
 * we measure from when `Begin` reached us (after the service sent it) and
 * the service from when audio reaches it (after we sent it), so staying
 * within this bound here keeps within the same bound there.
 */
const PACING_AHEAD_MS = 1000;
/** A backlog longer than this after a reconnect goes to a catch-up session. */
const CATCH_UP_MIN_MS = 2000;
/** The live session starts this far before the newest audio (absorbed by the pacing allowance). */
const LIVE_LEAD_MS = 500;
/** Words before this much into the live session's audio belong to the catch-up session. */
const SPLIT_AFTER_MS = 250;
/** The catch-up session hears this much past the split, so its last word is whole. */
const CATCH_UP_TAIL_MS = 1000;

/** Where a session's words go on the track, and which of them it reports. */
export interface SessionView {
  readonly index: number;
  /** Track ms where this session's audio starts: added to its word times. */
  readonly offsetMs: number;
  /** The session reports words whose middle is in `[keepFromMs, keepToMs)` (track ms). */
  readonly keepFromMs: number;
  readonly keepToMs: number;
  readonly catchUp: boolean;
}

/** What the socket tells its track. */
export interface SocketHandler {
  onMessage(session: SessionView, message: Exclude<ServerMessage, { type: "Error" }>): void;
  /** A session is gone: turns still waiting for a formatted twin are complete now. */
  onSessionClosed(session: SessionView): void;
  /** The track cannot be transcribed any more (already worded for the user). */
  onFailed(message: string): void;
  /** A server message that does not match the protocol (reported once per track). */
  onProtocolError(error: ProtocolError): void;
}

/** How a track's sessions are replayed, paced and retried (part of the engine's options). */
export interface ReplayOptions {
  /** Audio kept for replay while reconnecting, in seconds per track. */
  bufferSeconds: number;
  /**
   * Never send audio faster than real time (AssemblyAI closes with 3007).
   * Off only against the local fake, where simulated calls run faster than real time.
   */
  realtimePacing: boolean;
  /** After an outage, replay the backlog on a second session so the live one is not left behind. */
  catchUp: boolean;
  /**
   * How long one handshake may wait for `Begin` (SDK `connectTimeout`, 1000 ms
   * there; 2000 ms by default here, since a busy server's own event loop can hold `Begin` back).
   */
  beginTimeoutMs: number;
  /** Retries of the first connection (SDK: two retries, 500 ms apart). */
  connectBackoff: BackoffOptions;
  /** Retries after a session dropped. */
  reconnectBackoff: BackoffOptions;
  /** How long to wait for `Termination` after `Terminate` while the service sends nothing else. */
  terminateTimeoutMs: number;
}

/** How the socket connects, for one track. */
export interface SocketOptions extends ReplayOptions {
  /** The session URL (query built by `sessionUrl`; may carry a temporary token). */
  url: () => string;
  headers: Record<string, string>;
  /** `AssemblyAI inbound track`, for messages. */
  label: string;
  /** What to check when no session could ever be opened. */
  connectHint: string;
  log?: Logger;
}

interface Chunk {
  /** Where the chunk starts on the track, ms. */
  offsetMs: number;
  data: Uint8Array;
  /** Sent on the lane's current session. */
  sent: boolean;
}

interface Session {
  index: number;
  offsetMs: number;
  keepFromMs: number;
  keepToMs: number;
  catchUp: boolean;
  socket: WebSocket;
  terminateTimer?: ReturnType<typeof setTimeout>;
  beganAt: number;
  /** When the last message arrived: a session still sending its last turns is not stalled. */
  lastMessageAt: number;
  sentMs: number;
  terminateSent: boolean;
  terminated: boolean;
  closed: boolean;
  /** The `Error` frame the service sends before an error close. */
  error?: { text: string; code?: number };
}

/** An attempt that failed before `Begin`. */
class ConnectError extends Error {
  constructor(message: string, readonly transient: boolean) {
    super(message);
  }
}

/** One sequence of sessions over one stretch of audio: the live lane, or a catch-up lane. */
class Lane {
  chunks: Chunk[] = [];
  bytes = 0;
  session: Session | null = null;
  connecting = false;
  everBegan = false;
  /** Ended by an unrequested `Termination` (inactivity): reconnect on the next audio. */
  idle = false;
  lastFinalEndMs = 0;
  finished = false;
  readonly done = Promise.withResolvers<void>();

  constructor(readonly catchUp: boolean, public keepFromMs: number, readonly keepToMs: number) {}

  /** Bytes of the chunks not yet sent (always the newest ones: chunks go out in order). */
  unsentBytes = 0;

  get unsentMs(): number {
    return durationMs(this.unsentBytes);
  }

  get allSent(): boolean {
    return this.unsentBytes === 0;
  }

  /** Marks every chunk unsent, for replay on a new session. */
  resend(): void {
    for (const chunk of this.chunks) chunk.sent = false;
    this.unsentBytes = this.bytes;
  }
}

/** The socket of one track: see the module doc. */
export class ReplaySocket {
  readonly #options: SocketOptions;
  readonly #handler: SocketHandler;
  readonly #live: Lane;
  readonly #catchUps = new Set<Lane>();
  #sessionCount = 0;
  #failed = false;
  #closing = false;
  #droppedMs = 0;
  #endedCleanly = false;
  /** Track ms of all audio pushed so far. */
  #receivedMs = 0;
  #paceTimers = new Map<Lane, ReturnType<typeof setTimeout>>();
  #waiters = new Set<() => void>();
  #abort = new AbortController();

  constructor(options: SocketOptions, handler: SocketHandler) {
    this.#options = options;
    this.#handler = handler;
    this.#live = new Lane(false, 0, Infinity);
    this.#connect(this.#live);
  }

  /** Audio received but not yet sent on the live session, ms: how late its words will be. */
  get lagMs(): number {
    return this.#live.unsentMs;
  }

  /**
   * Audio received and not yet handed to the network, ms: the chunks not sent
   * on the live session plus what its socket still buffers. What fast mode's
   * backpressure bounds (see `AssemblyAIEngine.whenCaughtUp`).
   */
  get backlogMs(): number {
    const buffered = this.#live.session?.closed === false
      ? this.#live.session.socket.bufferedAmount
      : 0;
    return this.#live.unsentMs + durationMs(buffered);
  }

  /** Catch-up sessions still replaying. */
  get catchUpSessions(): number {
    return this.#catchUps.size;
  }

  /** Whether the live session ended with `Termination` after `Terminate`: every turn arrived. */
  get endedCleanly(): boolean {
    return this.#endedCleanly;
  }

  /** Whether the track has given up (no session will be opened again). */
  get failed(): boolean {
    return this.#failed;
  }

  /** Sends a chunk (50–1000 ms of µ-law) starting at `offsetMs` of the track. */
  push(offsetMs: number, data: Uint8Array): void {
    if (this.#failed) return;
    const lane = this.#live;
    lane.chunks.push({ offsetMs, data, sent: false });
    this.#receivedMs = offsetMs + durationMs(data);
    lane.bytes += data.length;
    lane.unsentBytes += data.length;
    this.#enforceLimit();
    if (lane.idle && !lane.connecting) {
      lane.idle = false;
      this.#connect(lane);
    }
    this.#flush(lane);
  }

  /** A final reported words of `session` up to `endMs` (track ms): their audio needs no replay. */
  finalized(session: SessionView, endMs: number): void {
    const lane = this.#laneOf(session);
    if (!lane) return;
    lane.lastFinalEndMs = Math.max(lane.lastFinalEndMs, endMs);
    while (
      lane.chunks.length > 0 && lane.chunks[0].sent &&
      lane.chunks[0].offsetMs + durationMs(lane.chunks[0].data) <= lane.lastFinalEndMs
    ) {
      lane.bytes -= lane.chunks.shift()!.data.length;
    }
  }

  /** Sends a text message on the live session, if one is open; false when it could not. */
  sendText(text: string): boolean {
    const session = this.#live.session;
    if (!session || session.closed || session.terminateSent) return false;
    try {
      session.socket.send(text);
      return true;
    } catch {
      return false;
    }
  }

  /** Sends the rest, terminates every session (waiting for their last turns), closes. */
  async close(): Promise<void> {
    this.#closing = true;
    try {
      await Promise.all([this.#finishLive(), ...[...this.#catchUps].map((l) => l.done.promise)]);
    } finally {
      this.#abort.abort(new Error("track closed"));
      for (const timer of this.#paceTimers.values()) clearTimeout(timer);
      for (const lane of [this.#live, ...this.#catchUps]) await this.#closeSocket(lane.session);
      if (this.#droppedMs > 0) {
        this.#handler.onFailed(
          `${this.#options.label}: ${
            Math.round(this.#droppedMs)
          } ms of audio were dropped untranscribed while AssemblyAI was unreachable (reconnect buffer full)`,
        );
      }
    }
  }

  // --- audio --------------------------------------------------------------

  /** Keeps the live buffer bounded: drops the oldest audio, loudly if it was never sent. */
  #enforceLimit(): void {
    const lane = this.#live;
    const limit = this.#options.bufferSeconds * 1000 * BYTES_PER_MS;
    let droppedNow = 0;
    while (lane.bytes > limit && lane.chunks.length > 1) {
      const chunk = lane.chunks.shift()!;
      lane.bytes -= chunk.data.length;
      // A sent chunk only loses its replay protection; an unsent one is lost audio.
      if (!chunk.sent) {
        droppedNow += durationMs(chunk.data);
        lane.unsentBytes -= chunk.data.length;
      }
    }
    if (droppedNow > 0) {
      if (this.#droppedMs === 0) {
        this.#options.log?.warn(
          `${this.#options.label}: the ${this.#options.bufferSeconds} s reconnect buffer is full; ` +
            `dropping the oldest audio (raise ASSEMBLYAI_BUFFER_SECONDS to keep more)`,
        );
      }
      this.#droppedMs += droppedNow;
    }
  }

  /** Sends a lane's unsent chunks in order, as fast as its session and the pacing allow. */
  #flush(lane: Lane): void {
    const session = lane.session;
    if (!session || session.closed || session.terminateSent || this.#failed) return;
    clearTimeout(this.#paceTimers.get(lane));
    this.#paceTimers.delete(lane);
    for (const chunk of lane.chunks) {
      if (chunk.sent) continue;
      const ms = durationMs(chunk.data);
      if (this.#options.realtimePacing) {
        const ahead = session.sentMs + ms - (performance.now() - session.beganAt);
        if (ahead > PACING_AHEAD_MS) {
          this.#paceTimers.set(lane, setTimeout(() => this.#flush(lane), ahead - PACING_AHEAD_MS));
          break;
        }
      }
      try {
        session.socket.send(chunk.data);
      } catch {
        return; // The socket is closing; onclose decides what happens next.
      }
      chunk.sent = true;
      lane.unsentBytes -= chunk.data.length;
      session.sentMs += ms;
    }
    // A catch-up lane ends once it has sent all it holds.
    if (lane.catchUp && lane.allSent) this.#terminate(session);
    this.#notify();
  }

  // --- sessions -----------------------------------------------------------

  /** Opens a session for `lane` (retrying as configured); on success replays its chunks. */
  async #connect(lane: Lane): Promise<void> {
    if (lane.connecting || this.#failed) return;
    lane.connecting = true;
    const backoff = lane.everBegan ? this.#options.reconnectBackoff : this.#options.connectBackoff;
    const signal = this.#abort.signal;
    let closingAttempts = 0;
    for (let attempt = 1;; attempt++) {
      let error: unknown;
      try {
        const session = await this.#connectOnce(lane);
        lane.connecting = false;
        return this.#began(lane, session);
      } catch (failure) {
        error = failure;
      }
      const transient = error instanceof ConnectError && error.transient;
      // Closing: at most the first connection's retries more, so a call ends promptly.
      const closingLeft = !this.#closing ||
        ++closingAttempts <= (this.#options.connectBackoff.attempts ?? 0);
      const delay = transient && closingLeft ? backoffDelay(attempt, backoff) : undefined;
      if (delay !== undefined && !signal.aborted) {
        this.#options.log?.warn(
          `${this.#options.label}: ${(error as Error).message} Retrying in ${delay} ms (attempt ${
            attempt + 1
          } of ${(backoff.attempts ?? Infinity) + 1}); audio is buffered meanwhile.`,
        );
        await sleep(delay, signal);
      }
      if (signal.aborted) {
        lane.connecting = false;
        return this.#finishLane(lane);
      }
      if (delay !== undefined) continue;
      lane.connecting = false;
      const message = (error as Error).message;
      const why = transient
        ? `gave up after ${attempt} attempts: ${message}${
          lane.everBegan ? "" : ` ${this.#options.connectHint}`
        }`
        : message;
      if (lane.catchUp) {
        this.#options.log?.warn(
          `${this.#options.label}: the catch-up session ${why}; ${
            Math.round(lane.unsentMs)
          } ms of audio from before the outage are not transcribed.`,
        );
        return this.#finishLane(lane);
      }
      return this.#fail(`${this.#options.label}: ${why}`);
    }
  }

  /** One attempt: resolves with the session on `Begin`; rejects on a close or a silent handshake. */
  #connectOnce(lane: Lane): Promise<Session> {
    const { promise, resolve, reject } = Promise.withResolvers<Session>();
    let socket: WebSocket;
    try {
      socket = new WebSocket(this.#options.url(), { headers: this.#options.headers });
    } catch (error) {
      // A malformed URL is a configuration problem: retrying cannot help.
      return Promise.reject(
        new ConnectError(`cannot connect to AssemblyAI: ${(error as Error).message}`, false),
      );
    }
    socket.binaryType = "arraybuffer";
    const session: Session = {
      index: ++this.#sessionCount,
      socket,
      offsetMs: 0,
      keepFromMs: lane.keepFromMs,
      keepToMs: lane.keepToMs,
      catchUp: lane.catchUp,
      beganAt: 0,
      lastMessageAt: 0,
      sentMs: 0,
      terminateSent: false,
      terminated: false,
      closed: false,
    };
    let began = false;
    const timer = setTimeout(() => {
      reject(
        new ConnectError(
          `no Begin from AssemblyAI within ${this.#options.beginTimeoutMs} ms.`,
          true,
        ),
      );
      session.closed = true;
      try {
        socket.close(1000, "callscribe: no Begin");
      } catch { /* already closing */ }
    }, this.#options.beginTimeoutMs);
    socket.onerror = () => {}; // Always followed by close, which decides.
    socket.onmessage = (event) => {
      if (typeof event.data !== "string" || session.closed) return;
      session.lastMessageAt = performance.now();
      let message: ServerMessage;
      try {
        message = parseServerMessage(event.data);
      } catch (error) {
        if (error instanceof ProtocolError) return this.#handler.onProtocolError(error);
        throw error;
      }
      if (message.type === "Error") {
        session.error = { text: message.error, code: message.error_code };
        return;
      }
      if (message.type === "Begin" && !began) {
        began = true;
        clearTimeout(timer);
        resolve(session);
        return;
      }
      if (message.type === "Termination") {
        session.terminated = true;
        this.#notify();
      }
      if (began) this.#handler.onMessage(session, message);
    };
    socket.onclose = (event) => {
      clearTimeout(session.terminateTimer);
      // Deno reports 0 when the connection ended without a close frame (a reset): that is 1006.
      const code = session.error?.code ?? (event.code === 0 ? 1006 : event.code);
      const description = describeClose(code, session.error?.text || event.reason);
      if (!began) {
        clearTimeout(timer);
        if (!session.closed) {
          session.closed = true;
          reject(new ConnectError(description, isTransientClose(code) || code === 1000));
        }
        return;
      }
      session.closed = true;
      this.#onSessionClosed(lane, session, code, description);
    };
    return promise;
  }

  #began(lane: Lane, session: Session): void {
    if (this.#failed) return void this.#closeSocket(session);
    session.beganAt = performance.now();
    lane.session = session;
    const reconnected = lane.everBegan;
    lane.everBegan = true;
    lane.resend();
    // Without pacing (the fake, in simulated calls) one session replays at any speed.
    if (reconnected && !lane.catchUp && this.#options.catchUp && this.#options.realtimePacing) {
      this.#splitBacklog(lane, session);
    }
    session.offsetMs = lane.chunks[0]?.offsetMs ?? this.#receivedMs;
    session.keepFromMs = lane.keepFromMs;
    if (reconnected) {
      const what = lane.catchUp ? "catch-up session" : "reconnected (session";
      this.#options.log?.info(
        `${this.#options.label}: ${what} ${session.index}${lane.catchUp ? "" : ")"}; replaying ${
          Math.round(lane.unsentMs)
        } ms of audio${
          !lane.catchUp && this.#catchUps.size ? " (older audio on a catch-up session)" : ""
        }`,
      );
    }
    this.#flush(lane);
  }

  /** After an outage: hands the backlog to a catch-up lane, so the live session starts near now. */
  #splitBacklog(lane: Lane, session: Session): void {
    const received = this.#receivedMs;
    const start = lane.chunks[0]?.offsetMs ?? received;
    if (received - start <= CATCH_UP_MIN_MS) return;
    const liveFrom = lane.chunks.findIndex((c) => c.offsetMs >= received - LIVE_LEAD_MS);
    if (liveFrom <= 0) return;
    const split = lane.chunks[liveFrom].offsetMs + SPLIT_AFTER_MS;
    const catchUp = new Lane(true, lane.keepFromMs, split);
    catchUp.chunks = lane.chunks
      .filter((c) => c.offsetMs < split + CATCH_UP_TAIL_MS)
      .map((c) => ({ ...c, sent: false }));
    catchUp.bytes = catchUp.chunks.reduce((n, c) => n + c.data.length, 0);
    catchUp.unsentBytes = catchUp.bytes;
    catchUp.everBegan = true; // It continues an earlier session: reconnect-style retries.
    const dropped = lane.chunks.splice(0, liveFrom);
    lane.bytes -= dropped.reduce((n, c) => n + c.data.length, 0);
    lane.unsentBytes = lane.bytes; // All unsent: the session has only just begun.
    lane.keepFromMs = Math.max(lane.keepFromMs, split);
    this.#catchUps.add(catchUp);
    this.#options.log?.info(
      `${this.#options.label}: ${Math.round(received - start)} ms behind after the outage; ` +
        `catching up on a second session (session ${session.index} goes on live)`,
    );
    this.#connect(catchUp);
  }

  #onSessionClosed(lane: Lane, session: Session, code: number, description: string): void {
    this.#handler.onSessionClosed(session);
    if (session !== lane.session || this.#failed || lane.finished) return this.#notify();
    lane.session = null;
    if (session.terminated) {
      if (session.terminateSent) {
        // Asked for: a catch-up lane is done; the live lane is done if closing.
        if (lane.catchUp || this.#closing) this.#finishLane(lane);
      } else {
        // The service ended the session itself (inactivity_timeout): resume on the next audio.
        this.#options.log?.info(
          `${this.#options.label}: AssemblyAI ended the idle session ${session.index}`,
        );
        lane.idle = true;
        if (lane.catchUp || !lane.allSent) this.#reconnect(lane);
      }
      return this.#notify();
    }
    // A normal close we did not ask for is treated like a dropped connection.
    if (isTransientClose(code) || code === 1000) {
      this.#options.log?.warn(
        `${this.#options.label}: ${description} Reconnecting; audio is buffered meanwhile.`,
      );
      this.#reconnect(lane);
    } else if (lane.catchUp) {
      this.#options.log?.warn(`${this.#options.label}: catch-up session: ${description}`);
      this.#finishLane(lane);
    } else {
      this.#fail(`${this.#options.label}: ${description}`);
    }
    this.#notify();
  }

  #reconnect(lane: Lane): void {
    lane.idle = false;
    // Audio since the last final is replayed; words before that point were already reported.
    lane.keepFromMs = Math.max(lane.keepFromMs, lane.lastFinalEndMs);
    this.#connect(lane);
  }

  #terminate(session: Session): void {
    if (session.terminateSent || session.closed) return;
    session.terminateSent = true;
    try {
      session.socket.send(TERMINATE);
    } catch {
      // Closed under us: onclose has already decided.
    }
    // A catch-up session that never answers must not hold the track open.
    const check = () => {
      if (session.closed || session.terminated) return;
      const quietMs = performance.now() - session.lastMessageAt;
      if (quietMs < this.#options.terminateTimeoutMs) {
        session.terminateTimer = setTimeout(check, this.#options.terminateTimeoutMs - quietMs);
      } else void this.#closeSocket(session);
    };
    session.lastMessageAt = performance.now();
    session.terminateTimer = setTimeout(check, this.#options.terminateTimeoutMs);
  }

  /** Waits for `Termination` while the session keeps talking; false once it has been quiet too long. */
  async #terminated(session: Session): Promise<boolean> {
    for (;;) {
      const quietMs = performance.now() - session.lastMessageAt;
      const left = this.#options.terminateTimeoutMs - quietMs;
      if (left <= 0) return false;
      if (await this.#until(() => session.terminated || session.closed, left)) return true;
    }
  }

  #finishLane(lane: Lane): void {
    if (lane.finished) return;
    lane.finished = true;
    if (lane.catchUp) this.#catchUps.delete(lane);
    lane.done.resolve();
    this.#notify();
  }

  /** End of the live lane: everything sent, Terminate, wait for Termination (reconnecting if it drops). */
  async #finishLive(): Promise<void> {
    const lane = this.#live;
    if (lane.idle && !lane.allSent) this.#reconnect(lane);
    if (lane.idle && lane.allSent) this.#endedCleanly = this.#droppedMs === 0;
    while (!this.#failed && !lane.finished) {
      // Everything buffered must reach a session that has begun.
      await this.#until(() =>
        this.#failed || lane.finished || (lane.idle && lane.allSent) ||
        (lane.session !== null && !lane.session.closed && lane.allSent)
      );
      if (this.#failed || lane.finished || !lane.session) break;
      const session = lane.session;
      this.#terminate(session);
      if (!(await this.#terminated(session))) {
        this.#options.log?.warn(
          `${this.#options.label}: no Termination (nothing for ${this.#options.terminateTimeoutMs} ms after Terminate); closing the session anyway`,
        );
        break;
      }
      // Terminated ends the loop; a transient close before it has started a reconnect, which replays the rest.
      if (session.terminated) {
        this.#endedCleanly = this.#droppedMs === 0;
        break;
      }
    }
    this.#finishLane(lane);
  }

  #fail(message: string): void {
    if (this.#failed) return;
    this.#failed = true;
    for (const timer of this.#paceTimers.values()) clearTimeout(timer);
    this.#live.chunks = [];
    this.#live.bytes = 0;
    this.#live.unsentBytes = 0;
    this.#handler.onFailed(message);
    void this.#closeSocket(this.#live.session);
    this.#finishLane(this.#live);
  }

  /** Closes a session's socket (1000) and waits, briefly, for it to be closed. */
  async #closeSocket(session: Session | null): Promise<void> {
    if (!session || session.closed) return;
    try {
      session.socket.close(1000, "callscribe: track ended");
    } catch {
      return;
    }
    await this.#until(() => session.closed, 2000);
  }

  #laneOf(session: SessionView): Lane | undefined {
    return [this.#live, ...this.#catchUps].find((l) => l.session === session);
  }

  #notify(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }

  /** Resolves true once `condition` holds (checked on every state change), false on timeout. */
  #until(condition: () => boolean, timeoutMs?: number): Promise<boolean> {
    if (condition()) return Promise.resolve(true);
    return new Promise((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const check = () => {
        if (!condition()) return;
        this.#waiters.delete(check);
        clearTimeout(timer);
        resolve(true);
      };
      this.#waiters.add(check);
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.#waiters.delete(check);
          resolve(false);
        }, timeoutMs);
      }
    });
  }
}
