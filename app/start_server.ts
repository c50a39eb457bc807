/**
 * The composition root: {@link startServer} builds every component of the
 * server, in the order read below, from the settings (`./server_settings.ts`).
 * Each component registers its stop with a {@link Lifecycle} as it is built;
 * shutdown runs the stops in reverse.
 *
 * @module
 */
import type { Hono } from "hono";
import type { Logger } from "../lib/log.ts";
import { sleep } from "../lib/async/sleep.ts";
import { CallRegistry } from "../lib/call/registry.ts";
import { CallEventPipeline, type Publisher } from "../lib/call/pipeline.ts";
import { storeCommit } from "../lib/call/store_commit.ts";
import { FLUSH_TIMEOUT_MS } from "../lib/call/session.ts";
import type { Cluster } from "../lib/cluster/cluster.ts";
import { type OutgoingWebhooks, startOutgoingWebhooks } from "../lib/delivery/outgoing_webhooks.ts";
import { BridgeManager } from "../lib/laptop_audio/bridge.ts";
import { Recordings, type RecordingsOptions } from "../lib/recording/recordings.ts";
import { createApp } from "../lib/server/app.ts";
import { defaultConnectionLimits } from "../lib/server/connection_front.ts";
import { DashboardAuth } from "../lib/server/dashboard_auth.ts";
import { loadDashboardToken } from "../lib/server/dashboard_token.ts";
import { upgradeDenoWebSocket } from "../lib/server/deno_websocket.ts";
import { upgradeThroughFront } from "../lib/server/front_upgrade.ts";
import { StreamHandoff } from "../lib/server/stream_handoff.ts";
import { listenHttp } from "../lib/server/http_listener.ts";
import { LiveHub } from "../lib/live/live_hub.ts";
import { localUrl } from "../lib/server/local_url.ts";
import type { AppEnv } from "../lib/server/route_group.ts";
import { StreamAccess } from "../lib/server/stream_access.ts";
import { dbPath, type TranscriptStore } from "../lib/store/db.ts";
import { openTranscriptStore } from "../lib/store/open.ts";
import type { PostgresStore } from "../lib/store/postgres.ts";
import { startRetention } from "../lib/store/retention.ts";
import { printable } from "../lib/text/printable.ts";
import type { TranscriberEngine } from "../lib/transcribe/engine.ts";
import { callKind, CallStatusBook } from "../lib/twilio/call_status.ts";
import { UserError } from "../lib/user_error.ts";
import type { Config } from "./config.ts";
import { Lifecycle } from "./lifecycle.ts";
import { exposure, portInUse, type ServerSettings, serverSettings } from "./server_settings.ts";

/** How long a stopping server keeps sending webhooks that are due. */
const WEBHOOK_DRAIN_MS = 5000;

/** A running server. */
export interface RunningServer {
  /** Local address, e.g. `http://127.0.0.1:8080`. */
  url: string;
  /** Base URL Twilio uses: the fixed one, the tunnel's once set, or the local address. */
  readonly publicUrl: string;
  /** From now on, stream URLs and signature checks use `url` (e.g. a tunnel opened after listening). */
  usePublicUrl(url: string): void;
  registry: CallRegistry;
  /** The transcript database (open until shutdown). */
  store: TranscriptStore;
  /** Live events for the dashboard. */
  live: LiveHub;
  /** Call recordings. */
  recordings: Recordings;
  /** Call progress from Twilio's status callbacks. */
  statuses: CallStatusBook;
  /** The laptop audio bridge (microphone and speaker through ffmpeg). */
  bridges: BridgeManager;
  /** This instance's id (its row in `instances` with PostgreSQL). */
  instanceId: string;
  /**
   * Stops taking new calls (/healthz 503, TwiML webhooks 503) and waits up to
   * `timeoutMs` for the live calls to finish; resolves with how many are left.
   */
  drain(timeoutMs: number): Promise<number>;
  /** Webhook delivery, when `WEBHOOK_URL` is set. */
  webhooks: OutgoingWebhooks | null;
  /**
   * Ends every call (flushing its finals) and every ffmpeg process, stops listening, then stops
   * the rest: every component's stop, in reverse of the order they were built.
   */
  shutdown(): Promise<void>;
  /** The routes (for tests that enumerate them). */
  app: Hono<AppEnv>;
  /**
   * A one-time login link on `base` (the local address by default): its ticket is exchanged
   * for a session at its first use. Null when the dashboard needs no credential.
   */
  loginLink(base?: string): string | null;
}

