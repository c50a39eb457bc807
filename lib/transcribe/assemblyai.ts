/**
 * The cloud engine: AssemblyAI Universal-Streaming (v3,
 * `wss://streaming.assemblyai.com/v3/ws`). The v2 realtime API is retired.
 *
 * One WebSocket session per track, opened when the track starts. Twilio's
 * µ-law goes out untouched (`encoding=pcm_mulaw`, `sample_rate=8000`) as
 * binary frames of 100 ms; AssemblyAI closes the socket (3007) for chunks
 * outside 50–1000 ms. `Turn` messages repeat the whole turn, so a partial
 * replaces the previous one and exactly one final is emitted per turn.
 *
 * Billing runs while a socket is open, so every session ends with
 * `Terminate` (waiting, bounded, for `Termination` so the last words arrive)
 * and a session is never left open.
 *
 * On a transient close (network, 1011, 3005, 3008) the track reconnects with
 * backoff. Audio not yet covered by a final stays in a bounded buffer and is
 * replayed on the new session; session times are shifted by where that
 * session's audio starts on the track, so `[start - end]` stays continuous.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { Track, TrackTranscriber, TranscriberEngine, TranscriptSink, Word } from "./engine.ts";

/** The production endpoint (EU: `wss://streaming.eu.assemblyai.com/v3/ws`). */
export const ASSEMBLYAI_URL = "wss://streaming.assemblyai.com/v3/ws";
/** The model asked for when none is configured (AssemblyAI requires `speech_model`). */
export const DEFAULT_SPEECH_MODEL = "universal-streaming-english";

/** What the AssemblyAI engine needs; see `.env.example` for the variables behind it. */
export interface AssemblyAIOptions {
  /** Sent only in the `Authorization` header; never logged. */
  apiKey: string;
  /** Base WebSocket URL (`ASSEMBLYAI_URL`). */
  url: string;
  speechModel: string;
  /** Ask for punctuated, cased end-of-turn transcripts (`format_turns`). */
  formatTurns: boolean;
  keytermsPrompt?: string[];
  /** `min_turn_silence`, ms. */
  minTurnSilenceMs?: number;
  /** `max_turn_silence`, ms. */
  maxTurnSilenceMs?: number;
  /** `language_detection` (multilingual model). */
  languageDetection?: boolean;
  /** Audio kept for replay while reconnecting, in seconds per track. */
  bufferSeconds: number;
  /**
   * Never send audio faster than real time (AssemblyAI closes with 3007
   * "Audio Transmission Rate Exceeded"). Off only against the local fake,
   * where simulated calls run faster than real time.
   */
  realtimePacing: boolean;
  /** How long to wait for `Termination` after `Terminate`. */
  terminateTimeoutMs: number;
  /** Delay before each reconnect attempt; its length is the number of attempts. */
  reconnectDelaysMs: number[];
}

/** Defaults for everything but the key. */
export const ASSEMBLYAI_DEFAULTS: Omit<AssemblyAIOptions, "apiKey"> = {
  url: ASSEMBLYAI_URL,
  speechModel: DEFAULT_SPEECH_MODEL,
  formatTurns: true,
  bufferSeconds: 60,
  realtimePacing: true,
  terminateTimeoutMs: 5000,
  reconnectDelaysMs: [250, 500, 1000, 2000, 4000, 5000],
};

/** µ-law at 8 kHz: one byte per sample, 8 bytes per ms. */
const BYTES_PER_MS = 8;
/** 100 ms: five 20 ms Twilio frames. */
const CHUNK_BYTES = 800;
/** AssemblyAI's shortest accepted chunk (50 ms). */
const MIN_CHUNK_BYTES = 400;
const MULAW_SILENCE = 0xff;
/**
 * How far audio may run ahead of the wall clock since `Begin`. The docs say
 * only "faster than real time" is rejected, not by how much; one second
 * absorbs network jitter and nothing more.
 */
const PACING_AHEAD_MS = 1000;

