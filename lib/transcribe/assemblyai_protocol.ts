/**
 * AssemblyAI Universal-Streaming v3 on the wire: the models, the connection
 * query, the client messages, and a strict parser for every server message
 * (as `lib/twilio/protocol.ts` does for Twilio). No sockets here.
 *
 * Followed, and cited below as "SDK": the official `assemblyai` npm package
 * 4.41.5, `src/types/streaming/index.ts` (message and parameter types) and
 * `src/services/streaming/service.ts` (`connectionUrl`, `connectOnce`,
 * message dispatch). "Docs": assemblyai.com/docs/streaming (Model selection;
 * Universal-3 Pro Streaming: partials and turn detection, message sequence;
 * Streaming API reference; Common session errors and closures).
 *
 * @module
 */

/** The production endpoint (EU: `wss://streaming.eu.assemblyai.com/v3/ws`). */
export const ASSEMBLYAI_URL = "wss://streaming.assemblyai.com/v3/ws";
/** The model asked for when none is configured (the service has no default: docs, Model selection). */
export const DEFAULT_SPEECH_MODEL = "universal-streaming-english";

/**
 * How a model family behaves. `universal-streaming`: word-by-word partials,
 * confidence-based end of turn, optional `format_turns` (a second, formatted
 * end of turn). `u3-pro`: partials only after 750 ms of speech and in pauses,
 * punctuation-based end of turn, one end of turn that is always formatted;
 * `format_turns` must be left out (docs, Universal-3 Pro migration guide:
 * "removing format_turns (formatting is always on in U3 Pro)").
 */
export type ModelFamily = "universal-streaming" | "u3-pro";

/** What a streaming model accepts. */
export interface SpeechModel {
  family: ModelFamily;
  /** `language_detection` is accepted. */
  languageDetection: boolean;
  /**
   * `speaker_labels` (and `max_speakers`) are accepted: docs, "Streaming
   * Diarization and Multichannel" (u3-rt-pro, universal-3-5-pro,
   * universal-3-6-pro, universal-streaming-english and -multilingual).
   */
  speakerLabels: boolean;
  /** Not in our list: a model the vendor added since (sent as given; its behaviour guessed). */
  unlisted?: boolean;
  /** A newer name to use instead (the SDK warns on `u3-pro`). */
  replacedBy?: string;
}

/**
 * Every name in the SDK's `StreamingSpeechModel` (4.41.5). `whisper-rt` is
 * listed there without a behaviour page; it is treated as Universal-Streaming
 * (word-by-word partials), which is an assumption.
 */
export const SPEECH_MODELS: Readonly<Record<string, SpeechModel>> = {
  "universal-streaming-english": {
    family: "universal-streaming",
    languageDetection: false,
    speakerLabels: true,
  },
  "universal-streaming-multilingual": {
    family: "universal-streaming",
    languageDetection: true,
    speakerLabels: true,
  },
  "whisper-rt": { family: "universal-streaming", languageDetection: true, speakerLabels: false },
  "u3-rt-pro": { family: "u3-pro", languageDetection: true, speakerLabels: true },
  "u3-rt-pro-beta-1": { family: "u3-pro", languageDetection: true, speakerLabels: true },
  "universal-3-5-pro": { family: "u3-pro", languageDetection: true, speakerLabels: true },
  "universal-3-6": { family: "u3-pro", languageDetection: true, speakerLabels: true },
  "universal-3-6-pro": { family: "u3-pro", languageDetection: true, speakerLabels: true },
  // SDK connectionUrl: "The speech model `u3-pro` is deprecated ... use `u3-rt-pro`".
  "u3-pro": {
    family: "u3-pro",
    languageDetection: true,
    speakerLabels: true,
    replacedBy: "u3-rt-pro",
  },
};

/** Session settings sent in the connection query (names as AssemblyAI spells them, in camel case). */
export interface SessionSettings {
  /** Base WebSocket URL ({@link ASSEMBLYAI_URL}). */
  url: string;
  speechModel: string;
  /** Universal-Streaming only: a second, formatted end of turn (`format_turns`). */
  formatTurns: boolean;
  keytermsPrompt?: string[];
  /** U3 Pro: transcription instructions (`prompt`). */
  prompt?: string;
  /** `min_turn_silence`, ms. */
  minTurnSilenceMs?: number;
  /** `max_turn_silence`, ms. */
  maxTurnSilenceMs?: number;
  /** Universal-Streaming: `end_of_turn_confidence_threshold`, 0–1. */
  endOfTurnConfidenceThreshold?: number;
  /** `vad_threshold`, 0–1: how sure the voice detector must be that audio is speech. */
  vadThreshold?: number;
  /** `inactivity_timeout`, seconds without audio after which the service ends the session. */
  inactivityTimeoutSeconds?: number;
  /** `language_detection` (multilingual models). */
  languageDetection?: boolean;
  /** `speaker_labels`: each turn says who spoke it (`speaker_label`). */
  speakerLabels?: boolean;
  /** `max_speakers`: at most this many speakers per session (a hard limit, docs). */
  maxSpeakers?: number;
  /**
   * `redact_pii` with these `redact_pii_policies` and `entity_name`
   * substitution (docs, Streaming PII Redaction): final turns come redacted,
   * and partial turns are not sent (`include_partial_turns` defaults to false).
   */
  redactPiiPolicies?: readonly string[];
}

