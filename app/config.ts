/**
 * Configuration from the environment (load `.env` with `deno run --env-file`)
 * and command-line flags, read once per command. Flags win over the
 * environment. Validation happens here, before any network call, with
 * messages that name the variable; modules in lib/ never see this file, the
 * commands map it to each module's own options.
 *
 * @module
 */
import type { AudioEndpoint } from "../lib/laptop_audio/devices.ts";
import { parseAudioInput, parseAudioOutput } from "../lib/laptop_audio/devices.ts";
import type { ModelOverrides } from "../lib/model/model_files.ts";
import { DEFAULT_MODEL_NAME, isModelName } from "../lib/model/resolve_model.ts";
import { parseNumber, parsePhoneNumber, parseUrl, parseWholeNumber } from "../lib/parse.ts";
import type { AssemblyAIOptions } from "../lib/transcribe/assemblyai.ts";
import {
  ASSEMBLYAI_URL,
  DEFAULT_SPEECH_MODEL,
  SettingsError,
  validateSettings,
} from "../lib/transcribe/assemblyai_protocol.ts";
import type { Track } from "../lib/transcribe/engine.ts";
import type { LocalEngineOptions } from "../lib/transcribe/local_engine_options.ts";
import {
  VOICE_DETECTOR_KINDS,
  type VoiceDetectorKind,
} from "../lib/transcribe/voice_detector_kind.ts";
import type { RecordingsOptions } from "../lib/recording/recordings.ts";
import type { TwilioCredentials } from "../lib/twilio/rest.ts";
import type { DialOut } from "../lib/server/dial_out.ts";
import { UserError } from "../lib/user_error.ts";
import { isLoopback } from "../lib/server/auth.ts";
import { parseKeytermList } from "../lib/transcribe/keyterms.ts";
import { parseRedactPolicies, type RedactPolicy } from "../lib/redact/policies.ts";
import { ASSEMBLYAI_PII_POLICIES } from "../lib/redact/assemblyai_policies.ts";
import type { RoomSettings } from "../lib/laptop_audio/room.ts";
import { type WebhookSettings, webhookSettings } from "../lib/delivery/settings.ts";
import { secretProblem } from "../lib/delivery/signer.ts";
import {
  DEFAULT_WEBHOOK_EVENTS,
  WEBHOOK_EVENT_TYPES,
  type WebhookEventType,
} from "../lib/delivery/webhook_message.ts";
import { DEFAULT_RETRY_POLICY } from "../lib/delivery/retry_policy.ts";

