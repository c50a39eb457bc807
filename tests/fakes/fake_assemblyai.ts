/**
 * A local AssemblyAI streaming (v3) server for offline tests.
 *
 * It speaks the published protocol (docs: "Message Sequence", "Streaming
 * API reference", "Common session errors and closures", Universal-3 Pro
 * "Partial transcripts and turn detection"; the `assemblyai` SDK 4.41.5's
 * `src/types/streaming/index.ts` for message shapes) and rejects what the
 * real service rejects: a missing or wrong `Authorization` header or
 * `token` (1008), a bad query or unknown model (3006), audio chunks outside
 * 50–1000 ms or faster than real time (3007), and text that is not a known
 * message (3006); each error close is preceded by an `Error` message, as
 * the docs describe. Words are real: the audio it receives is decoded by
 * the engine it is given (the local sherpa-onnx engine in tests).
 *
 * Universal-Streaming models: `Turn`s grow word by word, end with an
 * unformatted end of turn and, with `format_turns`, a formatted one. U3 Pro
 * models: one early partial after 750 ms of speech, then at most one partial
 * per pause, all words `word_is_final: false`; one end of turn, formatted,
 * all words final. `SpeechStarted` opens each turn. `Terminate` flushes the
 * last turn and answers `Termination`, then closes with 1000.
 *
 * With `speaker_labels=true` every `Turn` carries `speaker_label` and each
 * final word `speaker` (docs, "Streaming Diarization and Multichannel": "the
 * speaker_label field will appear on every Turn event, and each final word in
 * the words array will include a speaker field"); `max_speakers` is a hard
 * limit there, so a speaker past it takes the last label allowed. With
 * `language_detection=true` on a model that has it, utterances and final
 * turns carry `language_code` and `language_confidence` (Streaming API
 * reference, `language_detection`: "return language metadata on utterances
 * and final turns"). Who speaks and in which language is the test's to say
 * (`speakerAt`, `languageAt`): the fake cannot tell voices or languages apart.
 *
 * It records what it saw (chunk sizes, messages, sessions open and
 * closed), and can drop a session after some audio, or refuse every
 * session with a given close code, for resilience tests.
 *
 * @module
 */
import { mulawEncode } from "../../lib/audio/mulaw.ts";
import { findEntities, normalizeToken } from "../../lib/redact/find_entities.ts";
import type { RedactPolicy } from "../../lib/redact/policies.ts";
import {
  ASSEMBLYAI_PII_POLICIES,
  policyOfAssemblyAI,
} from "../../lib/redact/assemblyai_policies.ts";
import type {
  TrackTranscriber,
  TranscriberEngine,
  Transcript,
} from "../../lib/transcribe/engine.ts";
import {
  type AssemblyAIWord,
  SPEECH_MODELS,
  type TurnMessage,
} from "../../lib/transcribe/assemblyai_protocol.ts";

/** How the fake behaves. */
export interface FakeAssemblyAIOptions {
  /** The only key accepted in the `Authorization` header. */
  apiKey: string;
  /** Decodes the received audio (µ-law 8 kHz in); its words become the `Turn`s. */
  engine: TranscriberEngine;
  /**
   * Close a session with `dropCode` once it has received this much audio
   * (ms of audio rather than wall time, so fast simulated calls drop at the
   * same point every run).
   */
  dropAfterMs?: number;
  /** Close code for the drop (default 1011). */
  dropCode?: number;
  /** How many sessions, counted from the first, get dropped (default 1). */
  dropSessions?: number;
  /** Close a session with `dropCode` right after it has ended this many turns. */
  dropAfterTurns?: number;
  /** Refuse every session right after the upgrade with this code (e.g. 3009). */
  rejectCode?: number;
  rejectReason?: string;
  /** Temporary tokens accepted in the `token` query parameter instead of the header. */
  tokens?: string[];
  /** Accept the upgrade but never send `Begin` (a stalled handshake). */
  stallBegin?: boolean;
  /** Who speaks at a moment of a session's audio (ms), with `speaker_labels` (default always `A`). */
  speakerAt?: (sessionMs: number) => string;
  /** The language spoken at a moment of a session's audio (ms), with `language_detection` (default `en`). */
  languageAt?: (sessionMs: number) => string;
  /** A `Warning` to send right after `Begin` (SDK `WarningEvent`). */
  warning?: { code: number; text: string };
  /**
   * How far a session's audio may run ahead of the wall clock since `Begin`
   * before it is closed with 3007. The docs reject audio "faster than real
   * time" without a figure; 1000 ms is our stated tolerance. `Infinity` for
   * simulated calls, which run faster than real time.
   */
  realtimeToleranceMs?: number;
}

