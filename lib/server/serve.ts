/**
 * Starts the server on `Deno.serve`: used by `main.ts` and by the simulated
 * call command, which runs it in-process.
 *
 * @module
 */
import { BridgeManager } from "../laptop_audio/bridge.ts";
import { parseAudioInput, parseAudioOutput } from "../laptop_audio/devices.ts";
import { CallRegistry } from "../call/registry.ts";
import { type Config, publicBase } from "../../app/config.ts";
import type { Logger } from "../log.ts";
import type { TranscriberEngine } from "../transcribe/engine.ts";
import { createApp } from "./app.ts";
import { dbPath, TranscriptStore } from "../store/db.ts";
import { isLoopback } from "./auth.ts";
import { LiveHub } from "./live.ts";
import { callKind, CallStatusBook } from "../twilio/call_status.ts";
import { UserError } from "../user_error.ts";

/** A running server. */
export interface RunningServer {
  /** Local address, e.g. `http://127.0.0.1:8080`. */
  url: string;
  /** Base URL Twilio uses (PUBLIC_URL or the local address). */
  publicUrl: string;
  registry: CallRegistry;
  /** The transcript database (open until shutdown). */
  store: TranscriptStore;
  /** Live events for the dashboard. */
  live: LiveHub;
  /** Call progress from Twilio's status callbacks. */
  statuses: CallStatusBook;
  /** The laptop audio bridge (microphone and speaker through ffmpeg). */
  bridges: BridgeManager;
  /** Ends every call (flushing its finals) and every ffmpeg process, then stops listening. */
  shutdown(): Promise<void>;
}

/**
 * A server needs TWILIO_AUTH_TOKEN (or an explicit TWILIO_SKIP_SIGNATURE=1);
 * checked first, before a model is found or downloaded.
 */
export function requireSignatureCheck(config: Config): void {
  if (!config.twilioAuthToken && !config.skipSignature) {
    throw new UserError(
      "TWILIO_AUTH_TOKEN is not set, so requests cannot be checked as coming from Twilio. " +
        "Set it in .env (Twilio console, Account info), or set TWILIO_SKIP_SIGNATURE=1 " +
        "to accept unsigned requests on a trusted network.",
    );
  }
}

/** Checks the configuration, then listens. */
export async function startServer(
  config: Config,
  engine: TranscriberEngine,
  log: Logger,
): Promise<RunningServer> {
  requireSignatureCheck(config);
  if (config.skipSignature) {
    log.warn(
      "TWILIO_SKIP_SIGNATURE=1: Twilio signatures are NOT checked; anyone who reaches this server can stream to it",
    );
  }
  const bridges = await BridgeManager.create({
    input: parseAudioInput(config.audioInput),
    output: parseAudioOutput(config.audioOutput),
    ffmpeg: config.ffmpegPath,
    unpacedFileInput: config.audioInputUnpaced,
    log,
  });

  const registry = new CallRegistry(engine);
  // The store listens first: a final is committed before any later listener prints it.
  const store = openStore(config, log);
  const live = new LiveHub({ store });
  store.attach(registry, (segment) => live.publishSegment(segment));
  live.attach(registry);
  if (!isLoopback(config.host) && !config.dashboardToken) {
    log.warn(
      `!!! listening on ${config.host} without DASHBOARD_TOKEN: anyone who reaches this address ` +
        "can read and delete every transcript. Set DASHBOARD_TOKEN in .env, or HOST=127.0.0.1. !!!",
    );
  }
  registry.listen((event) => {
    if (event.type === "call-started") {
      const { from, to } = event.call;
      const parties = from && to ? `, ${from} → ${to}` : "";
      log.info(`call ${event.call.callSid} started (${callKind(event.call.direction)}${parties})`);
    } else if (event.type === "call-ended") {
      log.info(`call ${event.call.callSid} ended (${event.reason})`);
    } else if (event.type === "call-error") {
      log.error(`call ${event.call.callSid}: ${event.message}`);
    }
  });

  let boundPort = config.port;
  const statuses = new CallStatusBook(log);
  const app = createApp({
    statuses,
    inbound: { greeting: config.inboundGreeting, forwardTo: config.inboundForwardTo },
    registry,
    log,
    publicBase: () => publicBase(config, boundPort),
    authToken: config.skipSignature ? undefined : config.twilioAuthToken,
    bridges,
    transcripts: { store, live, dashboardToken: config.dashboardToken },
    streamIdleMs: config.streamIdleSeconds * 1000,
  });
  const ready = Promise.withResolvers<void>();
  const server = Deno.serve({
    hostname: config.host,
    port: config.port,
    onListen: ({ port }) => {
      boundPort = port;
      ready.resolve();
    },
    onError: (error) => {
      log.error(`request failed: ${(error as Error).message}`);
      return new Response("internal error", { status: 500 });
    },
  }, app.fetch);
  await ready.promise;
  const host = config.host.includes(":") ? `[${config.host}]` : config.host;
  return {
    url: `http://${host}:${boundPort}`,
    publicUrl: publicBase(config, boundPort),
    registry,
    store,
    live,
    statuses,
    bridges,
    async shutdown() {
      await bridges.closeAll();
      await registry.endAll("server shutting down");
      // Open event streams would keep the server from shutting down.
      live.close();
      await server.shutdown();
      store.close();
    },
  };
}

/** Opens the transcript store under DATA_DIR; calls a killed server left open become `interrupted`. */
function openStore(config: Config, log: Logger): TranscriptStore {
  const path = dbPath(config.dataDir);
  let store: TranscriptStore;
  try {
    store = new TranscriptStore(path);
  } catch (error) {
    throw new UserError(
      `cannot open the transcript database ${path}: ${(error as Error).message}. ` +
        "Set DATA_DIR to a folder this user can write.",
    );
  }
  const interrupted = store.markInterrupted();
  if (interrupted) {
    log.warn(`${interrupted} call(s) from an earlier run were cut off; kept as interrupted`);
  }
  log.info(`transcripts are kept in ${path}`);
  return store;
}