/** Everything the server and the commands need to know; frozen once loaded. */
export interface Config {
  readonly host: string;
  readonly port: number;
  /** Base URL Twilio reaches (https://…); defaults to the local listen address. */
  readonly publicUrl?: string;
  /** Used to check (and, in the simulator, to make) `X-Twilio-Signature`s. */
  readonly twilioAuthToken?: string;
  /** Explicit opt-out of signature checks (`TWILIO_SKIP_SIGNATURE=1`). */
  readonly skipSignature: boolean;
  /**
   * No TWILIO_AUTH_TOKEN and no opt-out: the server is for the dashboard and
   * simulated calls on this machine only (loopback, no public URL); Twilio's
   * routes accept nothing, as no request can be checked.
   */
  readonly localOnly: boolean;
  /** Folder of the transcript database (`DATA_DIR`, default `./data`). */
  readonly dataDir: string;
  /** PostgreSQL instead of SQLite (`DATABASE_URL=postgres://…`): instances sharing it form one service. */
  readonly databaseUrl?: string;
  /** This instance's own base URL for its streams, when PUBLIC_URL is a shared load balancer (`INSTANCE_URL`). */
  readonly instanceUrl?: string;
  /** SIGTERM lets live calls finish for up to this long (`DRAIN_TIMEOUT`, s; default 300). */
  readonly drainTimeoutMs: number;
  /** With PostgreSQL: an instance silent this long is gone, its calls interrupted (`INSTANCE_TIMEOUT`, s; default 15). */
  readonly instanceTimeoutMs: number;
  /** Key of the per-call stream tokens (`STREAM_SECRET`); derived from TWILIO_AUTH_TOKEN when unset. */
  readonly streamSecret?: string;
  /**
   * Required by the dashboard and API (`DASHBOARD_TOKEN`); never by Twilio's routes. Unset on a
   * server reachable from outside, one is generated in DATA_DIR.
   */
  readonly dashboardToken?: string;
  /** More names the server answers to as Host (`ALLOWED_HOSTS`, comma-separated). */
  readonly allowedHosts: readonly string[];
  /** The laptop's microphone (`AUDIO_INPUT`): a device (`default`, `pulse:NAME`, …), a file, or none. */
  readonly audioInput: AudioEndpoint;
  /** The laptop's speaker (`AUDIO_OUTPUT`): a device, a `.wav` file, or none. */
  readonly audioOutput: AudioEndpoint;
  /** The ffmpeg the audio bridge runs (`FFMPEG_PATH`); unset, findFfmpeg picks one. */
  readonly ffmpegPath?: string;
  /** File input is sent as fast as decoded instead of paced (simulated calls with `--fast`). */
  readonly audioInputUnpaced: boolean;
  /** Echo cancellation on the laptop leg (`AEC`, default on): used with a microphone and a speaker device, or a room. */
  readonly echoCancellation: boolean;
  /** `--room`: a simulated room between the laptop's speaker and microphone (simulated calls). */
  readonly room?: RoomSettings;
  /** Opens an ngrok tunnel at startup when set and PUBLIC_URL is not (`NGROK_AUTHTOKEN`). */
  readonly ngrokAuthtoken?: string;
  /** Inbound calls: spoken with `<Say>` before the call is bridged (`INBOUND_GREETING`). */
  readonly inboundGreeting?: string;
  /** Inbound calls: `<Dial>` this E.164 number instead of the laptop (`INBOUND_FORWARD_TO`). */
  readonly inboundForwardTo?: string;
  /** `REDACT`: policies transcripts (and recordings) are redacted with; empty, none. */
  readonly redact: readonly RedactPolicy[];
  /** `RETENTION_DAYS`: calls (and their recordings, delivered webhooks) older than this are deleted. */
  readonly retentionDays?: number;
  /** Call recordings: `RECORD_CALLS` (default on) and `RECORDINGS_MAX_GB` (default 10) in bytes. */
  readonly recordings: Pick<RecordingsOptions, "enabled" | "maxBytes">;
  /** A media stream silent this long (no message at all) is closed and its call ended (`STREAM_IDLE_TIMEOUT`, s). */
  readonly streamIdleSeconds: number;
  /**
   * Limits on HTTP connections: `HTTP_HEADER_TIMEOUT`, `HTTP_BODY_TIMEOUT` (s, default 10),
   * `HTTP_IDLE_TIMEOUT` (s, default 60), `MAX_CONNECTIONS` (unset: 1000, fewer under a low
   * open-file limit).
   */
  readonly http: {
    readonly headerTimeoutMs: number;
    readonly bodyTimeoutMs: number;
    readonly idleTimeoutMs: number;
    readonly maxConnections?: number;
  };
  readonly model: {
    readonly dir?: string;
    readonly name: string;
    readonly nameExplicit: boolean;
    readonly url?: string;
    readonly cacheDir?: string;
    readonly overrides: Readonly<ModelOverrides>;
  };
  readonly local: Readonly<Partial<LocalEngineOptions>>;
  /** Which engine transcribes (`TRANSCRIBER` / `--transcriber`). */
  readonly transcriber: TranscriberChoice;
  /** The engine of each track (`TRANSCRIBER_INBOUND` / `TRANSCRIBER_OUTBOUND`, default `transcriber`). */
  readonly transcribers: Readonly<Record<Track, TranscriberChoice>>;
  /** AssemblyAI settings; `apiKey` is set whenever `transcriber` is `assemblyai`. */
  readonly assemblyai: Readonly<Partial<AssemblyAIOptions>>;
  /**
   * `ASSEMBLYAI_VAD_FORCE_ENDPOINT_MS`: silence (ms) after which the voice detector (`VAD`)
   * ends an AssemblyAI turn with `ForceEndpoint`; undefined leaves turns to AssemblyAI.
   */
  readonly assemblyaiVadSilenceMs?: number;
  /** Webhook delivery (`WEBHOOK_URL`, …); null when no URL is set. */
  readonly webhooks: WebhookSettings | null;
  /** The Twilio credentials the dashboard places calls with, or why there are none. */
  readonly dialOut: DialOut;
}

/** An engine: sherpa-onnx here, AssemblyAI, or both (local partials, cloud finals). */
export type TranscriberChoice = "local" | "assemblyai" | "hybrid";
const CHOICES: readonly string[] = ["local", "assemblyai", "hybrid"];

type Env = Record<string, string | undefined>;

/** Command-line values that override the environment. */
export interface ConfigFlags {
  host?: string;
  port?: string;
  /** `--caller-audio`: the laptop side of a simulated call. */
  audioInput?: string;
  transcriber?: string;
  /** `--fast`: a file input is sent as fast as decoded. */
  audioInputUnpaced?: boolean;
  /** The configuration of `deno task serve`: TWILIO_ACCOUNT_SID and the signature rule are checked too. */
  server?: boolean;
  /** `--room`: the room the laptop leg's speaker and microphone are in. */
  room?: RoomSettings;
}