/** Why settings cannot be used; the message names the setting and the fix. */
export class SettingsError extends Error {
  override name = "SettingsError";
}

/**
 * The model of `name`. A name not in {@link SPEECH_MODELS} is `unlisted`:
 * the vendor adds models every few months (`universal-3-5-pro`,
 * `universal-3-6-pro`, …), so it is sent as given and the service decides;
 * its behaviour is guessed from its name (`universal-streaming-…` word by
 * word, anything else like the newest models, U3 Pro) and it may use every
 * option.
 */
export function speechModel(name: string): SpeechModel {
  return SPEECH_MODELS[name] ?? {
    family: name.startsWith("universal-streaming") ? "universal-streaming" : "u3-pro",
    languageDetection: true,
    speakerLabels: true,
    unlisted: true,
  };
}

/** Checks settings against what their model accepts; throws {@link SettingsError}. */
export function validateSettings(settings: SessionSettings): SpeechModel {
  const model = speechModel(settings.speechModel);
  const name = settings.speechModel;
  if (model.family === "u3-pro" && settings.endOfTurnConfidenceThreshold !== undefined) {
    // Docs (U3 Pro turn detection): punctuation-based, "rather than using a confidence score".
    throw new SettingsError(
      `ASSEMBLYAI_END_OF_TURN_CONFIDENCE_THRESHOLD does not apply to ${name} (its turns end on punctuation); ` +
        `tune ASSEMBLYAI_MIN_TURN_SILENCE / ASSEMBLYAI_MAX_TURN_SILENCE instead, or unset it.`,
    );
  }
  if (model.family !== "u3-pro" && settings.prompt !== undefined) {
    throw new SettingsError(
      `ASSEMBLYAI_PROMPT needs a Universal-3 Pro model (u3-rt-pro), not ${name}; unset it or change ASSEMBLYAI_SPEECH_MODEL.`,
    );
  }
  if (settings.languageDetection && !model.languageDetection) {
    throw new SettingsError(
      `ASSEMBLYAI_LANGUAGE_DETECTION needs a multilingual model, not ${name}: use universal-streaming-multilingual or u3-rt-pro.`,
    );
  }
  if (settings.speakerLabels && !model.speakerLabels) {
    throw new SettingsError(
      `ASSEMBLYAI_SPEAKER_LABELS is not available on ${name}: use u3-rt-pro or a universal-streaming model.`,
    );
  }
  const maxSpeakers = settings.maxSpeakers;
  if (maxSpeakers !== undefined && !(Number.isInteger(maxSpeakers) && maxSpeakers >= 1)) {
    throw new SettingsError(
      `ASSEMBLYAI_MAX_SPEAKERS must be a whole number from 1, got ${maxSpeakers}`,
    );
  }
  if (maxSpeakers !== undefined && !settings.speakerLabels) {
    throw new SettingsError(
      `ASSEMBLYAI_MAX_SPEAKERS needs ASSEMBLYAI_SPEAKER_LABELS=1 (it caps the speakers labelled); set it or unset ASSEMBLYAI_MAX_SPEAKERS.`,
    );
  }
  for (
    const [key, value] of [
      ["ASSEMBLYAI_END_OF_TURN_CONFIDENCE_THRESHOLD", settings.endOfTurnConfidenceThreshold],
      ["ASSEMBLYAI_VAD_THRESHOLD", settings.vadThreshold],
    ] as const
  ) {
    if (value !== undefined && !(value >= 0 && value <= 1)) {
      throw new SettingsError(`${key} must be a number from 0 to 1, got ${value}`);
    }
  }
  const inactivity = settings.inactivityTimeoutSeconds;
  // API reference: inactivity_timeout is an integer from 5 to 3600 seconds.
  if (
    inactivity !== undefined &&
    !(Number.isInteger(inactivity) && inactivity >= 5 && inactivity <= 3600)
  ) {
    throw new SettingsError(
      `ASSEMBLYAI_INACTIVITY_TIMEOUT must be whole seconds from 5 to 3600, got ${inactivity}`,
    );
  }
  return model;
}

/**
 * The connection URL for a session, query as the SDK's `connectionUrl`
 * builds it. The API key is not in it (it goes in the `Authorization`
 * header); a temporary token is (`token`, SDK: "searchParams.set('token')").
 */