/** What the fake saw of one session. */
export interface FakeSession {
  id: string;
  /** The query string as received. */
  query: Record<string, string>;
  /** Query parameters the fake does not know (the real service ignores or rejects them). */
  unknownParams: string[];
  authorized: boolean;
  /** Size of each binary chunk received, in bytes and in ms of audio. */
  chunkBytes: number[];
  chunkMs: number[];
  /** JSON messages the client sent. */
  clientMessages: unknown[];
  /** Messages the fake sent. */
  serverMessages: Array<{ type: string; [key: string]: unknown }>;
  open: boolean;
  terminateReceived: boolean;
  closeCode?: number;
  closeReason?: string;
  audioMs: number;
  /** The most this session's audio ran ahead of its wall clock since `Begin`, ms. */
  maxAheadMs: number;
}

/** A running fake. */
export interface FakeAssemblyAI {
  /** Base URL to give the client as `ASSEMBLYAI_URL`, e.g. `ws://127.0.0.1:4321/v3/ws`. */
  url: string;
  sessions: FakeSession[];
  /** Sessions whose socket is still open. */
  readonly openSessions: number;
  /** Resolves once every session so far has closed (bounded by `timeoutMs`). */
  allClosed(timeoutMs?: number): Promise<boolean>;
  close(): Promise<void>;
}

/** The stated tolerance of the real-time rule (see `realtimeToleranceMs`). */
export const REALTIME_TOLERANCE_MS = 1000;
/** U3 Pro: "an early partial is emitted after 750ms of continuous speech" (docs, U3 Pro partials). */
const U3_EARLY_PARTIAL_MS = 750;
/** U3 Pro: a pause this long in the words counts as a silence for a silence-based partial (our figure). */
const U3_PAUSE_MS = 300;
const ENCODINGS: Record<string, number> = { pcm_mulaw: 1, pcm_s16le: 2 };
const KNOWN_PARAMS = new Set([
  "sample_rate",
  "encoding",
  "speech_model",
  "format_turns",
  "keyterms_prompt",
  "min_turn_silence",
  "max_turn_silence",
  "min_end_of_turn_silence_when_confident",
  "end_of_turn_confidence_threshold",
  "language_detection",
  "speaker_labels",
  "max_speakers",
  "inactivity_timeout",
  "vad_threshold",
  "filter_profanity",
  "prompt",
  "token",
  "redact_pii",
  "redact_pii_policies",
  "redact_pii_sub",
  "include_partial_turns",
]);
const CLIENT_TYPES = new Set(["Terminate", "ForceEndpoint", "UpdateConfiguration", "KeepAlive"]);
/** Sessions last at most 3 hours (`expires_at`). */
const MAX_SESSION_SECONDS = 3 * 3600;

/** Starts the fake on 127.0.0.1, on a free port. */
export async function startFakeAssemblyAI(options: FakeAssemblyAIOptions): Promise<FakeAssemblyAI> {
  const sessions: FakeSession[] = [];
  const closedWaiters = new Set<() => void>();
  const notifyClosed = () => {
    for (const waiter of [...closedWaiters]) waiter();
  };
  const ready = Promise.withResolvers<number>();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: ({ port }) => ready.resolve(port),
  }, (request) => {
    const url = new URL(request.url);
    if (url.pathname !== "/v3/ws") return new Response("Not Found", { status: 404 });
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("Expected a WebSocket upgrade", { status: 426 });
    }
    // Headers must be read before the upgrade hands the request over.
    const authorization = request.headers.get("authorization");
    const { socket, response } = Deno.upgradeWebSocket(request);
    const record: FakeSession = {
      id: crypto.randomUUID(),
      query: Object.fromEntries(url.searchParams),
      unknownParams: [...url.searchParams.keys()].filter((k) => !KNOWN_PARAMS.has(k)),
      authorized: authorization === options.apiKey ||
        (!authorization && options.tokens?.includes(url.searchParams.get("token") ?? "") === true),
      chunkBytes: [],
      chunkMs: [],
      clientMessages: [],
      serverMessages: [],
      open: false,
      terminateReceived: false,
      audioMs: 0,
      maxAheadMs: -Infinity,
    };
    const index = sessions.push(record) - 1;
    runSession(socket, record, index, authorization, options, notifyClosed);
    return response;
  });
  const port = await ready.promise;
  return {
    url: `ws://127.0.0.1:${port}/v3/ws`,
    sessions,
    get openSessions() {
      return sessions.filter((s) => s.open).length;
    },
    allClosed(timeoutMs = 10_000) {
      const done = () => sessions.every((s) => !s.open);
      if (done()) return Promise.resolve(true);
      return new Promise((resolve) => {
        const check = () => {
          if (!done()) return;
          closedWaiters.delete(check);
          clearTimeout(timer);
          resolve(true);
        };
        const timer = setTimeout(() => {
          closedWaiters.delete(check);
          resolve(false);
        }, timeoutMs);
        closedWaiters.add(check);
      });
    },
    async close() {
      await server.shutdown();
    },
  };
}

