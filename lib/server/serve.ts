/**
 * Starts the server on `Deno.serve`: used by `main.ts` and by the simulated
 * call command, which runs it in-process.
 *
 * @module
 */
import { toCallAudio } from "../audio/wav.ts";
import { readWavFile } from "../audio/wav.ts";
import { splitFrames } from "../audio/framing.ts";
import { CallRegistry } from "../call/registry.ts";
import { type Config, ConfigError, publicBase } from "../config.ts";
import type { Logger } from "../log.ts";
import type { TranscriberEngine } from "../transcribe/engine.ts";
import { createApp } from "./app.ts";

/** A running server. */
export interface RunningServer {
  /** Local address, e.g. `http://127.0.0.1:8080`. */
  url: string;
  /** Base URL Twilio uses (PUBLIC_URL or the local address). */
  publicUrl: string;
  registry: CallRegistry;
  /** Ends every call (flushing its finals), then stops listening. */
  shutdown(): Promise<void>;
}

/** Checks the configuration, then listens. */
export async function startServer(
  config: Config,
  engine: TranscriberEngine,
  log: Logger,
): Promise<RunningServer> {
  if (!config.twilioAuthToken && !config.skipSignature) {
    throw new ConfigError(
      "TWILIO_AUTH_TOKEN is not set, so requests cannot be checked as coming from Twilio. " +
        "Set it in .env (Twilio console, Account info), or set TWILIO_SKIP_SIGNATURE=1 " +
        "to accept unsigned requests on a trusted network.",
    );
  }
  if (config.skipSignature) {
    log.warn(
      "TWILIO_SKIP_SIGNATURE=1: Twilio signatures are NOT checked; anyone who reaches this server can stream to it",
    );
  }
  const audioFrames = config.audioInput
    ? splitFrames(toCallAudio(await readWavFile(config.audioInput)))
    : undefined;

  const registry = new CallRegistry(engine);
  registry.listen((event) => {
    if (event.type === "call-started") {
      log.info(`call ${event.call.callSid} started (${event.call.direction})`);
    } else if (event.type === "call-ended") {
      log.info(`call ${event.call.callSid} ended (${event.reason})`);
    } else if (event.type === "call-error") {
      log.error(`call ${event.call.callSid}: ${event.message}`);
    }
  });

  let boundPort = config.port;
  const app = createApp({
    registry,
    log,
    publicBase: () => publicBase(config, boundPort),
    authToken: config.skipSignature ? undefined : config.twilioAuthToken,
    audioFrames,
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
    async shutdown() {
      await registry.endAll("server shutting down");
      await server.shutdown();
    },
  };
}
