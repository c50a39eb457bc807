/**
 * `deno task call`: places a call.
 *
 * `--simulate` runs the whole call offline through the Twilio simulator:
 * the server starts in-process (or `--server <url>` uses a running one),
 * the callee's WAV plays on the inbound track, the caller's WAV (sent by the
 * server's laptop leg) on the outbound track, and the transcript is printed.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { readWavFile, toCallAudio } from "../lib/audio/wav.ts";
import { createPrinter } from "../lib/console/printer.ts";
import { loadConfig } from "./config.ts";
import { stderrLogger } from "../lib/log.ts";
import { startServer } from "./start_server.ts";
import {
  makeSid,
  simulateCall,
  SimulatorError,
  WebhookRefusedError,
} from "../lib/sim/twilio_sim.ts";
import { UserError } from "../lib/user_error.ts";
import { onCtrlC } from "../lib/console/ctrl_c.ts";
import { createEngine } from "./engine.ts";
import { placeCall } from "./place_call.ts";
import { parseRoomSettings, type RoomSettings } from "../lib/laptop_audio/room.ts";

const USAGE = `Usage:
  deno task call <+15551234567> [--from <+1…>] [--server <url>] [--keyterms "a,b"]
  deno task call --simulate --callee-audio <wav> [--caller-audio <wav>]
                 [--format text|jsonl] [--partials] [--fast] [--server <url>]
                 [--transcriber local|assemblyai|hybrid] [--keyterms "a,b"] [--room [settings]]

  <number>          call it through Twilio (credentials in .env; \`deno task serve\` must be
                    running and reachable by Twilio: PUBLIC_URL or NGROK_AUTHTOKEN); the
                    server prints the transcript; Ctrl-C hangs up
  --from            caller ID (default TWILIO_PHONE_NUMBER)
  --keyterms        this call's key terms, comma-separated, on top of KEYTERMS (both engines)
  --simulate        run the call through the built-in Twilio simulator (no account needed)
  --callee-audio    what the phone party says (any WAV; played on the inbound track)
  --caller-audio    what the laptop side says (sent by the server's laptop leg,
                    heard on the outbound track); in-process server only
  --format          text (default): "Inbound: ... [start - end]"; jsonl: one JSON event per line
  --partials        with --format jsonl, include partial results
  --fast            run faster than real time
  --server <url>    use a running server (deno task serve) instead of starting one;
                    its console prints the transcript
  --transcriber     in-process server's engine: local (default without a key),
                    assemblyai (default when ASSEMBLYAI_API_KEY is set) or hybrid
  --room [settings] put the laptop leg in a simulated room: its microphone hears the caller
                    audio plus the speaker's (the callee's) echo; the echo canceller removes
                    it (AEC=off to hear it in the Outbound transcript). Settings, any of
                    delay=150 (ms), rt60=0.3 (s), gain=-3 (dB), noise=-60 (dBFS),
                    drift=50 (ppm), seed=1; e.g. --room delay=300,gain=0`;

/** Runs `deno task call` with `args`; returns the exit code. */
export async function callCommand(args: string[]): Promise<number> {
  const log = stderrLogger();
  let values;
  let positionals;
  try {
    ({ values, positionals } = parseArgs({
      // A bare --room (no settings after it) is the default room.
      args: args.map((a, i) =>
        a === "--room" && (args[i + 1] ?? "--").startsWith("--") ? "--room=default" : a
      ),
      options: {
        simulate: { type: "boolean", default: false },
        "callee-audio": { type: "string" },
        "caller-audio": { type: "string" },
        format: { type: "string", default: "text" },
        partials: { type: "boolean", default: false },
        fast: { type: "boolean", default: false },
        server: { type: "string" },
        from: { type: "string" },
        transcriber: { type: "string" },
        keyterms: { type: "string" },
        room: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: true,
    }));
  } catch (error) {
    log.error(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.simulate) {
    return await placeCall({
      positionals,
      from: values.from,
      server: values.server,
      keyterms: values.keyterms,
      env: Deno.env.toObject(),
      log,
    });
  }
  if (values.format !== "text" && values.format !== "jsonl") {
    log.error(`--format must be text or jsonl, got "${values.format}"`);
    return 2;
  }
  const calleePath = values["callee-audio"];
  if (!calleePath) {
    log.error(`--callee-audio <wav> is required with --simulate\n\n${USAGE}`);
    return 2;
  }
  if (values.server && values["caller-audio"]) {
    log.error(
      "--caller-audio only works with the in-process server; set AUDIO_INPUT=<wav> on the running server instead",
    );
    return 2;
  }
  let room: RoomSettings | undefined;
  if (values.room !== undefined) {
    if (values.server) {
      log.error("--room only works with the in-process server (without --server)");
      return 2;
    }
    try {
      room = parseRoomSettings(values.room);
    } catch (error) {
      log.error(`--room: ${(error as Error).message}`);
      return 2;
    }
  }
  const calleeAudio = toCallAudio(await readWavFile(calleePath));
  // The call's key terms ride on its TwiML request, as a real call's do (see placeCall).
  const twimlPath = values.keyterms
    ? `/twiml/outbound?keyterms=${encodeURIComponent(values.keyterms)}`
    : undefined;

  if (values.server) {
    const serverUrl = values.server.replace(/\/$/, "");
    const authToken = loadConfig().twilioAuthToken;
    await checkServerAnswers(serverUrl);
    const callSid = makeSid("CA");
    log.info(`simulated call ${callSid}: follow it at ${serverUrl}/calls/${callSid}`);
    const hangUp = hangUpOnCtrlC(log);
    try {
      await simulateCall({
        serverUrl,
        calleeAudio,
        authToken,
        callSid,
        fast: values.fast,
        twimlPath,
        signal: hangUp.signal,
      });
    } catch (error) {
      if (error instanceof WebhookRefusedError && error.status === 403) {
        throw new UserError(
          `the server at ${serverUrl} refused the simulator's signature (403): both sides need the ` +
            "same TWILIO_AUTH_TOKEN (set it in the .env both `deno task serve` and `deno task call` " +
            `read${authToken ? "" : "; it is not set here"}), and --server must be the URL the ` +
            "server checks signatures against (its PUBLIC_URL or tunnel URL, when it has one)",
        );
      }
      if (error instanceof WebhookRefusedError) {
        throw new UserError(
          `the server at ${serverUrl} did not take the call: ${
            error.message.replace(/^simulator: /, "")
          }`,
        );
      }
      if (error instanceof SimulatorError) {
        // E.g. the TwiML's stream URL is the server's PUBLIC_URL, which this machine cannot reach.
        throw new UserError(
          `the simulated call to ${serverUrl} failed: ${
            error.message.replace(/^simulator: /, "")
          }. Check that the server's PUBLIC_URL reaches it from here`,
        );
      }
      throw error;
    } finally {
      hangUp.dispose();
    }
    log.info(`simulated call ${callSid} ended; the server's console has the transcript`);
    return hangUp.signal.aborted ? 130 : 0;
  }

  // In-process: a random token per run, so even the offline demo checks signatures.
  const authToken = makeSid("").slice(0, 32);
  const config = loadConfig(
    {
      ...Deno.env.toObject(),
      HOST: "127.0.0.1",
      PORT: "0",
      PUBLIC_URL: "",
      // No tunnel is opened for this in-process server: it is not reachable from outside.
      NGROK_AUTHTOKEN: "",
      INSTANCE_URL: "",
      TWILIO_AUTH_TOKEN: authToken,
      TWILIO_SKIP_SIGNATURE: "",
    },
    {
      audioInput: values["caller-audio"] ?? "none",
      transcriber: values.transcriber,
      // Faster than real time, a clock-paced caller file would fall behind the call: send it ahead.
      audioInputUnpaced: values.fast,
      room,
    },
  );
  const quietLog = stderrLogger({ quiet: values.format === "jsonl" });
  const engine = await createEngine(config, quietLog);
  const server = await startServer(config, engine, quietLog);
  server.registry.pipeline.publish(
    createPrinter({ format: values.format, partials: values.partials }),
  );
  const callSid = makeSid("CA");
  const ended = server.registry.whenEnded(callSid);
  const hangUp = hangUpOnCtrlC(quietLog);
  try {
    await simulateCall({
      serverUrl: server.url,
      calleeAudio,
      authToken,
      callSid,
      fast: values.fast,
      twimlPath,
      // Fast mode goes as fast as the engine decodes, no faster: no audio is dropped.
      caughtUp: () => engine.whenCaughtUp(),
      signal: hangUp.signal,
    });
    await ended;
  } finally {
    await server.shutdown();
    await engine.dispose();
    hangUp.dispose();
  }
  quietLog.info(
    `the call is kept in ${config.dataDir}: to see it in the dashboard, run \`deno task serve\` ` +
      `and open /calls/${callSid} at the URL it prints (http://127.0.0.1:8080/calls/${callSid} ` +
      "by default)",
  );
  return hangUp.signal.aborted ? 130 : 0;
}

/**
 * Ctrl-C hangs up the simulated call (its last words are still transcribed
 * and stored, the call ends completed); a second Ctrl-C leaves at once.
 */
function hangUpOnCtrlC(log: ReturnType<typeof stderrLogger>) {
  const controller = new AbortController();
  const dispose = onCtrlC({
    first: () => {
      log.info("Ctrl-C: hanging up (Ctrl-C again to leave at once)");
      controller.abort();
    },
    again: () => {
      log.warn("second Ctrl-C: leaving without ending the call");
      Deno.exit(130);
    },
  });
  return { signal: controller.signal, dispose };
}

/** Fails with one line when nothing answers at `serverUrl` (before any audio is read or sent). */
async function checkServerAnswers(serverUrl: string): Promise<void> {
  try {
    const response = await fetch(`${serverUrl}/healthz`, { signal: AbortSignal.timeout(5000) });
    await response.body?.cancel();
  } catch (error) {
    throw new UserError(
      `no callscribe server answered at ${serverUrl} (${(error as Error).message}): start it ` +
        "first with `deno task serve`, or pass the --server URL it prints",
    );
  }
}
