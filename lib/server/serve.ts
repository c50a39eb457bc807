/**
 * Starts the server on `Deno.serve`: the routes, the call registry, the
 * store's and the dashboard's listeners, the laptop audio bridge. Everything
 * it is given comes in {@link ServerOptions}; what it resolves while running
 * (the bound port, the public URL once a tunnel is open) is its own state.
 *
 * @module
 */
import type { DialOut } from "./dial_out.ts";
import { BridgeManager, type BridgeManagerOptions } from "../laptop_audio/bridge.ts";
import { CallRegistry } from "../call/registry.ts";
import type { RedactPolicy } from "../redact/policies.ts";
import { startRetention } from "../store/retention.ts";
import type { Logger } from "../log.ts";
import { attachStore, type TranscriptStore } from "../store/db.ts";
import type { TranscriberEngine } from "../transcribe/engine.ts";
import { callKind, CallStatusBook } from "../twilio/call_status.ts";
import type { Hono } from "hono";
import { createApp } from "./app.ts";
import { DashboardAuth } from "./dashboard_auth.ts";
import type { AppEnv } from "./route_group.ts";
import { LiveHub } from "./live.ts";
import { localUrl } from "./local_url.ts";
import type { PostgresStore } from "../store/postgres.ts";
import type { Cluster } from "../cluster/cluster.ts";
import { StreamAccess } from "./stream_access.ts";
import { sleep } from "../async/sleep.ts";
import { Recordings, type RecordingsOptions } from "../recording/recordings.ts";
import { UserError } from "../user_error.ts";
import {
  ConnectionFront,
  type ConnectionLimits,
  defaultConnectionLimits,
} from "./connection_front.ts";
import { printable } from "../text/printable.ts";

import { startWebhooks, type Webhooks } from "../delivery/start.ts";
import type { WebhookSettings } from "../delivery/settings.ts";

/** How long a stopping server keeps sending webhooks that are due. */
const WEBHOOK_DRAIN_MS = 5000;

/** Options of {@link listen}. */
export interface ServerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** A fixed public base URL; otherwise the local address until {@link RunningServer.usePublicUrl}. */
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
  /** Where finals are stored; the server closes it on shutdown. */
  store: TranscriptStore;
  /** The laptop's microphone and speaker. */
  bridge: Omit<BridgeManagerOptions, "log">;
  /** Inbound calls: optional greeting, or a number to forward to instead of the laptop. */
  inbound?: { greeting?: string; forwardTo?: string };
  /** A media stream silent this long is closed and its call ended. */
  streamIdleMs: number;
  /** The dashboard places calls with these Twilio credentials (`POST /api/calls`). */
  dialOut?: DialOut;
  /** This instance's id; with PostgreSQL the store was opened with it (its calls are its own). */
  instanceId: string;
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
  engine: TranscriberEngine;
  log: Logger;
}

/** The connection limits of the front and the time a request body may take. */
export interface HttpLimits extends ConnectionLimits {
  /** A request body must have arrived this long after its head, else `408`. */
  bodyTimeoutMs: number;
}

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
  webhooks: Webhooks | null;
  /** Ends every call (flushing its finals) and every ffmpeg process, then stops listening. */
  shutdown(): Promise<void>;
  /** The routes (for tests that enumerate them). */
  app: Hono<AppEnv>;
  /**
   * A one-time login link on `base` (the local address by default): its ticket is exchanged
   * for a session at its first use. Null when the dashboard needs no credential.
   */
  loginLink(base?: string): string | null;
}