/** Close codes after which a new session is worth trying. */
const TRANSIENT_CODES = new Set([1001, 1005, 1006, 1011, 1012, 1013, 1014, 3005, 3008]);

/** One word as AssemblyAI sends it: times in ms of that session's audio. */
export interface AssemblyAIWord {
  start: number;
  end: number;
  text: string;
  confidence: number;
  word_is_final: boolean;
}

/** The `Turn` message. */
export interface TurnMessage {
  type: "Turn";
  turn_order: number;
  turn_is_formatted: boolean;
  end_of_turn: boolean;
  transcript: string;
  end_of_turn_confidence: number;
  words: AssemblyAIWord[];
  utterance?: string;
}

/** The connection URL for a session (the key is not in it: it goes in a header). */
export function sessionUrl(options: Omit<AssemblyAIOptions, "apiKey">): string {
  const url = new URL(options.url);
  const params = url.searchParams;
  params.set("sample_rate", "8000");
  params.set("encoding", "pcm_mulaw");
  params.set("speech_model", options.speechModel);
  params.set("format_turns", String(options.formatTurns));
  if (options.keytermsPrompt?.length) {
    // The docs type this as "list of strings" but are silent on how a list goes
    // in a query string; the official SDKs send it JSON-encoded, so do we.
    params.set("keyterms_prompt", JSON.stringify(options.keytermsPrompt));
  }
  if (options.minTurnSilenceMs !== undefined) {
    params.set("min_turn_silence", String(options.minTurnSilenceMs));
  }
  if (options.maxTurnSilenceMs !== undefined) {
    params.set("max_turn_silence", String(options.maxTurnSilenceMs));
  }
  if (options.languageDetection) params.set("language_detection", "true");
  return url.href;
}

/** Whether a close code is worth a reconnect. */
export function isTransientClose(code: number): boolean {
  return TRANSIENT_CODES.has(code);
}

/** A close code and reason as a sentence a user can act on. */
export function describeClose(code: number, reason: string): string {
  const said = reason ? `${code} "${reason}"` : String(code);
  switch (code) {
    case 1008:
      if (/concurren|too many/i.test(reason)) {
        return `AssemblyAI refused a new session (${said}): too many new sessions were opened in the last minute. Each call opens two; wait a minute or ask AssemblyAI for a higher limit.`;
      }
      return `AssemblyAI refused the connection (${said}): ASSEMBLYAI_API_KEY is wrong or revoked, or the account has no balance. Check the key in the AssemblyAI dashboard (API Keys) and your billing.`;
    case 3007:
      return `AssemblyAI rejected the audio (${said}): chunks must be 50-1000 ms long and sent no faster than real time. This is a callscribe bug; please report it.`;
    case 3006:
      return `AssemblyAI rejected a message (${said}). This is a callscribe bug; please report it.`;
    case 3008:
      return `the AssemblyAI session expired (${said}): sessions last at most 3 hours.`;
    case 3009:
      return `AssemblyAI refused the session (${said}): too many concurrent sessions on this account. Each call uses two; end other calls or raise the limit with AssemblyAI.`;
    case 1011:
    case 3005:
      return `AssemblyAI had a server error (${said}).`;
    case 1006:
      return `the connection to AssemblyAI was lost (${said === "1006" ? "1006, network" : said}).`;
    default:
      return `AssemblyAI closed the session (${said}).`;
  }
}

/** AssemblyAI Universal-Streaming: one session per track. */
export class AssemblyAIEngine implements TranscriberEngine {
  readonly name = "assemblyai";
  readonly options: AssemblyAIOptions;
  #log?: Logger;
  #tracks = new Set<AssemblyAITrack>();

  constructor(options: Partial<AssemblyAIOptions> & { apiKey: string }, log?: Logger) {
    if (!options.apiKey) {
      throw new Error("ASSEMBLYAI_API_KEY is not set; the AssemblyAI engine needs it");
    }
    // Unset (undefined) options keep their defaults.
    const set = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
    this.options = { ...ASSEMBLYAI_DEFAULTS, ...set } as AssemblyAIOptions;
    this.#log = log;
  }