/**
 * Starts the server: opens the store (DATABASE_URL or DATA_DIR), builds every
 * component and listens. `settings` defaults to {@link serverSettings}. A
 * component that cannot start stops those built before it.
 */
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
  const lifecycle = new Lifecycle(log);
  try {
    return await build(config, settings, engine, log, lifecycle);
  } catch (error) {
    await lifecycle.stop();
    if (error instanceof Deno.errors.AddrInUse) throw portInUse(settings.host, settings.port);
    throw error;
  }
}

/** Builds the components in order, each registering its stop with `lifecycle`. */
async function build(
  config: Config,
  settings: ServerSettings,
  engine: TranscriberEngine,
  log: Logger,
  lifecycle: Lifecycle,
): Promise<RunningServer> {
  const instanceId = `i-${crypto.randomUUID().slice(0, 13)}`;
  let boundPort = settings.port;
  let publicUrl = settings.publicUrl;
  let draining = false;
  const publicBase = () => publicUrl ?? localUrl(settings.host, boundPort, { reachable: true });
  const streamBase = () => settings.instanceUrl ?? publicBase();

  // The store: where every call event is committed.
  const store = await openStore(config, log, instanceId);
  lifecycle.defer("the store", () => store.close());
  const dashboardToken = await dashboardTokenFor(config, settings, log);

  // Outgoing webhooks: their outbox is written in the store's transactions.
  const webhooks = settings.webhooks
    ? await startOutgoingWebhooks(settings.webhooks, store, log)
    : null;
  if (webhooks) {
    // A few seconds to send the last events (call-ended); what is left waits for the next start.
    lifecycle.defer("outgoing webhooks", async () => {
      await webhooks.worker.drain(WEBHOOK_DRAIN_MS);
      await webhooks.worker.stop();
    }, WEBHOOK_DRAIN_MS + 5000);
  }

  // With PostgreSQL, one instance of many: events through the database, a heartbeat that marks
  // dead instances' calls interrupted. With SQLite, calls a killed server left open are marked
  // now; those of another server still running on the same DATA_DIR are not (its lock is held).
  const cluster: Cluster | null = store.kind === "postgres"
    ? new (await import("../lib/cluster/cluster.ts")).Cluster(store as PostgresStore, {
      url: streamBase,
      timeoutMs: settings.instanceTimeoutMs,
      log,
      webhooks: webhooks ?? undefined,
    })
    : null;
  if (cluster) lifecycle.defer("the cluster", () => cluster.stop());
  else {
    const interrupted = await store.markInterrupted({ within: webhooks?.interrupted });
    if (interrupted) {
      log.warn(`${interrupted} call(s) from an earlier run were cut off; kept as interrupted`);
      webhooks?.worker.wake();
    }
  }

  // The laptop's microphone and speaker.
  const bridges = await BridgeManager.create({ ...settings.bridge, log });

  // Recordings; their levels go to the live hub, made next.
  const recordings = await openRecordings(
    settings.recordings,
    log,
    (callSid, levels) => live.publishLevels(callSid, levels),
  );
  lifecycle.defer("recordings", () => recordings.settled());
  if (settings.retentionDays) {
    const stopRetention = startRetention({ store, recordings, days: settings.retentionDays, log });
    lifecycle.defer("retention", stopRetention);
  }

  // The live hub: the dashboard's event streams.
  const live = new LiveHub({ store, bus: cluster?.bus });

  // The call-event pipeline: each event is committed (the store, and the outbox in the same
  // transaction) before any publisher hears it. Publishers, in the order they hear an event:
  // the outgoing webhooks' wake, the live hub, the log (the console printer is the command's).
  const pipeline = new CallEventPipeline({
    commit: storeCommit(store, { engine: engine.name, within: webhooks?.inTransaction, log }),
    log,
  });
  if (webhooks) pipeline.publish(webhooks.publisher);
  pipeline.publish(live.publisher());
  pipeline.publish(callLog(log));

  // The calls.
  const registry = new CallRegistry(engine, {
    audio: (call) => recordings.open(call.callSid),
    redact: settings.redact,
    pipeline,
  });

  // Call progress from Twilio's status callbacks.
  const statuses = new CallStatusBook(log);

  // The HTTP app: Twilio's routes, the dashboard and the API.
  const http = settings.http ?? defaultConnectionLimits();
  const dashboardAuth = new DashboardAuth({ token: dashboardToken, log, publicBase });
  // Media streams the app accepts through the connection front are then served by the front.
  const handoff = new StreamHandoff();
  const app = createApp({
    upgrade: upgradeThroughFront(handoff, upgradeDenoWebSocket),
    dashboardAuth,
    bind: { host: settings.host, port: () => boundPort },
    allowedHosts: settings.allowedHosts,
    statuses,
    inbound: settings.inbound,
    registry,
    log,
    publicBase,
    authToken: settings.twilioAuthToken ?? undefined,
    bridges,
    transcripts: { store, live, recordings, webhooks: webhooks ?? undefined },
    streamIdleMs: settings.streamIdleMs,
    dialOut: settings.dialOut,
    streamBase,
    streamAccess: StreamAccess.fromSecrets({
      streamSecret: settings.streamSecret,
      authToken: settings.twilioAuthToken ?? undefined,
    }),
    callEnded: async (callSid) => ((await store.getCall(callSid))?.endedAt ?? null) !== null,
    draining: () => draining,
    bodyTimeoutMs: http.bodyTimeoutMs,
  });

  // The listener.
  const listener = await listenHttp({
    host: settings.host,
    port: settings.port,
    fetch: app.fetch,
    limits: http,
    handoff,
    log,
  });
  boundPort = listener.port;
  lifecycle.defer("the HTTP listener", () => listener.stop());
  // Registered after the listener, so stopped before it: open event streams and media streams
  // would keep it from shutting down, and calls end (flushing their finals) while the store is open.
  lifecycle.defer("the live hub", () => live.close());
  lifecycle.defer(
    "the calls",
    () => registry.endAll("server shutting down"),
    FLUSH_TIMEOUT_MS + 5000,
  );
  lifecycle.defer("the laptop audio", () => bridges.closeAll());
  // First of all: no new call is taken.
  lifecycle.defer("taking calls", () => {
    draining = true;
  });

  if (cluster) {
    await cluster.start(live);
    log.info(`instance ${instanceId}: streams at ${streamBase()}`);
  }
  return {
    url: localUrl(settings.host, boundPort),
    app,
    loginLink(base = localUrl(settings.host, boundPort, { reachable: true })) {
      if (!dashboardAuth.required) return null;
      return `${base.replace(/\/$/, "")}/login?ticket=${dashboardAuth.issueTicket()}`;
    },
    get publicUrl() {
      return publicBase();
    },
    usePublicUrl(url: string) {
      publicUrl = url;
    },
    registry,
    store,
    live,
    recordings,
    statuses,
    bridges,
    instanceId,
    async drain(timeoutMs) {
      draining = true;
      await cluster?.heartbeat.setState("draining").catch(() => {});
      const deadline = performance.now() + timeoutMs;
      while (registry.activeCalls > 0 && performance.now() < deadline) {
        await sleep(100);
      }
      return registry.activeCalls;
    },
    webhooks,
    shutdown: () => lifecycle.stop(),
  };
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

/** The recordings folder; recordings a killed server left open are repaired first. */
async function openRecordings(
  options: ServerSettings["recordings"],
  log: Logger,
  onLevels: RecordingsOptions["onLevels"],
): Promise<Recordings> {
  const recordings = new Recordings({
    ...options,
    log,
    onLevels,
  });
  try {
    await recordings.start();
  } catch (error) {
    throw new UserError(
      `cannot use the recordings folder ${recordings.dir}: ${(error as Error).message}. ` +
        "Set DATA_DIR to a folder this user can write, or RECORD_CALLS=0.",
    );
  }
  log.info(
    options.enabled
      ? `calls are recorded in ${recordings.dir} (RECORD_CALLS=0 turns it off)`
      : "calls are not recorded (RECORD_CALLS=0)",
  );
  return recordings;
}

/** The publisher that logs each call's start, end and errors. */
function callLog(log: Logger): Publisher {
  return (event) => {
    if (event.type === "call-started") {
      const { from, to } = event.call;
      const parties = from && to ? `, ${printable(from, 64)} → ${printable(to, 64)}` : "";
      log.info(
        `call ${printable(event.call.callSid, 64)} started (${
          callKind(event.call.direction)
        }${parties})`,
      );
    } else if (event.type === "call-ended") {
      log.info(`call ${event.call.callSid} ended (${event.reason})`);
    } else if (event.type === "call-error") {
      log.error(`call ${printable(event.call.callSid, 64)}: ${printable(event.message, 300)}`);
    }
  };
}