function runSession(
  socket: WebSocket,
  record: FakeSession,
  index: number,
  authorization: string | null,
  options: FakeAssemblyAIOptions,
  notifyClosed: () => void,
): void {
  const openedAt = performance.now();
  socket.binaryType = "arraybuffer";
  let closing = false;
  let transcriber: TrackTranscriber | null = null;
  /** Local engine output is ignored once the session is being torn down abnormally. */
  let silenced = false;
  let bytesPerSample = 1;
  let sampleRate = 8000;
  let formatTurns = false;
  /** `redact_pii`: our policies of its `redact_pii_policies`, and the substitution. */
  let redaction: { policies: Set<RedactPolicy>; sub: string } | null = null;
  let partialTurns = true;
  // Turn state: the local engine's partials become growing Turns.
  let turnOrder = 0;
  let wordsShown = 0;
  /** ms of session audio before the current local stream (ForceEndpoint restarts it). */
  let localOffsetMs = 0;
  let u3 = false;
  let beganAt = 0;
  let lastAudioAt = 0;
  let inactivityTimer: ReturnType<typeof setTimeout> | undefined;
  /** U3 Pro: the local engine's latest partial of this turn, and what was sent of it. */
  let latest: Transcript | null = null;
  let earlySent = false;
  let lastSentWords = 0;

  const send = (message: { type: string; [key: string]: unknown }) => {
    if (socket.readyState !== WebSocket.OPEN) return;
    record.serverMessages.push(message);
    socket.send(JSON.stringify(message));
  };
  const closeWith = (code: number, error: string) => {
    if (closing) return;
    closing = true;
    silenced = true;
    record.closeCode = code;
    record.closeReason = error;
    // The docs: an error close is preceded by an Error frame carrying the same code.
    if (code !== 1000 && code !== 1011) send({ type: "Error", error_code: code, error });
    // The close reason is limited to 123 bytes; the Error frame has the full text.
    socket.close(code, error.length > 123 ? "See Error message for details" : error);
    transcriber?.close();
  };

  const toWords = (
    t: Transcript,
    count: number,
    allFinal: boolean,
    offsetMs = localOffsetMs,
  ): AssemblyAIWord[] =>
    t.words.slice(0, count).map((w, i) => ({
      start: w.startMs + offsetMs,
      end: w.endMs + offsetMs,
      text: w.text.toLowerCase(),
      confidence: w.confidence ?? 0.9,
      word_is_final: allFinal || i < count - 1,
    }));
  /** The label of whoever speaks at `ms`, within `max_speakers` (a hard limit: docs). */
  const speakerAt = (ms: number) => {
    const label = options.speakerAt?.(ms) ?? "A";
    const max = Number(record.query.max_speakers ?? Infinity);
    return label.charCodeAt(0) - 65 >= max ? String.fromCharCode(64 + max) : label;
  };
  const turn = (
    words: AssemblyAIWord[],
    endOfTurn: boolean,
    formatted: boolean,
  ): TurnMessage & { [key: string]: unknown } => {
    const transcript = words.filter((w) => w.word_is_final).map((w) => w.text).join(" ");
    const at = words[0]?.start ?? 0;
    const speakers = record.query.speaker_labels === "true";
    const languages = record.query.language_detection === "true" &&
      SPEECH_MODELS[record.query.speech_model].languageDetection;
    return {
      type: "Turn",
      turn_order: turnOrder,
      turn_is_formatted: formatted,
      end_of_turn: endOfTurn,
      transcript,
      end_of_turn_confidence: endOfTurn ? 0.9 : 0.01,
      words: speakers
        ? words.map((w) => w.word_is_final ? { ...w, speaker: speakerAt(w.start) } : w)
        : words,
      utterance: endOfTurn ? transcript : "",
      ...(speakers && { speaker_label: speakerAt(at) }),
      ...(languages && endOfTurn &&
        { language_code: options.languageAt?.(at) ?? "en", language_confidence: 0.9 }),
    };
  };
  /** U3 Pro partials: an early one after 750 ms of speech, then one per pause (docs, U3 Pro partials). */
  const u3Partials = () => {
    if (!latest || silenced || !partialTurns) return;
    const words = latest.words;
    const heardMs = record.audioMs - localOffsetMs;
    const early = !earlySent && heardMs - words[0].startMs >= U3_EARLY_PARTIAL_MS;
    const paused = words.length > lastSentWords && heardMs - words.at(-1)!.endMs >= U3_PAUSE_MS;
    if (!early && !paused) return;
    earlySent = true;
    lastSentWords = words.length;
    // "All words in partials are marked word_is_final: false."
    const partial = toWords(latest, words.length, false).map((w) => ({
      ...w,
      word_is_final: false,
    }));
    send({ ...turn(partial, false, false), transcript: partial.map((w) => w.text).join(" ") });
  };
  const dropAfterTurn = () => {
    if (index < (options.dropSessions ?? 1) && turnOrder === options.dropAfterTurns) {
      closeWith(options.dropCode ?? 1011, "Internal server error (fake drop)");
    }
  };
  const endSession = () => {
    if (closing) return;
    clearTimeout(inactivityTimer);
    send({
      type: "Termination",
      audio_duration_seconds: Math.round(record.audioMs / 1000),
      session_duration_seconds: Math.round((performance.now() - openedAt) / 1000),
    });
    closeWith(1000, "");
  };
  /** `offsetMs`: where the local stream that heard `t` starts in the session (ForceEndpoint starts a new one). */
  const onTranscript = (t: Transcript, offsetMs: number) => {
    if (silenced || t.words.length === 0) return;
    if (wordsShown === 0 && latest === null) {
      // SDK SpeechStartedEvent: { type, timestamp } (ms of session audio).
      send({ type: "SpeechStarted", timestamp: Math.round(t.words[0].startMs + offsetMs) });
    }
    if (u3) {
      if (t.type === "partial") {
        latest = t;
        return;
      }
      // One end of turn, formatted ("turn_is_formatted" is always true at end of turn for U3 Pro).
      const words = redactWords(toWords(t, t.words.length, true, offsetMs), redaction);
      const formatted = words.map((w, i) => ({
        ...w,
        text: formatWord(w.text, i === 0, i === words.length - 1),
      }));
      send(turn(formatted, true, true));
      turnOrder += 1;
      dropAfterTurn();
      latest = null;
      earlySent = false;
      lastSentWords = 0;
      return;
    }
    if (t.type === "partial") {
      if (!partialTurns) return;
      // Partials grow word by word, as the real service sends them.
      // A revised partial (no new word) is sent once, whole.
      const from = t.words.length <= wordsShown ? t.words.length : wordsShown + 1;
      for (let n = from; n <= t.words.length; n++) {
        send(turn(toWords(t, n, false, offsetMs), false, false));
      }
      wordsShown = t.words.length;
      return;
    }
    const words = redactWords(toWords(t, t.words.length, true, offsetMs), redaction);
    send(turn(words, true, false));
    if (formatTurns) {
      const formatted = words.map((w, i) => ({
        ...w,
        text: formatWord(w.text, i === 0, i === words.length - 1),
      }));
      send(turn(formatted, true, true));
    }
    turnOrder += 1;
    wordsShown = 0;
    latest = null;
    dropAfterTurn();
  };
  const openTranscriber = () => {
    const offsetMs = record.audioMs;
    return options.engine.open("inbound", { onTranscript: (t) => onTranscript(t, offsetMs) });
  };

  socket.onopen = () => {
    record.open = true;
    // SDK connectOnce: a token goes in the query and then no Authorization header is sent.
    if (!authorization && !record.query.token) {
      return closeWith(1008, "Unauthorized Connection: Missing Authorization header");
    }
    if (!record.authorized) {
      return closeWith(
        1008,
        `Unauthorized Connection: Invalid ${authorization ? "API key" : "token"}`,
      );
    }
    if (options.rejectCode) {
      return closeWith(options.rejectCode, options.rejectReason ?? "Session refused");
    }
    const problem = checkQuery(record.query);
    // The docs do not say how a bad query is refused; 3006 ("Invalid ...") is our choice.
    if (problem) return closeWith(3006, `Invalid Configuration: ${problem}`);
    sampleRate = Number(record.query.sample_rate);
    bytesPerSample = ENCODINGS[record.query.encoding ?? "pcm_s16le"];
    formatTurns = record.query.format_turns === "true";
    if (record.query.redact_pii === "true") {
      // Docs: policies default to all; "include_partial_turns defaults to false automatically".
      const names: string[] = record.query.redact_pii_policies
        ? JSON.parse(record.query.redact_pii_policies)
        : Object.values(ASSEMBLYAI_PII_POLICIES);
      redaction = {
        policies: new Set(names.flatMap((n) => policyOfAssemblyAI(n) ?? [])),
        sub: record.query.redact_pii_sub ?? "hash",
      };
      partialTurns = record.query.include_partial_turns === "true";
    }
    u3 = SPEECH_MODELS[record.query.speech_model].family === "u3-pro";
    const inactivity = Number(record.query.inactivity_timeout ?? 0);
    if (inactivity > 0) {
      // API reference: the session ends after this many seconds without audio.
      const check = () => {
        if (closing) return;
        if (performance.now() - lastAudioAt >= inactivity * 1000) return endSession();
        inactivityTimer = setTimeout(check, 200);
      };
      inactivityTimer = setTimeout(check, 200);
    }
    if (sampleRate !== 8000) {
      return closeWith(1011, "fake AssemblyAI decodes 8000 Hz audio only (a limit of the fake)");
    }
    transcriber = openTranscriber();
    if (options.stallBegin) return;
    beganAt = performance.now();
    lastAudioAt = beganAt;
    send({
      type: "Begin",
      id: record.id,
      expires_at: Math.floor(Date.now() / 1000) + MAX_SESSION_SECONDS,
    });
    if (options.warning) {
      send({ type: "Warning", warning_code: options.warning.code, warning: options.warning.text });
    }
  };

  socket.onmessage = (event) => {
    if (closing || !transcriber) return;
    if (typeof event.data !== "string") {
      const bytes = new Uint8Array(event.data as ArrayBuffer);
      const ms = bytes.length / bytesPerSample / sampleRate * 1000;
      record.chunkBytes.push(bytes.length);
      record.chunkMs.push(ms);
      if (ms < 50 || ms > 1000) {
        return closeWith(
          3007,
          `Input duration violation: ${Math.round(ms)} ms. Expected between 50 and 1000 ms`,
        );
      }
      if (record.terminateReceived) return;
      record.audioMs += ms;
      lastAudioAt = performance.now();
      const tolerance = options.realtimeToleranceMs ?? REALTIME_TOLERANCE_MS;
      const aheadMs = record.audioMs - (lastAudioAt - beganAt);
      record.maxAheadMs = Math.max(record.maxAheadMs, aheadMs);
      if (aheadMs > tolerance) {
        return closeWith(3007, "Audio Transmission Rate Exceeded");
      }
      transcriber.write(
        bytesPerSample === 1
          ? bytes
          : mulawEncode(new Int16Array(bytes.buffer, 0, bytes.length / 2)),
      );
      const dropSessions = options.dropSessions ?? 1;
      if (
        options.dropAfterMs !== undefined && index < dropSessions &&
        record.audioMs >= options.dropAfterMs
      ) {
        closeWith(options.dropCode ?? 1011, "Internal server error (fake drop)");
      }
      if (u3) u3Partials();
      return;
    }
    let message: unknown;
    try {
      message = JSON.parse(event.data);
    } catch {
      return closeWith(3006, `Invalid JSON: ${event.data.slice(0, 60)}`);
    }
    record.clientMessages.push(message);
    if (typeof message !== "object" || message === null || Array.isArray(message)) {
      return closeWith(3006, `Invalid Message: ${event.data.slice(0, 60)}`);
    }
    const type = (message as { type?: unknown }).type;
    if (typeof type !== "string" || !CLIENT_TYPES.has(type)) {
      return closeWith(3006, `Invalid Message Type: ${String(type)}`);
    }
    if (type === "ForceEndpoint") {
      // Ends the current turn now: flush the local stream and start a new one.
      transcriber.close();
      localOffsetMs = record.audioMs;
      transcriber = openTranscriber();
    } else if (type === "Terminate" && !record.terminateReceived) {
      record.terminateReceived = true;
      // In-flight turns first, then Termination, then a normal close.
      transcriber.close().then(endSession);
    }
    // UpdateConfiguration and KeepAlive are accepted and recorded.
  };

  socket.onclose = (event) => {
    clearTimeout(inactivityTimer);
    record.open = false;
    record.closeCode ??= event.code;
    record.closeReason ??= event.reason;
    silenced = true;
    if (!closing) transcriber?.close();
    notifyClosed();
  };
  socket.onerror = () => {};
}