/**
 * Reads and checks the configuration, once: every value is parsed here (a bad
 * one is a {@link UserError} naming the variable), and the result is frozen.
 */
export function loadConfig(env: Env = Deno.env.toObject(), flags: ConfigFlags = {}): Config {
  const set = (name: string) => env[name] || undefined;
  // Every problem is collected, so one run names them all (PORT=abc does not hide the next one).
  const problems: string[] = [];
  const check = <T>(read: () => T): T => {
    try {
      return read();
    } catch (error) {
      if (!(error instanceof UserError)) throw error;
      problems.push(error.message);
      return undefined as T;
    }
  };
  const host = flags.host ?? env.HOST ?? "127.0.0.1";
  const twilioAuthToken = set("TWILIO_AUTH_TOKEN");
  const skipSignature = check(() => parseSkipSignature(env.TWILIO_SKIP_SIGNATURE)) ?? false;
  const publicUrl = env.PUBLIC_URL
    ? check(() =>
      parseUrl(env.PUBLIC_URL!, "PUBLIC_URL", ["https:", "http:"], {
        expected: "a URL such as https://example.ngrok.app",
      }).href.replace(/\/$/, "")
    )
    : undefined;
  if (flags.server) {
    const sidProblem = accountSidProblem(env.TWILIO_ACCOUNT_SID);
    if (env.TWILIO_ACCOUNT_SID?.trim() && sidProblem) problems.push(sidProblem);
    const exposed = signatureProblem({
      host,
      publicUrl: env.PUBLIC_URL,
      ngrokAuthtoken: set("NGROK_AUTHTOKEN"),
      twilioAuthToken,
      skipSignature,
    });
    if (exposed) problems.push(exposed);
  }
  const config: Config = {
    host,
    port: check(() =>
      parseWholeNumber(flags.port ?? env.PORT ?? "8080", flags.port ? "--port" : "PORT", {
        max: 65535,
        expected: "a port number (0-65535)",
      })
    ),
    publicUrl,
    twilioAuthToken,
    skipSignature,
    localOnly: !twilioAuthToken && !skipSignature,
    dataDir: env.DATA_DIR || "./data",
    databaseUrl: env.DATABASE_URL ? check(() => parseDatabaseUrl(env.DATABASE_URL!)) : undefined,
    instanceUrl: env.INSTANCE_URL
      ? check(() =>
        parseUrl(env.INSTANCE_URL!, "INSTANCE_URL", ["https:", "http:"], {
          expected: "this instance's own base URL, such as https://b.example.com",
        }).href.replace(/\/$/, "")
      )
      : undefined,
    drainTimeoutMs: check(() => seconds(env, "DRAIN_TIMEOUT", 300, false)),
    instanceTimeoutMs: check(() => seconds(env, "INSTANCE_TIMEOUT", 15, true)),
    streamSecret: env.STREAM_SECRET
      ? check(() => parseStreamSecret(env.STREAM_SECRET!))
      : undefined,
    dashboardToken: set("DASHBOARD_TOKEN")
      ? check(() => parseDashboardToken(set("DASHBOARD_TOKEN")!))
      : undefined,
    allowedHosts: check(() => parseAllowedHosts(env.ALLOWED_HOSTS)) ?? [],
    audioInput: check(() =>
      flags.audioInput !== undefined
        ? parseAudioInput(flags.audioInput, "--caller-audio")
        : parseAudioInput(env.AUDIO_INPUT)
    ),
    audioOutput: check(() => parseAudioOutput(env.AUDIO_OUTPUT)),
    ffmpegPath: set("FFMPEG_PATH"),
    audioInputUnpaced: flags.audioInputUnpaced ?? false,
    echoCancellation: check(() => parseAec(env.AEC)) ?? true,
    room: flags.room,
    ngrokAuthtoken: set("NGROK_AUTHTOKEN"),
    inboundGreeting: set("INBOUND_GREETING"),
    streamIdleSeconds: env.STREAM_IDLE_TIMEOUT
      ? check(() =>
        parseNumber(env.STREAM_IDLE_TIMEOUT!, "STREAM_IDLE_TIMEOUT", {
          positive: true,
          expected: "a positive number of seconds",
          hint: " (default 30)",
        })
      )
      : 30,
    http: {
      headerTimeoutMs: seconds(env, "HTTP_HEADER_TIMEOUT", 10, true),
      bodyTimeoutMs: seconds(env, "HTTP_BODY_TIMEOUT", 10, true),
      idleTimeoutMs: seconds(env, "HTTP_IDLE_TIMEOUT", 60, true),
      maxConnections: optional(
        env,
        "MAX_CONNECTIONS",
        (v, name) =>
          parseWholeNumber(v, name, { min: 1, expected: "a whole number of connections above 0" }),
      ),
    },
    inboundForwardTo: env.INBOUND_FORWARD_TO
      ? check(() => parsePhoneNumber(env.INBOUND_FORWARD_TO!, "INBOUND_FORWARD_TO"))
      : undefined,
    redact: parseRedact(env.REDACT),
    retentionDays: optional(env, "RETENTION_DAYS", (v, name) =>
      parseNumber(v, name, {
        positive: true,
        expected: "a positive number of days such as 30",
      })),
    recordings: {
      enabled: check(() => parseRecordCalls(env.RECORD_CALLS)),
      maxBytes: 1e9 *
        (check(() =>
          optional(env, "RECORDINGS_MAX_GB", (v, name) =>
            parseNumber(v, name, {
              positive: true,
              expected: "a positive number of gigabytes such as 10 or 0.5",
            }))
        ) ?? 10),
    },
    model: {
      dir: set("SHERPA_MODEL_DIR"),
      name: env.SHERPA_MODEL ? check(() => parseModelName(env.SHERPA_MODEL!)) : DEFAULT_MODEL_NAME,
      nameExplicit: Boolean(env.SHERPA_MODEL),
      url: set("SHERPA_MODEL_URL"),
      cacheDir: set("SHERPA_CACHE_DIR"),
      overrides: {
        encoder: set("SHERPA_ENCODER"),
        decoder: set("SHERPA_DECODER"),
        joiner: set("SHERPA_JOINER"),
        tokens: set("SHERPA_TOKENS"),
      },
    },
    local: definedOnly({
      rule1MinTrailingSilence: check(() => optional(env, "ENDPOINT_RULE1_SILENCE", parseNumber)),
      rule2MinTrailingSilence: check(() => optional(env, "ENDPOINT_RULE2_SILENCE", parseNumber)),
      rule3MinUtteranceLength: check(() => optional(env, "ENDPOINT_MAX_UTTERANCE", parseNumber)),
      numThreads: check(() => optional(env, "SHERPA_THREADS", parseNumber)),
      workers: check(() =>
        optional(
          env,
          "SHERPA_WORKERS",
          (v, name) => parseWholeNumber(v, name, { expected: "a whole number such as 2 (or 0)" }),
        )
      ),
      tokenDelayMs: check(() => optional(env, "SHERPA_TOKEN_DELAY_MS", parseNumber)),
      vadSilenceMs: check(() =>
        optional(
          env,
          "VAD_SILENCE_MS",
          (v, name) =>
            parseNumber(v, name, { expected: "milliseconds such as 200 (0 turns the VAD off)" }),
        )
      ),
      vadThreshold: check(() => optional(env, "VAD_THRESHOLD", parseProbability)),
      vad: check(() => optional(env, "VAD", parseVoiceDetector)),
      keyterms: check(() => keytermList(env)),
      keytermsScore: check(() =>
        optional(
          env,
          "KEYTERMS_SCORE",
          (v, name) => parseNumber(v, name, { expected: "a boost per token such as 1.5" }),
        )
      ),
    }),
    ...(check(() => loadTranscriber(env, flags.transcriber)) ??
      {
        transcriber: "local",
        transcribers: { inbound: "local", outbound: "local" },
        assemblyai: {},
      }),
    webhooks: check(() => loadWebhooks(env)) ?? null,
    dialOut: dialOut(env),
  };
  if (problems.length) throw new UserError(problems.join("\n"));
  return deepFreeze(config);
}