export function sessionUrl(settings: SessionSettings, token?: string): string {
  const model = speechModel(settings.speechModel);
  const url = new URL(settings.url);
  const params = url.searchParams;
  if (token) params.set("token", token);
  params.set("sample_rate", "8000");
  params.set("encoding", "pcm_mulaw");
  params.set("speech_model", settings.speechModel);
  // Left out for U3 Pro (formatting is always on there); sent, also as false, for the others.
  if (model.family === "universal-streaming") {
    params.set("format_turns", String(settings.formatTurns));
  }
  if (settings.keytermsPrompt?.length) {
    // SDK: keyterms_prompt is JSON.stringify(list).
    params.set("keyterms_prompt", JSON.stringify(settings.keytermsPrompt));
  }
  const optional: Array<[string, string | number | undefined]> = [
    ["prompt", settings.prompt],
    ["min_turn_silence", settings.minTurnSilenceMs],
    ["max_turn_silence", settings.maxTurnSilenceMs],
    ["end_of_turn_confidence_threshold", settings.endOfTurnConfidenceThreshold],
    ["vad_threshold", settings.vadThreshold],
    ["inactivity_timeout", settings.inactivityTimeoutSeconds],
  ];
  for (const [name, value] of optional) {
    if (value !== undefined) params.set(name, String(value));
  }
  if (settings.languageDetection) params.set("language_detection", "true");
  if (settings.speakerLabels) params.set("speaker_labels", "true");
  if (settings.maxSpeakers !== undefined) params.set("max_speakers", String(settings.maxSpeakers));
  if (settings.redactPiiPolicies?.length) {
    // SDK: redact_pii_policies is JSON.stringify(list); entity_name gives `[CREDIT_CARD_NUMBER]`.
    params.set("redact_pii", "true");
    params.set("redact_pii_policies", JSON.stringify(settings.redactPiiPolicies));
    params.set("redact_pii_sub", "entity_name");
  }
  return url.href;
}

/** A URL with any `token` replaced, for logs. */
export function redactedUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.searchParams.has("token")) parsed.searchParams.set("token", "***");
  return parsed.href;
}

// --- client messages (SDK StreamingOperationMessage) ------------------------

/** Ends the session: the service sends the last turns, then `Termination`. */
export const TERMINATE = JSON.stringify({ type: "Terminate" });
/** Ends the current turn now (SDK `forceEndpoint`). */
export const FORCE_ENDPOINT = JSON.stringify({ type: "ForceEndpoint" });

/** Settings that may change mid-session (SDK `StreamingUpdateConfiguration`). */
export interface ConfigurationUpdate {
  keyterms_prompt?: string[];
  prompt?: string;
  min_turn_silence?: number;
  max_turn_silence?: number;
  end_of_turn_confidence_threshold?: number;
  vad_threshold?: number;
}

/** The `UpdateConfiguration` message. */
export function updateConfigurationMessage(update: ConfigurationUpdate): string {
  return JSON.stringify({ type: "UpdateConfiguration", ...update });
}

// --- server messages (SDK StreamingEventMessage) ----------------------------

/** One word: times in ms of that session's audio. */
export interface AssemblyAIWord {
  start: number;
  end: number;
  text: string;
  confidence: number;
  word_is_final: boolean;
  /** With `speaker_labels`: who said it (final words; docs, Streaming Diarization). */
  speaker?: string;
}

/** `Begin`: the session is ready for audio. */
export interface BeginMessage {
  type: "Begin";
  id: string;
  expires_at: number;
}

/** `Turn`: the whole turn so far (a partial), or its end. */
export interface TurnMessage {
  type: "Turn";
  turn_order: number;
  turn_is_formatted: boolean;
  end_of_turn: boolean;
  transcript: string;
  end_of_turn_confidence: number;
  words: AssemblyAIWord[];
  utterance?: string;
  /** With `speaker_labels`: the turn's dominant speaker, `A`, `B`, … (docs, Streaming Diarization). */
  speaker_label?: string;
  /**
   * With `language_detection`: the language of the turn, on utterances and final
   * turns (API reference, `language_detection`), and how sure the service is (0–1).
   */
  language_code?: string;
  language_confidence?: number;
}

/** `SpeechStarted`: the voice detector heard speech begin, `timestamp` ms into the session. */
export interface SpeechStartedMessage {
  type: "SpeechStarted";
  timestamp: number;
}

/** `Termination`: the answer to `Terminate` (or the service ending the session). */
export interface TerminationMessage {
  type: "Termination";
  audio_duration_seconds: number;
  session_duration_seconds: number;
}

/** `Warning`: the session goes on, but something (often configuration) needs attention. */
export interface WarningMessage {
  type: "Warning";
  warning_code: number;
  warning: string;
}