/** Listens on `host:port` and serves Twilio's routes, the dashboard and the API. */
export async function listen(options: ServerOptions): Promise<RunningServer> {
  const { engine, log, store } = options;
  const bridges = await BridgeManager.create({ ...options.bridge, log });

  // Levels go to the live hub, made below (it needs the registry's cluster first).
  const recordings = await openRecordings(
    options.recordings,
    log,
    (callSid, levels) => live.publishLevels(callSid, levels),
  );
  const registry = new CallRegistry(engine, {
    audio: (call) => recordings.open(call.callSid),
    redact: options.redact,
  });
  let boundPort = options.port;
  let publicUrl = options.publicUrl;
  const publicBase = () => publicUrl ?? localUrl(options.host, boundPort, { reachable: true });
  const streamBase = () => options.instanceUrl ?? publicBase();
  const webhooks = options.webhooks ? await startWebhooks(options.webhooks, store, log) : null;
  // With PostgreSQL, one instance of many: events through the database, a heartbeat that marks
  // dead instances' calls interrupted. With SQLite, calls a killed server left open are marked
  // now; those of another server still running on the same DATA_DIR are not (its lock is held).
  const cluster: Cluster | null = store.kind === "postgres"
    ? new (await import("../cluster/cluster.ts")).Cluster(store as PostgresStore, {
      url: streamBase,
      timeoutMs: options.instanceTimeoutMs,
      log,
      webhooks: webhooks ?? undefined,
    })
    : null;
  if (!cluster) {
    const interrupted = await store.markInterrupted({ within: webhooks?.interrupted });
    if (interrupted) {
      log.warn(`${interrupted} call(s) from an earlier run were cut off; kept as interrupted`);
      webhooks?.worker.wake();
    }
  }
  // The store listens first: a final is committed before any later listener prints it.
  const live = new LiveHub({ store, bus: cluster?.bus });
  attachStore(
    registry,
    store,
    cluster ? undefined : (segment) => live.publishSegment(segment),
    webhooks?.inTransaction,
  );
  if (webhooks) registry.listen(webhooks.listener);
  live.attach(registry);
  let draining = false;
  registry.listen((event) => {
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
  });

  const stopRetention = options.retentionDays
    ? startRetention({ store, recordings, days: options.retentionDays, log })
    : null;
  const http = options.http ?? defaultConnectionLimits();
  const statuses = new CallStatusBook(log);
  const dashboardAuth = new DashboardAuth({ token: options.dashboardToken, log, publicBase });
  const app = createApp({
    dashboardAuth,
    bind: { host: options.host, port: () => boundPort },
    allowedHosts: options.allowedHosts,
    statuses,
    inbound: options.inbound,
    registry,
    log,
    publicBase,
    authToken: options.twilioAuthToken ?? undefined,
    bridges,
    transcripts: {
      store,
      live,
      recordings,
      webhooks: webhooks ?? undefined,
    },
    streamIdleMs: options.streamIdleMs,
    dialOut: options.dialOut,
    streamBase,
    streamAccess: StreamAccess.fromSecrets({
      streamSecret: options.streamSecret,
      authToken: options.twilioAuthToken ?? undefined,
    }),
    callEnded: async (callSid) => ((await store.getCall(callSid))?.endedAt ?? null) !== null,
    draining: () => draining,
    bodyTimeoutMs: http.bodyTimeoutMs,
  });
  // Deno.serve on a loopback port of its own; the public port is the front's (its limits).
  // Should it stop all the same (its accept loop ends on any accept error, e.g. out of file
  // descriptors), it is started again on a new port and the front sent there.
  let stopping = false;
  let front: ConnectionFront | undefined;
  const serveHttp = async (): Promise<{ server: Deno.HttpServer; port: number }> => {
    const ready = Promise.withResolvers<number>();
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      onListen: ({ port }) => ready.resolve(port),
      onError: (error) => {
        log.error(`request failed: ${(error as Error).message}`);
        return new Response("internal error", { status: 500 });
      },
    }, app.fetch);
    server.finished.catch(async (error) => {
      if (stopping) return;
      log.error(`the HTTP server stopped (${error.message}); starting it again`);
      for (let attempt = 1; !stopping; attempt++) {
        await sleep(Math.min(5000, 100 * attempt));
        try {
          httpServer = await serveHttp();
          return;
        } catch (error) {
          log.error(`cannot start the HTTP server again: ${(error as Error).message}`);
        }
      }
    });
    const port = await ready.promise;
    front?.retarget({ hostname: "127.0.0.1", port });
    return { server, port };
  };
  let httpServer = await serveHttp();
  try {
    front = ConnectionFront.start({
      hostname: options.host,
      port: options.port,
      target: {
        hostname: "127.0.0.1",
        port: httpServer.port,
      },
      ...http,
      log,
    });
  } catch (error) {
    await httpServer.server.shutdown();
    throw error;
  }
  const publicFront = front;
  boundPort = publicFront.port;
  if (cluster) {
    await cluster.start(live);
    log.info(`instance ${options.instanceId}: streams at ${streamBase()}`);
  }
  const url = localUrl(options.host, boundPort);
  return {
    url,
    app,
    loginLink(base = localUrl(options.host, boundPort, { reachable: true })) {
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
    instanceId: options.instanceId,
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
    async shutdown() {
      draining = true;
      await bridges.closeAll();
      await registry.endAll("server shutting down");
      await recordings.settled();
      // Open event streams would keep the server from shutting down.
      live.close();
      stopping = true;
      await publicFront.stop();
      await httpServer.server.shutdown();
      publicFront.closeAll();
      // A few seconds to send the last events (call-ended); what is left waits for the next start.
      await webhooks?.worker.drain(WEBHOOK_DRAIN_MS);
      await webhooks?.worker.stop();
      await cluster?.stop();
      await stopRetention?.();
      await store.close();
    },
  };
}

/** The recordings folder; recordings a killed server left open are repaired first. */
async function openRecordings(
  options: ServerOptions["recordings"],
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
