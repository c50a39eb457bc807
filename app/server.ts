/**
 * The server as the commands start it: the configuration mapped to
 * {@link ServerOptions}, the store chosen and opened, the dashboard token in
 * force (given, or generated when the server is reachable from outside), and
 * what is said about it at start.
 *
 * @module
 */
import type { Logger } from "../lib/log.ts";
import { isLoopback } from "../lib/server/auth.ts";
import { loadDashboardToken } from "../lib/server/dashboard_token.ts";
import { Recordings } from "../lib/recording/recordings.ts";
import { listen, type RunningServer, type ServerOptions } from "../lib/server/serve.ts";
import { dbPath, type TranscriptStore } from "../lib/store/db.ts";
import { openTranscriptStore } from "../lib/store/open.ts";
import type { TranscriberEngine } from "../lib/transcribe/engine.ts";
import { UserError } from "../lib/user_error.ts";
import { defaultConnectionLimits } from "../lib/server/connection_front.ts";
import { type Config, signatureProblem } from "./config.ts";

export type { RunningServer };

/** What a server needs from the configuration, checked before any model is found or downloaded. */
export type ServerSettings = Omit<ServerOptions, "store" | "engine" | "log" | "instanceId">;

/**
 * The server's settings. A server reachable by Twilio needs TWILIO_AUTH_TOKEN
 * (or an explicit TWILIO_SKIP_SIGNATURE=1): that is checked here, once.
 * Without either it is local-only ({@link Config.localOnly}): its signature
 * key is a random one nobody else knows, so Twilio's routes accept nothing.
 */
export function serverSettings(config: Config): ServerSettings {
  const problem = signatureProblem(config);
  if (problem) throw new UserError(problem);
  return {
    host: config.host,
    port: config.port,
    publicUrl: config.publicUrl,
    twilioAuthToken: config.skipSignature
      ? null
      : config.twilioAuthToken ?? crypto.randomUUID() + crypto.randomUUID(),
    dashboardToken: config.dashboardToken,
    allowedHosts: [...config.allowedHosts],
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
    redact: config.redact,
    retentionDays: config.retentionDays,
    http: {
      ...config.http,
      maxConnections: config.http.maxConnections ?? defaultConnectionLimits().maxConnections,
    },
    dialOut: config.dialOut,
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
  try {
    const dashboardToken = await dashboardTokenFor(config, settings, log);
    return await listen({ ...settings, dashboardToken, instanceId, store, engine, log });
  } catch (error) {
    await store.close();
    if (error instanceof Deno.errors.AddrInUse) throw portInUse(settings.host, settings.port);
    throw error;
  }
}

/**
 * Fails now, before a model is loaded or a database opened, when another
 * process already listens on `host:port` (port 0 picks a free one).
 */
export function checkPortFree(host: string, port: number): void {
  if (port === 0) return;
  let listener: Deno.Listener;
  try {
    listener = Deno.listen({ hostname: host, port });
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) throw portInUse(host, port);
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new UserError(
        `this user may not listen on port ${port} (ports below 1024 need privileges): choose ` +
          "another with PORT in .env or --port, such as 8080",
      );
    }
    if (error instanceof Deno.errors.AddrNotAvailable) {
      throw new UserError(
        `cannot listen on ${host}: this machine has no such address. Set HOST to one of its ` +
          "addresses (127.0.0.1 for this machine only).",
      );
    }
    throw error;
  }
  listener.close();
}

function portInUse(host: string, port: number): UserError {
  return new UserError(
    `port ${port} on ${host} is in use (another callscribe server, or another program): ` +
      "stop it, or choose another port with PORT in .env or --port",
  );
}

/**
 * Why the server can be reached from outside this machine (a tunnel, a
 * public URL, a HOST that is not loopback), or null when it cannot. A tunnel
 * delivers the internet from 127.0.0.1, so where requests come from proves
 * nothing; the configuration does.
 */
export function exposure(config: Config): string | null {
  const outside = (url: string | undefined) => url && !isLoopback(new URL(url).hostname);
  if (outside(config.publicUrl)) return `PUBLIC_URL is ${config.publicUrl}`;
  if (!config.publicUrl && config.ngrokAuthtoken) {
    return "an ngrok tunnel is opened (NGROK_AUTHTOKEN)";
  }
  if (!isLoopback(config.host)) return `HOST is ${config.host}`;
  if (outside(config.instanceUrl)) return `INSTANCE_URL is ${config.instanceUrl}`;
  return null;
}

/**
 * The dashboard token in force, said at start: DASHBOARD_TOKEN; else, when
 * the server is reachable from outside, the one kept in DATA_DIR (made now
 * if there is none); else none (the dashboard is open to this machine only).
 */
async function dashboardTokenFor(
  config: Config,
  settings: ServerSettings,
  log: Logger,
): Promise<string | undefined> {
  const reason = exposure(config);
  if (settings.dashboardToken) {
    log.info(
      `the dashboard and /api need DASHBOARD_TOKEN (a session from the login form or link, or ` +
        `Authorization: Bearer)${reason ? `; reachable from outside: ${reason}` : ""}`,
    );
    return settings.dashboardToken;
  }
  // Loopback only: open to this machine, as `deno task serve` says once it listens.
  if (!reason) return undefined;
  let token;
  try {
    token = await loadDashboardToken(config.dataDir);
  } catch (error) {
    throw new UserError(
      `this server is reachable from outside (${reason}), so the dashboard needs a token, and ` +
        `none could be kept in DATA_DIR ${config.dataDir}: ${(error as Error).message}. ` +
        "Set DASHBOARD_TOKEN in .env, or DATA_DIR to a folder this user can write.",
    );
  }
  log.warn(
    `reachable from outside (${reason}) and DASHBOARD_TOKEN is not set: the dashboard and /api ` +
      `need the token ${token.created ? "generated now and kept" : "kept"} in ${token.path} ` +
      "(readable by you only). Open the one-time login link printed below, or paste the file's " +
      "token in the login form; API clients send Authorization: Bearer <token>.",
  );
  return token.token;
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