  /** Tracks whose session is not yet closed (tests check none are left). */
  get openTracks(): number {
    return this.#tracks.size;
  }

  open(track: Track, sink: TranscriptSink): TrackTranscriber {
    const transcriber = new AssemblyAITrack(
      this.options,
      track,
      sink,
      this.#log,
      () => this.#tracks.delete(transcriber),
    );
    this.#tracks.add(transcriber);
    return transcriber;
  }

  /** Closes any track still open, so no session is left billing. */
  async dispose(): Promise<void> {
    await Promise.allSettled([...this.#tracks].map((t) => t.close()));
  }
}

interface Chunk {
  /** Where the chunk starts on the track, ms. */
  offsetMs: number;
  data: Uint8Array;
  /** Sent on the current session (kept until a final covers it, for replay). */
  sent: boolean;
}

interface Session {
  index: number;
  socket: WebSocket;
  /** `Begin` arrived: audio may flow. */
  ready: boolean;
  beganAt: number;
  /** Track ms where this session's audio starts: added to its word times. */
  offsetMs: number;
  sentMs: number;
  finalized: Set<number>;
  /** Unformatted end-of-turn messages waiting for their formatted twin. */
  pendingFinals: Map<number, TurnMessage>;
  lastPartial: string;
  terminated: boolean;
  closed: boolean;
  closeCode?: number;
  /** Text of the `Error` message the server sends before an error close. */
  errorText?: string;
}

class AssemblyAITrack implements TrackTranscriber {
  #options: AssemblyAIOptions;
  #track: Track;
  #sink: TranscriptSink;
  #log?: Logger;
  #onDone: () => void;
  #pending = new Uint8Array(CHUNK_BYTES);
  #pendingBytes = 0;
  #receivedBytes = 0;
  #buffer: Chunk[] = [];
  #bufferBytes = 0;
  #session: Session | null = null;
  #sessionCount = 0;
  #attempt = 0;
  #everBegan = false;
  #reconnecting = false;
  #lastFinalEndMs = 0;
  /** After a reconnect, words ending before this were already final (replayed audio). */
  #dedupFloorMs = 0;
  #droppedMs = 0;
  #failed = false;
  #closing: Promise<void> | null = null;
  #closed = false;
  #reconnectTimer?: ReturnType<typeof setTimeout>;
  #paceTimer?: ReturnType<typeof setTimeout>;
  #waiters = new Set<() => void>();

  constructor(
    options: AssemblyAIOptions,
    track: Track,
    sink: TranscriptSink,
    log: Logger | undefined,
    onDone: () => void,
  ) {
    this.#options = options;
    this.#track = track;
    this.#sink = sink;
    this.#log = log;
    this.#onDone = onDone;
    this.#connect();
  }

  write(mulaw: Uint8Array): void {
    if (this.#closing || this.#failed) return;
    let offset = 0;
    while (offset < mulaw.length) {
      const n = Math.min(mulaw.length - offset, CHUNK_BYTES - this.#pendingBytes);
      this.#pending.set(mulaw.subarray(offset, offset + n), this.#pendingBytes);
      this.#pendingBytes += n;
      this.#receivedBytes += n;
      offset += n;
      if (this.#pendingBytes === CHUNK_BYTES) this.#pushPending();
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#finish();
    return this.#closing;
  }

  // --- audio --------------------------------------------------------------

  /** Moves the pending bytes into a chunk, padding a short last one to 50 ms with silence. */
  #pushPending(): void {
    if (this.#pendingBytes === 0) return;
    const size = Math.max(this.#pendingBytes, MIN_CHUNK_BYTES);
    const data = new Uint8Array(size).fill(MULAW_SILENCE);
    data.set(this.#pending.subarray(0, this.#pendingBytes));
    const offsetMs = (this.#receivedBytes - this.#pendingBytes) / BYTES_PER_MS;
    this.#pendingBytes = 0;
    this.#buffer.push({ offsetMs, data, sent: false });
    this.#bufferBytes += data.length;
    this.#enforceLimit();
    this.#flush();
  }

  /** Keeps the buffer bounded: drops the oldest audio, loudly if it was never sent. */
  #enforceLimit(): void {
    const limit = this.#options.bufferSeconds * 1000 * BYTES_PER_MS;
    let droppedNow = 0;
    while (this.#bufferBytes > limit && this.#buffer.length > 1) {
      const chunk = this.#buffer.shift()!;
      this.#bufferBytes -= chunk.data.length;
      // A sent chunk only loses its replay protection; an unsent one is lost audio.
      if (!chunk.sent) droppedNow += chunk.data.length / BYTES_PER_MS;
    }
    if (droppedNow > 0) {
      if (this.#droppedMs === 0) {
        this.#report(
          `AssemblyAI ${this.#track} track: the ${this.#options.bufferSeconds} s reconnect buffer is full; ` +
            `dropping the oldest audio (raise ASSEMBLYAI_BUFFER_SECONDS to keep more)`,
        );
      }
      this.#droppedMs += droppedNow;
    }
  }

  /** Sends unsent chunks in order, as fast as the session (and pacing) allow. */
  #flush(): void {
    const session = this.#session;
    if (!session?.ready || session.closed || this.#failed) return;
    clearTimeout(this.#paceTimer);
    this.#paceTimer = undefined;
    for (const chunk of this.#buffer) {
      if (chunk.sent) continue;
      const ms = chunk.data.length / BYTES_PER_MS;
      if (this.#options.realtimePacing) {
        const ahead = session.sentMs + ms - (performance.now() - session.beganAt);
        if (ahead > PACING_AHEAD_MS) {
          this.#paceTimer = setTimeout(() => this.#flush(), ahead - PACING_AHEAD_MS);
          break;
        }
      }
      try {
        session.socket.send(chunk.data);
      } catch {
        return; // The socket is closing; onclose decides what happens next.
      }
      chunk.sent = true;
      session.sentMs += ms;
    }
    this.#notify();
  }

  /** Drops sent chunks a final has fully covered: they will never need replaying. */
  #trim(): void {
    while (
      this.#buffer.length > 0 && this.#buffer[0].sent &&
      this.#buffer[0].offsetMs + this.#buffer[0].data.length / BYTES_PER_MS <= this.#lastFinalEndMs
    ) {
      this.#bufferBytes -= this.#buffer.shift()!.data.length;
    }
  }

  // --- sessions -----------------------------------------------------------

  #connect(): void {
    this.#reconnecting = false;
    const index = ++this.#sessionCount;
    let socket: WebSocket;
    try {
      socket = new WebSocket(sessionUrl(this.#options), {
        headers: { Authorization: this.#options.apiKey },
      });
    } catch (error) {
      // A malformed URL is a configuration problem: retrying cannot help.
      this.#fail(
        `cannot connect to AssemblyAI at ${this.#options.url}: ${(error as Error).message}`,
      );
      return;
    }
    socket.binaryType = "arraybuffer";
    const session: Session = {
      index,
      socket,
      ready: false,
      beganAt: 0,
      offsetMs: 0,
      sentMs: 0,
      finalized: new Set(),
      pendingFinals: new Map(),
      lastPartial: "",
      terminated: false,
      closed: false,
    };
    this.#session = session;
    socket.onmessage = (event) => this.#onMessage(session, event.data);
    // An error event is always followed by close (1006), which decides.
    socket.onerror = () => {};
    socket.onclose = (event) => this.#onClose(session, event.code, event.reason);
  }

  #onMessage(session: Session, data: unknown): void {
    if (typeof data !== "string") return;
    let message: { type?: string; [key: string]: unknown };
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    switch (message.type) {
      case "Begin":
        session.ready = true;
        session.beganAt = performance.now();
        // Replay (or live audio) starts with the oldest buffered chunk.
        session.offsetMs = this.#buffer[0]?.offsetMs ??
          (this.#receivedBytes - this.#pendingBytes) / BYTES_PER_MS;
        this.#attempt = 0;
        if (this.#everBegan) {
          this.#log?.info(
            `AssemblyAI ${this.#track} track: reconnected (session ${session.index}); replaying ${
              Math.round(this.#bufferBytes / BYTES_PER_MS)
            } ms of audio`,
          );
        }
        this.#everBegan = true;
        this.#flush();
        break;
      case "Turn":
        this.#onTurn(session, message as unknown as TurnMessage);
        break;
      case "Termination":
        session.terminated = true;
        this.#notify();
        break;
      case "Error":
        session.errorText = String(message.error ?? "");
        break;
        // SpeechStarted and any newer message types carry nothing we print.
    }
  }

  #onTurn(session: Session, turn: TurnMessage): void {
    const order = turn.turn_order;
    if (session.finalized.has(order)) return;
    // A newer turn means an older one's formatted twin is not coming: keep what we have.
    for (const [pendingOrder, pending] of session.pendingFinals) {
      if (pendingOrder < order) this.#emitFinal(session, pending);
    }
    if (!turn.end_of_turn) {
      const words = this.#words(session, turn.words);
      const text = words.map((w) => w.text).join(" ");
      if (!text || text === session.lastPartial) return;
      session.lastPartial = text;
      this.#sink.onTranscript({
        type: "partial",
        track: this.#track,
        text,
        startMs: words[0].startMs,
        endMs: words.at(-1)!.endMs,
        words,
      });
      return;
    }
    // With format_turns the end of a turn comes twice, unformatted then
    // formatted: print only the formatted one.
    if (this.#options.formatTurns && !turn.turn_is_formatted) {
      session.pendingFinals.set(order, turn);
      return;
    }
    this.#emitFinal(session, turn);
  }

  #emitFinal(session: Session, turn: TurnMessage): void {
    session.finalized.add(turn.turn_order);
    session.pendingFinals.delete(turn.turn_order);
    session.lastPartial = "";
    const all = turn.words ?? [];
    const words = this.#words(session, all);
    if (words.length === 0) return;
    const text = words.length === all.length && turn.transcript
      ? turn.transcript
      : words.map((w) => w.text).join(" ");
    const startMs = words[0].startMs;
    const endMs = words.at(-1)!.endMs;
    this.#lastFinalEndMs = Math.max(this.#lastFinalEndMs, endMs);
    this.#trim();
    this.#sink.onTranscript({ type: "final", track: this.#track, text, startMs, endMs, words });
  }

  /** Session words on the track's clock, minus those already final before a reconnect. */
  #words(session: Session, words: AssemblyAIWord[]): Word[] {
    return (words ?? []).map((w) => ({
      text: w.text,
      startMs: Math.round(w.start + session.offsetMs),
      endMs: Math.round(w.end + session.offsetMs),
      confidence: w.confidence,
    })).filter((w) => (w.startMs + w.endMs) / 2 > this.#dedupFloorMs);
  }

  #flushPendingFinals(session: Session): void {
    for (const pending of [...session.pendingFinals.values()]) this.#emitFinal(session, pending);
  }

