/**
 * The cloud engine: AssemblyAI streaming v3 (`wss://streaming.assemblyai.com/v3/ws`),
 * every current streaming model (see `SPEECH_MODELS`).
 *
 * One session per track. Twilio's µ-law goes out untouched
 * (`encoding=pcm_mulaw`, `sample_rate=8000`) in 100 ms chunks; the last one
 * is padded to the 50 ms minimum. `Turn` messages repeat the whole turn, so a
 * partial replaces the previous one and exactly one final is emitted per
 * turn: the formatted twin with Universal-Streaming's `format_turns`, the only
 * end of turn with U3 Pro. Reconnecting, replay, pacing and catch-up are the
 * socket's (`assemblyai_socket.ts`); the wire format is
 * `assemblyai_protocol.ts`'s.
 *
 * Billing runs while a session is open, so every session ends with
 * `Terminate` and none is left open.
 *
 * @module
 */
import { BATCH_BYTES, ByteBatcher, BYTES_PER_MS } from "../audio/framing.ts";
import { MULAW_SILENCE, mulawToFloat32 } from "../audio/mulaw.ts";
import type { Logger } from "../log.ts";
import { sleep } from "../async/sleep.ts";
import {
  ASSEMBLYAI_URL,
  type AssemblyAIWord,
  type ConfigurationUpdate,
  DEFAULT_SPEECH_MODEL,
  FORCE_ENDPOINT,
  type ProtocolError,
  type SessionSettings,
  sessionUrl,
  SPEECH_MODELS,
  type SpeechModel,
  type TurnMessage,
  updateConfigurationMessage,
  validateSettings,
} from "./assemblyai_protocol.ts";
import { type ReplayOptions, ReplaySocket, type SessionView } from "./assemblyai_socket.ts";
import { endsSpeech, type VoiceDetector } from "./voice_detector.ts";
import type {
  Track,
  TrackOptions,
  TrackTranscriber,
  TranscriberEngine,
  Transcript,
  TranscriptSink,
  Word,
} from "./engine.ts";

/** What the AssemblyAI engine needs; see `.env.example` for the variables behind it. */
export interface AssemblyAIOptions extends SessionSettings, ReplayOptions {
  /** Sent only in the `Authorization` header; never logged. */
  apiKey?: string;
  /** A temporary token instead of the key (sent as the `token` query parameter; never logged). */
  token?: string;
  /** Set by the hybrid engine: which engine's finals stand in when AssemblyAI fails. */
  standIn?: string;
  /**
   * A new voice detector for a track, taking its 8 kHz audio (energy or
   * Silero): each end of speech it hears sends `ForceEndpoint`, so the turn
   * ends without waiting for AssemblyAI's own silence rules (Pipecat's
   * `vad_force_turn_endpoint`).
   */
  voiceDetector?: () => VoiceDetector;
}

/** Defaults for everything but the credentials. */
export const ASSEMBLYAI_DEFAULTS: Omit<AssemblyAIOptions, "apiKey" | "token"> = {
  url: ASSEMBLYAI_URL,
  speechModel: DEFAULT_SPEECH_MODEL,
  formatTurns: true,
  bufferSeconds: 60,
  realtimePacing: true,
  catchUp: true,
  beginTimeoutMs: 2000,
  connectBackoff: { initialMs: 500, maxMs: 500, attempts: 2 },
  reconnectBackoff: { initialMs: 250, maxMs: 5000, attempts: 6 },
  terminateTimeoutMs: 5000,
};

/**
 * {@link AssemblyAIEngine.whenCaughtUp}: at most this much audio per track
 * not yet sent. The service takes audio at real time (3007 otherwise), so a
 * faster sender waits here instead of filling the reconnect buffer.
 */
const CAUGHT_UP_MS = 1000;
/** How often {@link AssemblyAIEngine.whenCaughtUp} looks again (the socket reports no progress). */
const CAUGHT_UP_POLL_MS = 20;

/** AssemblyAI's shortest accepted chunk (50 ms). */
const MIN_CHUNK_BYTES = 50 * BYTES_PER_MS;

/** AssemblyAI streaming: one session per track. */
export class AssemblyAIEngine implements TranscriberEngine {
  readonly name = "assemblyai";
  readonly options: AssemblyAIOptions;
  readonly model: SpeechModel;
  #log?: Logger;
  #tracks = new Set<AssemblyAITrack>();
  #warned = new Set<string>();

