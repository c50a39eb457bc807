/**
 * Configuration from the environment (load `.env` with `deno run --env-file`)
 * and command-line flags. Flags win over the environment. Validation happens
 * here, before any network call, with messages that name the variable.
 *
 * @module
 */
import { DEFAULT_MODEL_NAME } from "../lib/model/resolve_model.ts";
import type { LocalEngineOptions } from "../lib/transcribe/local_decoder.ts";
import type { AssemblyAIOptions } from "../lib/transcribe/assemblyai.ts";
import { UserError } from "../lib/user_error.ts";

/** Everything the server and the commands need to know. */
export interface Config {
  host: string;
  port: number;
  /** Base URL Twilio reaches (https://…); defaults to the local listen address. */
  publicUrl?: string;
  /** Used to check (and, in the simulator, to make) `X-Twilio-Signature`s. */
  twilioAuthToken?: string;
  /** Explicit opt-out of signature checks (`TWILIO_SKIP_SIGNATURE=1`). */
  skipSignature: boolean;
  /** Folder of the transcript database (`DATA_DIR`, default `./data`). */
  dataDir: string;
  /** Required by the dashboard and API when set (`DASHBOARD_TOKEN`); never by Twilio's routes. */
  dashboardToken?: string;
  /** The laptop's microphone (`AUDIO_INPUT`): a device (`default`, `pulse:NAME`, …), a file path, or undefined for none. */
  audioInput?: string;
  /** The laptop's speaker (`AUDIO_OUTPUT`): a device, a `.wav` path, or undefined for none. */
  audioOutput?: string;
  /** The ffmpeg program the audio bridge runs (`FFMPEG_PATH`, default `ffmpeg`). */
  ffmpegPath?: string;
  /** File input is sent as fast as decoded instead of paced (simulated calls with `--fast`). */
  audioInputUnpaced?: boolean;
  /** Opens an ngrok tunnel at startup when set and PUBLIC_URL is not (`NGROK_AUTHTOKEN`). */
  ngrokAuthtoken?: string;
  /** Inbound calls: spoken with `<Say>` before the call is bridged (`INBOUND_GREETING`). */
  inboundGreeting?: string;
  /** Inbound calls: `<Dial>` this E.164 number instead of the laptop (`INBOUND_FORWARD_TO`). */
  inboundForwardTo?: string;
  /** A media stream silent this long (no message at all) is closed and its call ended (`STREAM_IDLE_TIMEOUT`, s). */
  streamIdleSeconds: number;
  model: {
    dir?: string;
    name: string;
    nameExplicit: boolean;
    url?: string;
    cacheDir?: string;
    overrides: { encoder?: string; decoder?: string; joiner?: string; tokens?: string };
  };
  local: Partial<LocalEngineOptions>;
  /** Which engine transcribes (`TRANSCRIBER` / `--transcriber`). */
  transcriber: "local" | "assemblyai";
  /** AssemblyAI settings; `apiKey` is set whenever `transcriber` is `assemblyai`. */
  assemblyai: Partial<AssemblyAIOptions>;
}

type Env = Record<string, string | undefined>;