/** What is wrong with a session's query, or undefined when the real service would accept it. */
function checkQuery(query: Record<string, string>): string | undefined {
  const rate = query.sample_rate;
  if (!rate || !/^\d+$/.test(rate) || Number(rate) <= 0) {
    return `sample_rate must be a positive integer, got ${JSON.stringify(rate)}`;
  }
  if (query.encoding !== undefined && !(query.encoding in ENCODINGS)) {
    return `encoding must be pcm_s16le or pcm_mulaw, got ${JSON.stringify(query.encoding)}`;
  }
  // "speech_model is required ... There is no default model."
  if (!query.speech_model) return "speech_model is required";
  // The SDK's StreamingSpeechModel list (4.41.5).
  if (!(query.speech_model in SPEECH_MODELS)) {
    return `unknown speech_model ${JSON.stringify(query.speech_model)}`;
  }
  for (const flag of ["format_turns", "language_detection", "speaker_labels"]) {
    if (query[flag] !== undefined && query[flag] !== "true" && query[flag] !== "false") {
      return `${flag} must be true or false, got ${JSON.stringify(query[flag])}`;
    }
  }
  if (query.max_speakers !== undefined && !/^[1-9]\d*$/.test(query.max_speakers)) {
    return `max_speakers must be a positive integer, got ${JSON.stringify(query.max_speakers)}`;
  }
  for (const ms of ["min_turn_silence", "max_turn_silence", "inactivity_timeout"]) {
    if (query[ms] !== undefined && !/^\d+$/.test(query[ms])) {
      return `${ms} must be a number of ms, got ${JSON.stringify(query[ms])}`;
    }
  }
  if (query.keyterms_prompt !== undefined) {
    let terms: unknown;
    try {
      terms = JSON.parse(query.keyterms_prompt);
    } catch {
      return "keyterms_prompt must be a JSON list of strings";
    }
    if (!Array.isArray(terms) || terms.some((t) => typeof t !== "string")) {
      return "keyterms_prompt must be a JSON list of strings";
    }
  }
  return undefined;
}