  /** Validates the options (a `SettingsError` names the setting and the fix). */
  constructor(options: Partial<AssemblyAIOptions>, log?: Logger) {
    if (!options.apiKey && !options.token) {
      throw new Error("ASSEMBLYAI_API_KEY is not set; the AssemblyAI engine needs it");
    }
    // Unset (undefined) options keep their defaults.
    const set = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
    this.options = { ...ASSEMBLYAI_DEFAULTS, ...set } as AssemblyAIOptions;
    this.model = validateSettings(this.options);
    this.#log = log;
    if (this.model.unlisted) {
      log?.warn(
        `AssemblyAI speech model ${this.options.speechModel} is not one callscribe knows; sending ` +
          `it as given (the service refuses a wrong name with 3006). Known: ` +
          `${Object.keys(SPEECH_MODELS).join(", ")}.`,
      );
    }
    if (this.model.replacedBy) {
      log?.warn(
        `AssemblyAI speech model ${this.options.speechModel} is deprecated; use ${this.model.replacedBy}`,
      );
    }
  }

  /** Tracks whose session is not yet closed (tests check none are left). */
  get openTracks(): number {
    return this.#tracks.size;
  }

  open(track: Track, sink: TranscriptSink, options?: TrackOptions): AssemblyAITrack {
    const transcriber = new AssemblyAITrack(this, track, sink, this.#log, () => {
      this.#tracks.delete(transcriber);
    }, options);
    this.#tracks.add(transcriber);
    return transcriber;
  }

  /** Pushes new settings (e.g. key terms) to every open track, mid-call (`UpdateConfiguration`). */
  updateConfiguration(update: ConfigurationUpdate): void {
    for (const track of this.#tracks) track.updateConfiguration(update);
  }

  /** Logs a `Warning` from the service once per process (each session may repeat it). */
  warnOnce(code: number, text: string): void {
    const key = `${code}:${text}`;
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    this.#log?.warn(`AssemblyAI warning ${code}: ${text}`);
  }

  /**
   * Resolves once no open track has more than {@link CAUGHT_UP_MS} of audio
   * not yet sent (waiting for `Begin`, for a reconnect, or for the real-time
   * pacing); a track that has failed takes no more audio and never holds it.
   */
  async whenCaughtUp(): Promise<void> {
    while ([...this.#tracks].some((t) => t.backlogMs > CAUGHT_UP_MS)) {
      await sleep(CAUGHT_UP_POLL_MS);
    }
  }

  /** Closes any track still open, so no session is left billing. */
  async dispose(): Promise<void> {
    await Promise.allSettled([...this.#tracks].map((t) => t.close()));
  }
}

interface TurnState {
  finalized: Set<number>;
  /** Unformatted end-of-turn messages waiting for their formatted twin. */
  pendingFinals: Map<number, TurnMessage>;
  lastPartial: string;
}

/** Settings an `UpdateConfiguration` changes, under their `SessionSettings` names (for reconnects). */
const UPDATE_KEYS: Record<keyof ConfigurationUpdate, keyof SessionSettings> = {
  keyterms_prompt: "keytermsPrompt",
  prompt: "prompt",
  min_turn_silence: "minTurnSilenceMs",
  max_turn_silence: "maxTurnSilenceMs",
  end_of_turn_confidence_threshold: "endOfTurnConfidenceThreshold",
  vad_threshold: "vadThreshold",
};

/** One track's transcriber; `forceEndpoint` and `updateConfiguration` reach its live session. */
export class AssemblyAITrack implements TrackTranscriber {
  readonly #engine: AssemblyAIEngine;
  readonly #track: Track;
  readonly #sink: TranscriptSink;
  readonly #log?: Logger;
  readonly #onDone: () => void;
  readonly #batcher = new ByteBatcher(BATCH_BYTES);
  readonly #socket: ReplaySocket;
  readonly #turns = new Map<number, TurnState>();
  #settings: SessionSettings;
  #receivedBytes = 0;
  #closing: Promise<void> | null = null;
  #protocolErrors = 0;
  #otherTypes = new Set<string>();
  readonly #detector?: VoiceDetector;

  constructor(
    engine: AssemblyAIEngine,
    track: Track,
    sink: TranscriptSink,
    log: Logger | undefined,
    onDone: () => void,
    trackOptions: TrackOptions = {},
  ) {
    this.#engine = engine;
    this.#track = track;
    this.#sink = sink;
    this.#log = log;
    this.#onDone = onDone;
    const options = engine.options;
    // The call's key terms join the engine's (keyterms_prompt is per session).
    const keyterms = [
      ...new Set([...(options.keytermsPrompt ?? []), ...(trackOptions.keyterms ?? [])]),
    ];
    this.#settings = { ...options, ...(keyterms.length && { keytermsPrompt: keyterms }) };
    this.#detector = options.voiceDetector?.();
    this.#socket = new ReplaySocket({
      ...options,
      url: () => sessionUrl(this.#settings, options.token),
      headers: options.token ? {} : { Authorization: options.apiKey! },
      label: `AssemblyAI ${track} track`,
      connectHint: `Check ${
        options.token ? "the temporary token" : "ASSEMBLYAI_API_KEY"
      }, ASSEMBLYAI_URL (${options.url}) and the network.`,
      log,
    }, {
      onMessage: (session, message) => {
        switch (message.type) {
          case "Turn":
            return this.#onTurn(session, message);
          case "Warning":
            return this.#engine.warnOnce(message.warning_code, message.warning);
          case "SpeechStarted":
            // Barge-in signal for voice agents; a transcript shows words, not speech onsets.
            return;
          case "Other":
            if (!this.#otherTypes.has(message.name)) {
              this.#otherTypes.add(message.name);
              this.#log?.info(`AssemblyAI ${track} track: ignoring ${message.name} messages`);
            }
            return;
        }
      },
      onSessionClosed: (session) => this.#flushPendingFinals(session),
      onFailed: (message) => this.#report(message),
      onProtocolError: (error: ProtocolError) => {
        if (this.#protocolErrors++ === 0) {
          this.#log?.warn(`AssemblyAI ${track} track: ${error.message}`);
        }
      },
    });
  }

  /** Audio received but not yet sent on the live session, ms (0 when keeping up). */
  get lagMs(): number {
    return this.#socket.lagMs;
  }

  /** Audio written and not yet handed to the network, ms (0 once the track has failed). */
  get backlogMs(): number {
    return this.#socket.failed ? 0 : this.#socket.backlogMs;
  }

  /** After `close`: whether AssemblyAI delivered every turn (its last session answered `Terminate`). */
  get endedCleanly(): boolean {
    return this.#socket.endedCleanly;
  }

  /** Catch-up sessions replaying audio from before an outage. */
  get catchUpSessions(): number {
    return this.#socket.catchUpSessions;
  }

  write(mulaw: Uint8Array): void {
    if (this.#closing || this.#socket.failed) return;
    this.#batcher.push(mulaw, (batch) => this.#push(batch));
  }

  /** Ends the current turn now (`ForceEndpoint`), e.g. when a voice detector hears speech end. */
  forceEndpoint(): boolean {
    return this.#socket.sendText(FORCE_ENDPOINT);
  }

  /** Changes settings mid-call (`UpdateConfiguration`); later sessions of this track keep them. */
  updateConfiguration(update: ConfigurationUpdate): boolean {
    const changed: Partial<Record<keyof SessionSettings, unknown>> = {};
    for (const [key, value] of Object.entries(update)) {
      const name = UPDATE_KEYS[key as keyof ConfigurationUpdate];
      if (!name) {
        throw new Error(`Cannot update AssemblyAI setting ${key}: it is fixed for a session`);
      }
      changed[name] = value;
    }
    const settings = { ...this.#settings, ...changed } as SessionSettings;
    validateSettings(settings);
    this.#settings = settings;
    return this.#socket.sendText(updateConfigurationMessage(update));
  }

  close(): Promise<void> {
    this.#closing ??= this.#finish();
    return this.#closing;
  }

  async #finish(): Promise<void> {
    const rest = this.#batcher.drain();
    if (rest.length > 0 && !this.#socket.failed) {
      const data = new Uint8Array(Math.max(rest.length, MIN_CHUNK_BYTES)).fill(MULAW_SILENCE);
      data.set(rest);
      this.#socket.push((this.#receivedBytes - rest.length) / BYTES_PER_MS, data);
    }
    try {
      await this.#socket.close();
    } finally {
      this.#onDone();
    }
  }

  #push(batch: Uint8Array): void {
    this.#receivedBytes += batch.length;
    // The batch is a view into the batcher's buffer: the socket keeps a copy for replay.
    this.#socket.push((this.#receivedBytes - batch.length) / BYTES_PER_MS, batch.slice());
    // Only while the live session keeps up: behind, the end of speech would land early in its audio.
    const ended = this.#detector !== undefined &&
      endsSpeech(this.#detector.push(mulawToFloat32(batch)));
    if (ended && this.#socket.lagMs === 0) this.forceEndpoint();
  }

  // --- turns --------------------------------------------------------------

  #state(session: SessionView): TurnState {
    let state = this.#turns.get(session.index);
    if (!state) {
      state = { finalized: new Set(), pendingFinals: new Map(), lastPartial: "" };
      this.#turns.set(session.index, state);
    }
    return state;
  }

  #onTurn(session: SessionView, turn: TurnMessage): void {
    const state = this.#state(session);
    const order = turn.turn_order;
    if (state.finalized.has(order)) return;
    // A newer turn means an older one's formatted twin is not coming: keep what we have.
    for (const [pendingOrder, pending] of state.pendingFinals) {
      if (pendingOrder < order) this.#emitFinal(session, pending);
    }
    if (!turn.end_of_turn) {
      const words = this.#words(session, turn.words);
      const text = words.map((w) => w.text).join(" ");
      if (!text || text === state.lastPartial) return;
      state.lastPartial = text;
      return this.#emit("partial", text, words, turn);
    }
    // Universal-Streaming with format_turns ends a turn twice, unformatted then
    // formatted: print only the formatted one. U3 Pro ends it once, formatted.
    const twinComing = this.#engine.model.family === "universal-streaming" &&
      this.#settings.formatTurns;
    if (twinComing && !turn.turn_is_formatted) {
      state.pendingFinals.set(order, turn);
      return;
    }
    this.#emitFinal(session, turn);
  }

  #emitFinal(session: SessionView, turn: TurnMessage): void {
    const state = this.#state(session);
    state.finalized.add(turn.turn_order);
    state.pendingFinals.delete(turn.turn_order);
    state.lastPartial = "";
    const all = turn.words;
    if (all.length > 0) {
      this.#socket.finalized(session, Math.round(all.at(-1)!.end + session.offsetMs));
    }
    const words = this.#words(session, all);
    if (words.length === 0) return;
    const text = words.length === all.length && turn.transcript
      ? turn.transcript
      : words.map((w) => w.text).join(" ");
    this.#emit("final", text, words, turn);
  }

  #emit(type: Transcript["type"], text: string, words: Word[], turn: TurnMessage): void {
    const [first, last] = [words[0], words.at(-1)!];
    this.#sink.onTranscript({
      type,
      track: this.#track,
      text,
      startMs: first.startMs,
      endMs: last.endMs,
      words,
      // Sent only when asked for (speaker_labels, language_detection).
      ...(turn.speaker_label !== undefined && { speaker: turn.speaker_label }),
      ...(turn.language_code !== undefined && { language: turn.language_code }),
    });
  }

  /** Session words on the track's clock, only those this session reports (see `SessionView`). */
  #words(session: SessionView, words: AssemblyAIWord[]): Word[] {
    return words.map((w) => ({
      text: w.text,
      startMs: Math.round(w.start + session.offsetMs),
      endMs: Math.round(w.end + session.offsetMs),
      confidence: w.confidence,
    })).filter((w) => {
      const middle = (w.startMs + w.endMs) / 2;
      return middle > session.keepFromMs && middle < session.keepToMs;
    });
  }

  /** A complete turn whose formatted twin never came is still a complete turn. */
  #flushPendingFinals(session: SessionView): void {
    const state = this.#turns.get(session.index);
    if (!state) return;
    for (const pending of [...state.pendingFinals.values()]) this.#emitFinal(session, pending);
  }

  #report(message: string): void {
    const { apiKey, token, standIn } = this.#engine.options;
    const rest = standIn
      ? `The ${standIn} engine's finals stand in for the rest of the ${this.#track} track.`
      : `The rest of the ${this.#track} track is not transcribed.`;
    let safe = message.endsWith("(reconnect buffer full)") ? message : `${message} ${rest}`;
    for (const secret of [apiKey, token]) if (secret) safe = safe.replaceAll(secret, "***");
    // The sink turns it into a call-error event, which the server logs.
    if (this.#sink.onError) this.#sink.onError(new Error(safe));
    else this.#log?.error(safe);
  }
}