/** Reads the configuration; `flags` holds command-line values that override the environment. */
export function loadConfig(
  env: Env = Deno.env.toObject(),
  flags: { host?: string; port?: string; audioInput?: string; transcriber?: string } = {},
): Config {
  const host = flags.host ?? env.HOST ?? "127.0.0.1";
  const port = parsePort(flags.port ?? env.PORT ?? "8080", flags.port ? "--port" : "PORT");
  const publicUrl = env.PUBLIC_URL ? parsePublicUrl(env.PUBLIC_URL) : undefined;
  const audioInput = flags.audioInput ?? env.AUDIO_INPUT;
  return {
    host,
    port,
    publicUrl,
    twilioAuthToken: env.TWILIO_AUTH_TOKEN || undefined,
    skipSignature: env.TWILIO_SKIP_SIGNATURE === "1",
    dataDir: env.DATA_DIR || "./data",
    dashboardToken: env.DASHBOARD_TOKEN || undefined,
    audioInput: audioInput && audioInput !== "none" ? audioInput : undefined,
    audioOutput: env.AUDIO_OUTPUT && env.AUDIO_OUTPUT !== "none" ? env.AUDIO_OUTPUT : undefined,
    ffmpegPath: env.FFMPEG_PATH || undefined,
    ngrokAuthtoken: env.NGROK_AUTHTOKEN || undefined,
    inboundGreeting: env.INBOUND_GREETING || undefined,
    streamIdleSeconds: parseIdleTimeout(env.STREAM_IDLE_TIMEOUT),
    inboundForwardTo: env.INBOUND_FORWARD_TO
      ? parsePhoneNumber(env.INBOUND_FORWARD_TO, "INBOUND_FORWARD_TO")
      : undefined,
    model: {
      dir: env.SHERPA_MODEL_DIR || undefined,
      name: env.SHERPA_MODEL || DEFAULT_MODEL_NAME,
      nameExplicit: Boolean(env.SHERPA_MODEL),
      url: env.SHERPA_MODEL_URL || undefined,
      cacheDir: env.SHERPA_CACHE_DIR || undefined,
      overrides: {
        encoder: env.SHERPA_ENCODER || undefined,
        decoder: env.SHERPA_DECODER || undefined,
        joiner: env.SHERPA_JOINER || undefined,
        tokens: env.SHERPA_TOKENS || undefined,
      },
    },
    local: {
      ...optionalNumber(env, "ENDPOINT_RULE1_SILENCE", "rule1MinTrailingSilence"),
      ...optionalNumber(env, "ENDPOINT_RULE2_SILENCE", "rule2MinTrailingSilence"),
      ...optionalNumber(env, "ENDPOINT_MAX_UTTERANCE", "rule3MinUtteranceLength"),
      ...optionalNumber(env, "SHERPA_THREADS", "numThreads"),
      ...optionalWholeNumber(env, "SHERPA_WORKERS", "workers"),
      ...optionalNumber(env, "SHERPA_TOKEN_DELAY_MS", "tokenDelayMs"),
    },
    ...loadTranscriber(env, flags.transcriber),
  };
}

/**
 * The engine choice and AssemblyAI settings. Default: `assemblyai` when
 * ASSEMBLYAI_API_KEY is set, else `local`. Choosing `assemblyai` without a key
 * fails here, before any call.
 */
function loadTranscriber(env: Env, flag?: string): Pick<Config, "transcriber" | "assemblyai"> {
  const apiKey = env.ASSEMBLYAI_API_KEY?.trim() || undefined;
  const source = flag !== undefined ? "--transcriber" : "TRANSCRIBER";
  const choice = flag ?? (env.TRANSCRIBER || (apiKey ? "assemblyai" : "local"));
  if (choice !== "local" && choice !== "assemblyai") {
    throw new UserError(`${source} must be local or assemblyai, got "${choice}"`);
  }
  if (choice === "assemblyai" && !apiKey) {
    throw new UserError(
      `${source}=assemblyai needs ASSEMBLYAI_API_KEY. Set it in .env (AssemblyAI dashboard, ` +
        `API Keys), or use the local engine (--transcriber local).`,
    );
  }
  const assemblyai: Partial<AssemblyAIOptions> = { apiKey };
  if (env.ASSEMBLYAI_URL) {
    const url = URL.canParse(env.ASSEMBLYAI_URL) ? new URL(env.ASSEMBLYAI_URL) : undefined;
    if (!url || (url.protocol !== "wss:" && url.protocol !== "ws:")) {
      throw new UserError(
        `ASSEMBLYAI_URL must be a WebSocket URL such as wss://streaming.eu.assemblyai.com/v3/ws, got "${env.ASSEMBLYAI_URL}"`,
      );
    }
    assemblyai.url = env.ASSEMBLYAI_URL;
  }
  if (env.ASSEMBLYAI_SPEECH_MODEL) assemblyai.speechModel = env.ASSEMBLYAI_SPEECH_MODEL;
  if (env.ASSEMBLYAI_FORMAT_TURNS) assemblyai.formatTurns = env.ASSEMBLYAI_FORMAT_TURNS !== "0";
  if (env.ASSEMBLYAI_LANGUAGE_DETECTION) {
    assemblyai.languageDetection = env.ASSEMBLYAI_LANGUAGE_DETECTION === "1";
  }
  if (env.ASSEMBLYAI_KEYTERMS) {
    assemblyai.keytermsPrompt = env.ASSEMBLYAI_KEYTERMS.split(",").map((t) => t.trim())
      .filter(Boolean);
  }
  const whole = (name: string, unit: string) => {
    const value = env[name];
    if (value === undefined || value === "") return undefined;
    if (!/^\d+$/.test(value)) {
      throw new UserError(`${name} must be a whole number of ${unit}, got "${value}"`);
    }
    return Number(value);
  };
  assemblyai.minTurnSilenceMs = whole("ASSEMBLYAI_MIN_TURN_SILENCE", "ms");
  assemblyai.maxTurnSilenceMs = whole("ASSEMBLYAI_MAX_TURN_SILENCE", "ms");
  const buffer = whole("ASSEMBLYAI_BUFFER_SECONDS", "seconds");
  if (buffer !== undefined) assemblyai.bufferSeconds = Math.max(1, buffer);
  return { transcriber: choice, assemblyai };
}