/**
 * A final turn's words as `redact_pii` sends them (docs, Streaming PII
 * Redaction: "Hi, my name is ####!" with `hash`, "[PERSON_NAME]" with
 * `entity_name`). The docs do not say how the service finds entities; the
 * fake finds them with our redactor, within the one turn.
 */
function redactWords(
  words: AssemblyAIWord[],
  redaction: { policies: Set<RedactPolicy>; sub: string } | null,
): AssemblyAIWord[] {
  if (!redaction) return words;
  const spans = findEntities(words.map((w) => normalizeToken(w.text)), redaction.policies);
  const out: AssemblyAIWord[] = [];
  let i = 0;
  for (const span of spans) {
    out.push(...words.slice(i, span.start));
    const inside = words.slice(span.start, span.end);
    if (redaction.sub === "entity_name") {
      const tag = `[${ASSEMBLYAI_PII_POLICIES[span.policy].toUpperCase()}]`;
      out.push({ ...inside[0], end: inside.at(-1)!.end, text: tag });
    } else out.push(...inside.map((w) => ({ ...w, text: "#".repeat(w.text.length) })));
    i = span.end;
  }
  return [...out, ...words.slice(i)];
}

/** Formatting as `format_turns` does it, roughly: sentence case, `I`, a closing period. */
function formatWord(word: string, first: boolean, last: boolean): string {
  let text = word === "i" || word.startsWith("i'") ? "I" + word.slice(1) : word;
  if (first) text = text.charAt(0).toUpperCase() + text.slice(1);
  if (last) text += ".";
  return text;
}