  #onClose(session: Session, rawCode: number, reason: string): void {
    // Deno reports 0 when the connection ended without a close frame (a TCP
    // reset, e.g. the server dropped us mid-send): that is 1006.
    const code = rawCode === 0 ? 1006 : rawCode;
    session.closed = true;
    session.closeCode = code;
    // A complete turn whose formatted twin never came is still a complete turn.
    this.#flushPendingFinals(session);
    // Our own close at the end of the track, or a stale session: nothing to decide.
    if (session !== this.#session || this.#failed || this.#closed) return this.#notify();
    if (session.terminated) return this.#notify();
    const description = describeClose(code, session.errorText || reason);
    // A normal close we did not ask for is treated like a dropped connection.
    if (isTransientClose(code) || code === 1000) {
      this.#reconnect(description);
    } else {
      this.#fail(description);
    }
    this.#notify();
  }

  #reconnect(description: string): void {
    const delays = this.#options.reconnectDelaysMs;
    if (this.#attempt >= delays.length) {
      const hint = this.#everBegan
        ? ""
        : ` Check ASSEMBLYAI_API_KEY, ASSEMBLYAI_URL (${this.#options.url}) and the network.`;
      this.#fail(
        `AssemblyAI ${this.#track} track: gave up after ${delays.length} reconnect attempts: ${description}${hint}`,
      );
      return;
    }
    const delay = delays[this.#attempt++];
    this.#reconnecting = true;
    // Audio since the last final is replayed; words the replay re-hears before that point are skipped.
    this.#dedupFloorMs = this.#lastFinalEndMs;
    for (const chunk of this.#buffer) chunk.sent = false;
    this.#log?.warn(
      `AssemblyAI ${this.#track} track: ${description} Reconnecting in ${delay} ms (attempt ${this.#attempt} of ${delays.length}); audio is buffered meanwhile.`,
    );
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      if (!this.#closed) this.#connect();
    }, delay);
  }

  #fail(message: string): void {
    if (this.#failed) return;
    this.#failed = true;
    clearTimeout(this.#paceTimer);
    clearTimeout(this.#reconnectTimer);
    this.#buffer = [];
    this.#bufferBytes = 0;
    this.#report(`${message} The rest of the ${this.#track} track is not transcribed.`);
    this.#closeSocket();
    this.#notify();
  }

  /** End of the track: last chunk, Terminate, wait for Termination, close. */
  async #finish(): Promise<void> {
    this.#pushPending();
    try {
      while (!this.#failed) {
        // Everything buffered must reach a session that has begun.
        await this.#until(() =>
          this.#failed ||
          (this.#session !== null && this.#session.ready && !this.#session.closed &&
            this.#buffer.every((c) => c.sent))
        );
        if (this.#failed) break;
        const session = this.#session!;
        try {
          session.socket.send(JSON.stringify({ type: "Terminate" }));
        } catch {
          // Closed under us: onclose has already decided (reconnect or fail).
        }
        const done = await this.#until(
          () => session.terminated || session.closed,
          this.#options.terminateTimeoutMs,
        );
        if (!done) {
          this.#log?.warn(
            `AssemblyAI ${this.#track} track: no Termination within ${this.#options.terminateTimeoutMs} ms; closing the session anyway`,
          );
          break;
        }
        // Terminated (or closed for good) ends the loop; a transient close
        // before Termination has started a reconnect, which replays the rest.
        if (session.terminated || this.#failed) break;
        if (!this.#reconnecting && this.#session === session) break;
      }
    } finally {
      this.#closed = true;
      clearTimeout(this.#paceTimer);
      clearTimeout(this.#reconnectTimer);
      if (this.#session) this.#flushPendingFinals(this.#session);
      await this.#closeSocket();
      if (this.#droppedMs > 0) {
        this.#report(
          `AssemblyAI ${this.#track} track: ${
            Math.round(this.#droppedMs)
          } ms of audio were dropped untranscribed while AssemblyAI was unreachable (reconnect buffer full)`,
        );
      }
      this.#onDone();
    }
  }

  /** Closes the current socket (1000) and waits, briefly, for it to be closed. */
  async #closeSocket(): Promise<void> {
    const session = this.#session;
    if (!session || session.closed) return;
    try {
      session.socket.close(1000, "callscribe: track ended");
    } catch {
      return;
    }
    await this.#until(() => session.closed, 2000);
  }

  // --- plumbing -----------------------------------------------------------

  #report(message: string): void {
    const safe = this.#options.apiKey ? message.replaceAll(this.#options.apiKey, "***") : message;
    // The sink turns it into a call-error event, which the server logs.
    if (this.#sink.onError) this.#sink.onError(new Error(safe));
    else this.#log?.error(safe);
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