/**
 * An error. SDK dispatch: `if ("error" in message)` before looking at
 * `type`, keeping `error_code` when present; the docs' `Error` frame comes
 * right before an error close and carries the close code.
 */
export interface ErrorMessage {
  type: "Error";
  error: string;
  error_code?: number;
}

/** A message type this client does not use (e.g. `SpeakerRevision`, `Heartbeat`). */
export interface OtherMessage {
  type: "Other";
  name: string;
}

/** Every server message, parsed. */
export type ServerMessage =
  | BeginMessage
  | TurnMessage
  | SpeechStartedMessage
  | TerminationMessage
  | WarningMessage
  | ErrorMessage
  | OtherMessage;

/** A server message that does not match the protocol. */
export class ProtocolError extends Error {
  override name = "ProtocolError";
}

type Json = Record<string, unknown>;

const fail = (what: string): never => {
  throw new ProtocolError(`Cannot parse AssemblyAI message: ${what}`);
};
const str = (m: Json, key: string, type: string): string =>
  typeof m[key] === "string" ? m[key] as string : fail(`${type}.${key} is not a string`);
const num = (m: Json, key: string, type: string): number =>
  typeof m[key] === "number" && Number.isFinite(m[key])
    ? m[key] as number
    : fail(`${type}.${key} is not a number`);
const bool = (m: Json, key: string, type: string): boolean =>
  typeof m[key] === "boolean" ? m[key] as boolean : fail(`${type}.${key} is not a boolean`);

function parseWord(value: unknown, i: number): AssemblyAIWord {
  if (typeof value !== "object" || value === null) return fail(`Turn.words[${i}] is not an object`);
  const w = value as Json;
  const at = `Turn.words[${i}]`;
  const start = num(w, "start", at);
  const end = num(w, "end", at);
  if (end < start) fail(`${at} ends before it starts`);
  return {
    start,
    end,
    text: str(w, "text", at),
    confidence: num(w, "confidence", at),
    word_is_final: bool(w, "word_is_final", at),
    ...(typeof w.speaker === "string" ? { speaker: w.speaker } : {}),
  };
}

/** Parses one text frame from the service; throws {@link ProtocolError} on anything malformed. */
export function parseServerMessage(text: string): ServerMessage {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return fail(`not JSON: ${text.slice(0, 60)}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return fail(`not an object: ${text.slice(0, 60)}`);
  }
  const m = value as Json;
  if ("error" in m) {
    const code = m.error_code;
    return {
      type: "Error",
      error: typeof m.error === "string" ? m.error : JSON.stringify(m.error),
      ...(typeof code === "number" ? { error_code: code } : {}),
    };
  }
  const type = str(m, "type", "message");
  switch (type) {
    case "Begin":
      return { type, id: str(m, "id", type), expires_at: num(m, "expires_at", type) };
    case "Turn": {
      const turn: TurnMessage = {
        type,
        turn_order: num(m, "turn_order", type),
        turn_is_formatted: bool(m, "turn_is_formatted", type),
        end_of_turn: bool(m, "end_of_turn", type),
        transcript: str(m, "transcript", type),
        end_of_turn_confidence: num(m, "end_of_turn_confidence", type),
        words: Array.isArray(m.words) ? m.words.map(parseWord) : fail("Turn.words is not a list"),
      };
      if (typeof m.utterance === "string") turn.utterance = m.utterance;
      // Present only when asked for (speaker_labels, language_detection); a wrong type is refused.
      if (m.speaker_label !== undefined) turn.speaker_label = str(m, "speaker_label", type);
      if (m.language_code !== undefined) turn.language_code = str(m, "language_code", type);
      if (m.language_confidence !== undefined) {
        turn.language_confidence = num(m, "language_confidence", type);
      }
      return turn;
    }
    case "SpeechStarted":
      return { type, timestamp: num(m, "timestamp", type) };
    case "Termination":
      return {
        type,
        audio_duration_seconds: num(m, "audio_duration_seconds", type),
        session_duration_seconds: num(m, "session_duration_seconds", type),
      };
    case "Warning":
      return { type, warning_code: num(m, "warning_code", type), warning: str(m, "warning", type) };
    default:
      // SDK: LLMGatewayResponse, SpeakerRevision, Heartbeat, Silence (all opt-in features).
      return { type: "Other", name: type };
  }
}

// --- closes -------------------------------------------------------------------

/** Close codes after which a new session is worth trying. */
const TRANSIENT_CODES = new Set([1001, 1005, 1006, 1011, 1012, 1013, 1014, 3005, 3008]);

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
      return `AssemblyAI rejected a message or setting (${said}). Check the ASSEMBLYAI_* settings against the model; if they are right, this is a callscribe bug.`;
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