/** `TWILIO_SKIP_SIGNATURE`: `1` accepts unsigned requests; unset, empty or `0` checks them. */
function parseSkipSignature(value: string | undefined): boolean {
  const choice = value?.trim() ?? "";
  if (choice === "1") return true;
  if (choice === "" || choice === "0") return false;
  throw new UserError(
    `TWILIO_SKIP_SIGNATURE must be 1 (accept unsigned requests, trusted networks only) or unset, ` +
      `got "${value}"; nothing else turns signature checks off`,
  );
}

/**
 * Why a server with these settings would be unsafe, or undefined. Without
 * TWILIO_AUTH_TOKEN (and no TWILIO_SKIP_SIGNATURE=1) a server is local-only:
 * it must not listen beyond loopback nor be given a public URL or a tunnel.
 */
export function signatureProblem(settings: {
  host: string;
  publicUrl?: string;
  ngrokAuthtoken?: string;
  twilioAuthToken?: string;
  skipSignature: boolean;
}): string | undefined {
  if (settings.twilioAuthToken || settings.skipSignature) return undefined;
  const exposure = settings.publicUrl
    ? "PUBLIC_URL is set"
    : settings.ngrokAuthtoken
    ? "NGROK_AUTHTOKEN is set (a tunnel would open)"
    : !isLoopback(settings.host)
    ? `HOST=${settings.host} is not a loopback address`
    : undefined;
  if (!exposure) return undefined;
  return `TWILIO_AUTH_TOKEN is not set, but ${exposure}, so requests claiming to come from ` +
    "Twilio could not be checked. Set TWILIO_AUTH_TOKEN in .env (Twilio console, Account info), " +
    "or TWILIO_SKIP_SIGNATURE=1 to accept unsigned requests on a trusted network.";
}