function parsePort(value: string, name: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value) || port > 65535) {
    throw new UserError(`${name} must be a port number (0-65535), got "${value}"`);
  }
  return port;
}

function parsePublicUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UserError(
      `PUBLIC_URL must be a URL such as https://example.ngrok.app, got "${value}"`,
    );
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new UserError(`PUBLIC_URL must start with https://, got "${value}"`);
  }
  return url.href.replace(/\/$/, "");
}

/** E.164: `+`, country code, up to 15 digits in all. */
export const E164 = /^\+[1-9]\d{1,14}$/;

/** Checks an E.164 phone number; `name` is the variable or flag it came from. */
export function parsePhoneNumber(value: string, name: string): string {
  const trimmed = value.trim();
  if (!E164.test(trimmed)) {
    throw new UserError(
      `${name} must be a phone number in E.164 form such as +15551234567 (plus sign, ` +
        `country code, no spaces or dashes), got "${value}"`,
    );
  }
  return trimmed;
}

function optionalNumber(env: Env, name: string, key: keyof LocalEngineOptions) {
  const value = env[name];
  if (value === undefined || value === "") return {};
  const number = Number(value);
  if (!Number.isFinite(number) || number < 0) {
    throw new UserError(`${name} must be a non-negative number, got "${value}"`);
  }
  return { [key]: number };
}

function optionalWholeNumber(env: Env, name: string, key: keyof LocalEngineOptions) {
  const value = env[name];
  if (value === undefined || value === "") return {};
  if (!/^\d+$/.test(value.trim())) {
    throw new UserError(`${name} must be a whole number such as 2 (or 0), got "${value}"`);
  }
  return { [key]: Number(value) };
}

/** `STREAM_IDLE_TIMEOUT`: seconds, default 30; Twilio sends media every 20 ms while a call lives. */
function parseIdleTimeout(value: string | undefined): number {
  if (value === undefined || value === "") return 30;
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds <= 0) {
    throw new UserError(
      `STREAM_IDLE_TIMEOUT must be a positive number of seconds, got "${value}" (default 30)`,
    );
  }
  return seconds;
}

/** The base URL Twilio uses to reach us: PUBLIC_URL, or the local listen address. */
export function publicBase(config: Config, boundPort = config.port): string {
  if (config.publicUrl) return config.publicUrl;
  const host = config.host === "0.0.0.0" ? "127.0.0.1" : config.host;
  return `http://${host.includes(":") ? `[${host}]` : host}:${boundPort}`;
}
