/**
 * The server's settings from the configuration ({@link serverSettings}),
 * checked before any model is found or downloaded or the database opened,
 * and the checks made before the server starts: the port is free
 * ({@link checkPortFree}), and whether the server is reachable from outside
 * ({@link exposure}).
 *
 * @module
 */
import type { BridgeManagerOptions } from "../lib/laptop_audio/bridge.ts";
import type { RedactPolicy } from "../lib/redact/policies.ts";
import type { RecordingsOptions } from "../lib/recording/recordings.ts";
import { Recordings } from "../lib/recording/recordings.ts";
import type { DialOut } from "../lib/server/dial_out.ts";
import { isLoopback } from "../lib/server/auth.ts";
import { type ConnectionLimits, defaultConnectionLimits } from "../lib/server/connection_front.ts";
import type { WebhookSettings } from "../lib/delivery/settings.ts";
import { UserError } from "../lib/user_error.ts";
import { type Config, signatureProblem } from "./config.ts";

/**
 * What a server needs from the configuration, checked before any model is found or
 * downloaded (the store, the engine and the log come separately).
 */
export interface ServerSettings {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** A fixed public base URL; otherwise the local address until `RunningServer.usePublicUrl`. */
  publicUrl?: string;
  /** Checks `X-Twilio-Signature` with this token; null accepts unsigned requests (an explicit opt-out). */
  twilioAuthToken: string | null;
  /**
   * The dashboard token in force (DASHBOARD_TOKEN, or the generated one): the dashboard and the
   * API need it (or a session) when set, and are open when not. Never used by Twilio's routes.
   */
  dashboardToken?: string;
  /** More names the server answers to as Host, beside loopback and its public URL (`ALLOWED_HOSTS`). */
  allowedHosts?: string[];
  /** The laptop's microphone and speaker. */
  bridge: Omit<BridgeManagerOptions, "log">;
  /** Inbound calls: optional greeting, or a number to forward to instead of the laptop. */
  inbound?: { greeting?: string; forwardTo?: string };
  /** A media stream silent this long is closed and its call ended. */
  streamIdleMs: number;
  /** The dashboard places calls with these Twilio credentials (`POST /api/calls`). */
  dialOut?: DialOut;
  /** This instance's own base for its streams, when the public URL is a shared load balancer. */
  instanceUrl?: string;
  /** With PostgreSQL: an instance without a heartbeat this long is gone, its calls interrupted. */
  instanceTimeoutMs: number;
  /** Key of the per-call stream tokens; derived from the auth token when unset. */
  streamSecret?: string;
  /** Signed webhooks to the user's product; none when unset. */
  webhooks?: WebhookSettings;
  /** Call recordings: the folder, whether calls are recorded, the disk they may use. */
  recordings: Pick<RecordingsOptions, "dir" | "enabled" | "maxBytes">;
  /** `REDACT`: policies every transcript is redacted with before anyone sees it. */
  redact?: readonly RedactPolicy[];
  /** `RETENTION_DAYS`: calls older than this are deleted, at start and hourly; unset keeps all. */
  retentionDays?: number;
  /** Time limits on requests and the connection cap (defaults: {@link defaultConnectionLimits}). */
  http?: HttpLimits;
}

/** The connection limits of the front and the time a request body may take. */
export interface HttpLimits extends ConnectionLimits {
  /** A request body must have arrived this long after its head, else `408`. */
  bodyTimeoutMs: number;
}

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

/** The error of a port already taken. */
export function portInUse(host: string, port: number): UserError {
  return new UserError(
    `port ${port} on ${host} is in use (another callscribe server, or another program): ` +
      "stop it, or choose another port with PORT in .env or --port",
  );
}