/** Why TWILIO_ACCOUNT_SID is not usable (unset or malformed), or undefined. */
function accountSidProblem(value: string | undefined): string | undefined {
  const accountSid = (value ?? "").trim();
  const console = "in the Twilio console (https://console.twilio.com, Account info)";
  if (!accountSid) {
    return `TWILIO_ACCOUNT_SID is not set: copy your Account SID ${console} into .env`;
  }
  if (!/^AC[0-9a-fA-F]{32}$/.test(accountSid)) {
    return `TWILIO_ACCOUNT_SID must be "AC" followed by 32 hex digits (your Account SID ${console}), ` +
      `got a value of ${accountSid.length} characters starting with "${accountSid.slice(0, 2)}"`;
  }
  return undefined;
}

/** A number from 0 to 1 (a speech probability threshold). */
function parseProbability(value: string, name: string): number {
  const n = parseNumber(value, name);
  if (n > 0 && n < 1) return n;
  throw new UserError(`${name} must be a number between 0 and 1 such as 0.5, got "${value}".`);
}

/** A number of seconds (`positive`: above 0) in ms, or the default. */
function seconds(env: Env, name: string, fallback: number, positive: boolean): number {
  const value = optional(env, name, (v, n) =>
    parseNumber(v, n, {
      positive,
      expected: positive ? "a positive number of seconds" : "a number of seconds",
      hint: ` (default ${fallback})`,
    }));
  return (value ?? fallback) * 1000;
}

/** STREAM_SECRET must be long enough to be a key; the message never repeats it. */
function parseStreamSecret(value: string): string {
  if (value.length >= 16) return value;
  throw new UserError(
    `STREAM_SECRET must be at least 16 characters (e.g. \`openssl rand -hex 32\`), got ${value.length}; ` +
      "unset it to derive the key from TWILIO_AUTH_TOKEN",
  );
}

/** DASHBOARD_TOKEN must be hard to guess; the message never repeats it. */
function parseDashboardToken(value: string): string {
  const distinct = new Set(value).size;
  if (value.length >= 16 && distinct >= 8 && !/\s/.test(value)) return value;
  throw new UserError(
    `DASHBOARD_TOKEN is too weak (${value.length} characters, ${distinct} different${
      /\s/.test(value) ? ", with spaces" : ""
    }): use at least 16 characters, 8 of them different, no spaces, e.g. the output of ` +
      "`openssl rand -base64 32` or " +
      `\`deno eval "console.log(crypto.randomUUID() + crypto.randomUUID())"\`; ` +
      "or unset it and the server generates one in DATA_DIR when it is reachable from outside",
  );
}

/** ALLOWED_HOSTS: host names (no scheme, port or path) separated by commas. */
function parseAllowedHosts(value: string | undefined): string[] {
  const names = (value ?? "").split(",").map((n) => n.trim().toLowerCase()).filter(Boolean);
  for (const name of names) {
    if (!URL.canParse(`http://${name}/`) || new URL(`http://${name}/`).hostname !== name) {
      throw new UserError(
        `ALLOWED_HOSTS must be host names separated by commas, such as devbox.local,10.0.0.5 ` +
          `(no scheme, port or path), got "${name.slice(0, 100)}"`,
      );
    }
  }
  return names;
}

/** DATABASE_URL must be a PostgreSQL URL; the message never repeats it (it holds a password). */
function parseDatabaseUrl(value: string): string {
  const url = URL.canParse(value) ? new URL(value) : undefined;
  if (url?.protocol === "postgres:" || url?.protocol === "postgresql:") return value;
  throw new UserError(
    "DATABASE_URL must be a URL such as postgres://user:password@host:5432/callscribe " +
      "(its value is not shown: it may hold a password); unset it for the SQLite file under DATA_DIR",
  );
}

