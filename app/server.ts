/**
 * The server as the commands start it: the configuration mapped to
 * {@link ServerOptions}, the store chosen and opened, and the warnings about
 * settings that expose it.
 *
 * @module
 */
import type { Logger } from "../lib/log.ts";
import { isLoopback } from "../lib/server/auth.ts";
import { Recordings } from "../lib/recording/recordings.ts";
import { listen, type RunningServer, type ServerOptions } from "../lib/server/serve.ts";
import { dbPath, type TranscriptStore } from "../lib/store/db.ts";
import { openTranscriptStore } from "../lib/store/open.ts";
import type { TranscriberEngine } from "../lib/transcribe/engine.ts";
import { UserError } from "../lib/user_error.ts";
import type { Config } from "./config.ts";

export type { RunningServer };

/** What a server needs from the configuration, checked before any model is found or downloaded. */
export type ServerSettings = Omit<ServerOptions, "store" | "engine" | "log" | "instanceId">;

/**
 * The server's settings. A server needs TWILIO_AUTH_TOKEN (or an explicit
 * TWILIO_SKIP_SIGNATURE=1): that is checked here, once.
 */
export function serverSettings(config: Config): ServerSettings {
  if (!config.twilioAuthToken && !config.skipSignature) {
    throw new UserError(
      "TWILIO_AUTH_TOKEN is not set, so requests cannot be checked as coming from Twilio. " +
        "Set it in .env (Twilio console, Account info), or set TWILIO_SKIP_SIGNATURE=1 " +
        "to accept unsigned requests on a trusted network.",
    );
  }
  return {
    host: config.host,
    port: config.port,
    publicUrl: config.publicUrl,
    twilioAuthToken: config.skipSignature ? null : config.twilioAuthToken!,
    dashboardToken: config.dashboardToken,
    bridge: {
      input: config.audioInput,
      output: config.audioOutput,
      ffmpeg: config.ffmpegPath,
      unpacedFileInput: config.audioInputUnpaced,
      echoCancellation: config.echoCancellation,
      room: config.room,
    },
    inbound: { greeting: config.inboundGreeting, forwardTo: config.inboundForwardTo },
    streamIdleMs: config.streamIdleSeconds * 1000,
    instanceUrl: config.instanceUrl,
    instanceTimeoutMs: config.instanceTimeoutMs,
    streamSecret: config.streamSecret,
    webhooks: config.webhooks ?? undefined,
    recordings: { dir: Recordings.folder(config.dataDir), ...config.recordings },
  };
}

/** Opens the store (DATABASE_URL or DATA_DIR), then listens; `settings` defaults to {@link serverSettings}. */
export async function startServer(
  config: Config,
  engine: TranscriberEngine,
  log: Logger,
  settings: ServerSettings = serverSettings(config),
): Promise<RunningServer> {
  if (settings.twilioAuthToken === null) {
    log.warn(
      "TWILIO_SKIP_SIGNATURE=1: Twilio signatures are NOT checked; anyone who reaches this server can stream to it",
    );
  }
  const instanceId = `i-${crypto.randomUUID().slice(0, 13)}`;
  const store = await openStore(config, log, instanceId);
  if (!isLoopback(settings.host) && !settings.dashboardToken) {
    log.warn(
      `!!! listening on ${settings.host} without DASHBOARD_TOKEN: anyone who reaches this address ` +
        "can read and delete every transcript. Set DASHBOARD_TOKEN in .env, or HOST=127.0.0.1. !!!",
    );
  }
  try {
    return await listen({ ...settings, instanceId, store, engine, log });
  } catch (error) {
    await store.close();
    throw error;
  }
}

/** Opens the transcript store (DATABASE_URL or DATA_DIR). */
async function openStore(
  config: Config,
  log: Logger,
  instanceId: string,
): Promise<TranscriptStore> {
  let store: TranscriptStore;
  try {
    store = await openTranscriptStore({
      ...config,
      instanceId,
      instanceTimeoutMs: config.instanceTimeoutMs,
    });
  } catch (error) {
    throw new UserError(
      config.databaseUrl
        ? `${
          (error as Error).message
        }. Check DATABASE_URL, or unset it to use SQLite under DATA_DIR.`
        : `cannot open the transcript database ${dbPath(config.dataDir)}: ${
          (error as Error).message
        }. Set DATA_DIR to a folder this user can write.`,
    );
  }
  log.info(`transcripts are kept in ${store.location}`);
  return store;
}
