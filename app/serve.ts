/**
 * `deno task serve`: the callscribe server. Listens on HOST:PORT (default
 * 127.0.0.1:8080), transcribes every call Twilio streams to it and prints
 * the transcript.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { createPrinter } from "../lib/console/printer.ts";
import { loadConfig } from "./config.ts";
import { stderrLogger } from "../lib/log.ts";
import { checkPortFree, serverSettings } from "./server_settings.ts";
import { startServer } from "./start_server.ts";
import { openPublicUrl } from "../lib/server/tunnel.ts";
import { createEngine } from "./engine.ts";
import { listDevices } from "../lib/laptop_audio/devices.ts";
import { describeFfmpeg, findFfmpeg } from "../lib/laptop_audio/find_ffmpeg.ts";
import { watchKeys } from "../lib/console/keys.ts";

const USAGE =
  `Usage: deno task serve [--host 127.0.0.1] [--port 8080] [--format text|jsonl] [--partials]
                        [--transcriber local|assemblyai|hybrid]
       deno task serve --list-devices

Starts the server Twilio streams calls to. Configuration comes from .env
(see .env.example); flags override it.

  --list-devices    print the audio devices ffmpeg sees (for AUDIO_INPUT / AUDIO_OUTPUT)
  --transcriber     local (sherpa-onnx, default without a key), assemblyai (the default
                    when ASSEMBLYAI_API_KEY is set) or hybrid (both); overrides TRANSCRIBER

While a call is bridged to the laptop, press c to clear the audio queued for it.`;

/** Runs `deno task serve` with `args`; returns the exit code. */
export async function serveCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      host: { type: "string" },
      port: { type: "string" },
      format: { type: "string", default: "text" },
      partials: { type: "boolean", default: false },
      transcriber: { type: "string" },
      help: { type: "boolean", short: "h" },
      "list-devices": { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const log = stderrLogger();
  if (values["list-devices"]) {
    // Before the configuration is loaded: a wrong AUDIO_INPUT is what this list helps fix.
    const ffmpeg = await findFfmpeg(Deno.env.get("FFMPEG_PATH") || undefined);
    if (ffmpeg.path === undefined) {
      log.error(ffmpeg.why);
      return 1;
    }
    log.info(`listing devices with ${describeFfmpeg(ffmpeg)}`);
    console.log(await listDevices(ffmpeg.path));
    return 0;
  }
  if (values.format !== "text" && values.format !== "jsonl") {
    log.error(`--format must be text or jsonl, got "${values.format}"`);
    return 2;
  }
  const config = loadConfig(Deno.env.toObject(), {
    host: values.host,
    port: values.port,
    transcriber: values.transcriber,
    server: true,
  });
  // Checked before a model is found or downloaded, or the database opened.
  const settings = serverSettings(config);
  checkPortFree(config.host, config.port);
  const engine = await createEngine(config, log);
  const server = await startServer(config, engine, log, settings);
  server.registry.pipeline.publish(
    createPrinter({ format: values.format, partials: values.partials }),
  );
  const endpoint = config.localOnly
    ? { url: server.url, source: "local" as const, close: () => Promise.resolve() }
    : await openPublicUrl({
      publicUrl: config.publicUrl,
      ngrokAuthtoken: config.ngrokAuthtoken,
      localUrl: server.url,
      log,
    });
  // Stream URLs and signature checks follow the tunnel's URL from here on.
  if (endpoint.source === "ngrok") server.usePublicUrl(endpoint.url);
  // Listening before the lines that say the server is up: a stop sent as soon as they appear (a
  // supervisor, a test) still shuts down cleanly, releasing the instance lock.
  const stop = Promise.withResolvers<string>();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => stop.resolve(signal));
  }
  if (config.localOnly) {
    log.info(
      "no TWILIO_AUTH_TOKEN: local mode, on this machine only; Twilio cannot reach this server " +
        "and its calls are refused. To take real calls set TWILIO_AUTH_TOKEN and NGROK_AUTHTOKEN " +
        "(or PUBLIC_URL) in .env",
    );
    log.info(`listening on ${server.url} (local mode)`);
  } else {
    log.info(`listening on ${server.url} (Twilio reaches it as ${endpoint.url})`);
  }
  const loginLink = server.loginLink();
  if (!loginLink) {
    log.info(
      `dashboard: ${server.url}/ (open without a token: it listens on loopback only, with no ` +
        "tunnel and no PUBLIC_URL; set DASHBOARD_TOKEN to require one anyway)",
    );
  } else {
    // A ticket, not the token: it opens one browser session at its first use, then nothing.
    log.info(
      `dashboard: ${server.url}/ — login link (one use, within an hour): ${loginLink}` +
        (endpoint.source === "local" ? "" : ` — from another machine, on ${endpoint.url}`),
    );
  }

  const restoreTerminal = watchKeys({
    onClear: () => {
      if (!server.bridges.clear()) log.info("c: no call is bridged to the laptop");
    },
    onInterrupt: () => stop.resolve("SIGINT"),
  });
  const signal = await stop.promise;
  restoreTerminal();
  if (signal === "SIGTERM" && server.registry.activeCalls > 0 && config.drainTimeoutMs > 0) {
    // A load balancer's stop: take no new call, let the live ones finish (up to DRAIN_TIMEOUT).
    log.info(
      `SIGTERM: draining; ${server.registry.activeCalls} call(s) may finish within ${
        config.drainTimeoutMs / 1000
      } s`,
    );
    const left = await server.drain(config.drainTimeoutMs);
    log.info(`drained${left ? `; ${left} call(s) still live are ended now` : ""}`);
  }
  log.info(`${signal}: ending ${server.registry.activeCalls} call(s) and stopping`);
  await server.shutdown();
  await endpoint.close();
  await engine.dispose();
  return 0;
}