/** `REDACT`: a comma-separated list of policies (`card,cvv,ssn`, or `all`). */
function parseRedact(value: string | undefined): RedactPolicy[] {
  try {
    return parseRedactPolicies(value);
  } catch (error) {
    throw new UserError(`REDACT has an ${(error as Error).message}`);
  }
}

/** `RECORD_CALLS`: `1` (the default) records calls, `0` does not. */
function parseRecordCalls(value: string | undefined): boolean {
  const choice = value?.trim() || "1";
  if (choice !== "0" && choice !== "1") {
    throw new UserError(`RECORD_CALLS must be 1 (record calls) or 0 (do not), got "${value}"`);
  }
  return choice === "1";
}

/** `AEC`: `on` (the default) cancels the speaker's echo from the microphone, `off` does not. */
function parseAec(value: string | undefined): boolean {
  const choice = value?.trim().toLowerCase() || "on";
  if (choice !== "on" && choice !== "off") {
    throw new UserError(
      `AEC must be on (cancel the speaker's echo, the default) or off (e.g. with a headset), got "${value}"`,
    );
  }
  return choice === "on";
}

function parseModelName(value: string): string {
  if (isModelName(value)) return value;
  throw new UserError(
    `SHERPA_MODEL must be a model name such as ${DEFAULT_MODEL_NAME}, got "${value}".`,
  );
}

/** `parse(env[name], name)`, or undefined when the variable is unset or empty. */
function optional<T>(
  env: Env,
  name: string,
  parse: (value: string, name: string) => T,
): T | undefined {
  const value = env[name];
  return value === undefined || value === "" ? undefined : parse(value, name);
}

/** The object without its undefined values (so engine defaults apply to them). */
function definedOnly<T extends object>(object: T): Partial<T> {
  return Object.fromEntries(Object.entries(object).filter(([, v]) => v !== undefined)) as Partial<
    T
  >;
}

function deepFreeze<T extends object>(object: T): T {
  for (const value of Object.values(object)) {
    if (value && typeof value === "object") deepFreeze(value);
  }
  return Object.freeze(object);
}

/**
 * Webhook settings: `WEBHOOK_URL` (comma-separated) turns them on and then
 * needs a `WEBHOOK_SECRET` in the Standard Webhooks form.
 */
export function loadWebhooks(env: Env): WebhookSettings | null {
  const urls = (env.WEBHOOK_URL ?? "").split(",").map((u) => u.trim()).filter(Boolean);
  if (!urls.length) return null;
  const endpoints = urls.map((value) =>
    parseUrl(value, "WEBHOOK_URL", ["https:", "http:"], {
      expected: "http(s) URLs separated by commas, such as https://example.com/hooks/callscribe",
    }).href
  ).filter((url, i, all) => all.indexOf(url) === i);
  const secret = env.WEBHOOK_SECRET?.trim() ?? "";
  if (!secret) {
    throw new UserError(
      "WEBHOOK_URL is set but WEBHOOK_SECRET is not: every webhook is signed. Set WEBHOOK_SECRET " +
        "in .env to whsec_ and at least 24 random bytes in base64, e.g. the output of: " +
        `deno eval "console.log('whsec_' + btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32)))))"`,
    );
  }
  const problem = secretProblem(secret);
  if (problem) {
    throw new UserError(
      `WEBHOOK_SECRET ${problem}. Use whsec_ and 24 to 64 random bytes in base64 ` +
        "(the Standard Webhooks form your receiver's library expects).",
    );
  }
  const events = env.WEBHOOK_EVENTS?.trim()
    ? env.WEBHOOK_EVENTS.split(",").map((e) => e.trim()).filter(Boolean)
    : [...DEFAULT_WEBHOOK_EVENTS];
  const unknown = events.filter((e) => !(WEBHOOK_EVENT_TYPES as readonly string[]).includes(e));
  if (unknown.length) {
    throw new UserError(
      `WEBHOOK_EVENTS must name events from ${WEBHOOK_EVENT_TYPES.join(", ")}, got "${
        unknown.join(", ")
      }"`,
    );
  }
  const above0 = (unit: string) => (value: string, name: string) =>
    parseWholeNumber(value, name, { min: 1, expected: `a whole number of ${unit} above 0` });
  const windowSeconds = optional(env, "WEBHOOK_RETRY_WINDOW", above0("seconds"));
  const baseMs = optional(env, "WEBHOOK_BACKOFF_BASE", above0("ms"));
  return webhookSettings({
    endpoints,
    secret,
    events: new Set(events as WebhookEventType[]),
    ...definedOnly({ outboxLimit: optional(env, "WEBHOOK_OUTBOX_LIMIT", above0("events")) }),
    retry: {
      ...DEFAULT_RETRY_POLICY,
      ...definedOnly({
        windowMs: windowSeconds === undefined ? undefined : windowSeconds * 1000,
        baseMs,
      }),
    },
  });
}

/** `KEYTERMS` (or its older name `ASSEMBLYAI_KEYTERMS`), comma-separated, for every engine. */
function keytermList(env: Env): string[] | undefined {
  return parseKeytermList(env.KEYTERMS || env.ASSEMBLYAI_KEYTERMS);
}

/**
 * The engine choice and AssemblyAI settings. Default: `assemblyai` when
 * ASSEMBLYAI_API_KEY is set, else `local`. Choosing `assemblyai` without a key
 * fails here, before any call.
 */
function loadTranscriber(
  env: Env,
  flag?: string,
): Pick<Config, "transcriber" | "transcribers" | "assemblyai" | "assemblyaiVadSilenceMs"> {
  const apiKey = env.ASSEMBLYAI_API_KEY?.trim() || undefined;
  const source = flag !== undefined ? "--transcriber" : "TRANSCRIBER";
  const choice = parseChoice(
    flag ?? (env.TRANSCRIBER || (apiKey ? "assemblyai" : "local")),
    source,
  );
  const transcribers: Record<Track, TranscriberChoice> = {
    inbound: optional(env, "TRANSCRIBER_INBOUND", parseChoice) ?? choice,
    outbound: optional(env, "TRANSCRIBER_OUTBOUND", parseChoice) ?? choice,
  };
  const cloudChoice = [choice, transcribers.inbound, transcribers.outbound].find((c) =>
    c !== "local"
  );
  if (cloudChoice && !apiKey) {
    const named = choice === cloudChoice
      ? source
      : transcribers.inbound === cloudChoice
      ? "TRANSCRIBER_INBOUND"
      : "TRANSCRIBER_OUTBOUND";
    throw new UserError(
      `${named}=${cloudChoice} needs ASSEMBLYAI_API_KEY. Set it in .env (AssemblyAI dashboard, ` +
        `API Keys), or use the local engine (--transcriber local).`,
    );
  }
  const fraction = (value: string, name: string) =>
    parseNumber(value, name, { expected: "a number from 0 to 1" });
  const wholeMs = (value: string, name: string) =>
    parseWholeNumber(value, name, { expected: "a whole number of ms" });
  const buffer = optional(
    env,
    "ASSEMBLYAI_BUFFER_SECONDS",
    (value, name) => parseWholeNumber(value, name, { expected: "a whole number of seconds" }),
  );
  const assemblyai: Partial<AssemblyAIOptions> = definedOnly({
    apiKey,
    url: optional(env, "ASSEMBLYAI_URL", (value, name) =>
      parseUrl(value, name, ["wss:", "ws:"], {
        expected: "a WebSocket URL such as wss://streaming.eu.assemblyai.com/v3/ws",
      }) && value),
    speechModel: env.ASSEMBLYAI_SPEECH_MODEL || undefined,
    formatTurns: env.ASSEMBLYAI_FORMAT_TURNS ? env.ASSEMBLYAI_FORMAT_TURNS !== "0" : undefined,
    languageDetection: env.ASSEMBLYAI_LANGUAGE_DETECTION
      ? env.ASSEMBLYAI_LANGUAGE_DETECTION === "1"
      : undefined,
    keytermsPrompt: keytermList(env),
    speakerLabels: env.ASSEMBLYAI_SPEAKER_LABELS
      ? env.ASSEMBLYAI_SPEAKER_LABELS === "1"
      : undefined,
    maxSpeakers: optional(
      env,
      "ASSEMBLYAI_MAX_SPEAKERS",
      (value, name) =>
        parseWholeNumber(value, name, { min: 1, expected: "a whole number such as 2" }),
    ),
    minTurnSilenceMs: optional(env, "ASSEMBLYAI_MIN_TURN_SILENCE", wholeMs),
    maxTurnSilenceMs: optional(env, "ASSEMBLYAI_MAX_TURN_SILENCE", wholeMs),
    endOfTurnConfidenceThreshold: optional(
      env,
      "ASSEMBLYAI_END_OF_TURN_CONFIDENCE_THRESHOLD",
      fraction,
    ),
    vadThreshold: optional(env, "ASSEMBLYAI_VAD_THRESHOLD", fraction),
    prompt: env.ASSEMBLYAI_PROMPT || undefined,
    // REDACT: AssemblyAI redacts too (our redactor still runs on what it sends).
    redactPiiPolicies: env.REDACT?.trim()
      ? parseRedact(env.REDACT).map((p) => ASSEMBLYAI_PII_POLICIES[p])
      : undefined,
    inactivityTimeoutSeconds: optional(
      env,
      "ASSEMBLYAI_INACTIVITY_TIMEOUT",
      (value, name) =>
        parseWholeNumber(value, name, {
          min: 5,
          max: 3600,
          expected: "whole seconds from 5 to 3600",
        }),
    ),
    bufferSeconds: buffer === undefined ? undefined : Math.max(1, buffer),
  });
  if (cloudChoice) {
    // The model and what it accepts are checked now, not at the first call.
    try {
      validateSettings({
        url: ASSEMBLYAI_URL,
        speechModel: DEFAULT_SPEECH_MODEL,
        formatTurns: true,
        ...assemblyai,
      });
    } catch (error) {
      if (error instanceof SettingsError) throw new UserError(error.message);
      throw error;
    }
  }
  const assemblyaiVadSilenceMs = optional(
    env,
    "ASSEMBLYAI_VAD_FORCE_ENDPOINT_MS",
    (value, name) =>
      parseWholeNumber(value, name, { min: 100, max: 5000, expected: "ms from 100 to 5000" }),
  );
  return { transcriber: choice, transcribers, assemblyai, assemblyaiVadSilenceMs };
}

/**
 * Reads and checks TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, the from-number
 * (`--from` wins over TWILIO_PHONE_NUMBER) and TWILIO_API_URL, without any
 * network call. Throws one UserError listing every problem, each by name
 * with the fix.
 */
export function twilioCredentials(
  env: Record<string, string | undefined>,
  fromFlag?: string,
): TwilioCredentials {
  const problems: string[] = [];
  const accountSid = (env.TWILIO_ACCOUNT_SID ?? "").trim();
  const console = "in the Twilio console (https://console.twilio.com, Account info)";
  const sidProblem = accountSidProblem(accountSid);
  if (sidProblem) problems.push(sidProblem);
  const authToken = env.TWILIO_AUTH_TOKEN ?? "";
  if (!authToken) {
    problems.push(`TWILIO_AUTH_TOKEN is not set: copy your Auth Token ${console} into .env`);
  } else if (/\s|["']/.test(authToken)) {
    problems.push(
      "TWILIO_AUTH_TOKEN contains spaces or quotes: paste the Auth Token alone, as shown " +
        console,
    );
  }
  const fromName = fromFlag !== undefined ? "--from" : "TWILIO_PHONE_NUMBER";
  const from = (fromFlag ?? env.TWILIO_PHONE_NUMBER ?? "").trim();
  if (!from) {
    problems.push(
      "TWILIO_PHONE_NUMBER is not set: set it in .env to your Twilio number in E.164 form " +
        "(Phone Numbers > Manage > Active numbers in the console), or pass --from +1…",
    );
  } else {
    try {
      parsePhoneNumber(from, fromName);
    } catch (error) {
      problems.push((error as Error).message);
    }
  }
  let apiUrl: string | undefined;
  if (env.TWILIO_API_URL) {
    try {
      apiUrl = parseUrl(env.TWILIO_API_URL, "TWILIO_API_URL", ["http:", "https:"], {
        expected: "an http(s) URL (it is for testing; leave it unset for Twilio)",
      }).origin;
    } catch (error) {
      problems.push((error as Error).message);
    }
  }
  if (problems.length) throw new UserError(problems.join("\n"));
  return { accountSid, authToken, from, apiUrl };
}

/** The dashboard's dial-out: the credentials `deno task call` would use, or why it has none. */
function dialOut(env: Env): DialOut {
  try {
    return { credentials: twilioCredentials(env) };
  } catch (error) {
    if (!(error instanceof UserError)) throw error;
    return { problem: error.message.split("\n").join("; ") };
  }
}

function parseVoiceDetector(value: string, name: string): VoiceDetectorKind {
  if (!VOICE_DETECTOR_KINDS.includes(value as VoiceDetectorKind)) {
    throw new UserError(
      `${name} must be ${VOICE_DETECTOR_KINDS.join(" or ")}, got "${value}" ` +
        "(VAD_SILENCE_MS=0 turns the voice detector off)",
    );
  }
  return value as VoiceDetectorKind;
}

function parseChoice(value: string, name: string): TranscriberChoice {
  if (!CHOICES.includes(value)) {
    throw new UserError(`${name} must be local, assemblyai or hybrid, got "${value}"`);
  }
  return value as TranscriberChoice;
}
