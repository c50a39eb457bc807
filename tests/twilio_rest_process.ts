/**
 * Twilio's side as a process of its own, for end-to-end tests: the simulated
 * REST API (`tests/fakes/twilio_rest.ts`), which reaches our server over the
 * network the way Twilio does (here through `HTTPS_PROXY` and `DENO_CERT`,
 * set by the test). Prints `listening on <url>` once it listens, then one
 * JSON line per call when it is over; ends on SIGTERM.
 *
 * Usage: `deno run -A tests/twilio_rest_process.ts <account-sid> <callee-audio.ulaw> <tail-ms>`,
 * with the auth token in `TWILIO_AUTH_TOKEN` (never on a command line).
 */
import { startTwilioRestSim } from "./fakes/twilio_rest.ts";
import { stderrLogger } from "../lib/log.ts";

const [accountSid, calleeAudioPath, tailMs] = Deno.args;
const sim = await startTwilioRestSim({
  accountSid,
  authToken: Deno.env.get("TWILIO_AUTH_TOKEN")!,
  calleeAudio: await Deno.readFile(calleeAudioPath),
  fast: true,
  ringMs: 100,
  // The far party stays on this long after its audio: the laptop side speaks in real time.
  tailMs: Number(tailMs),
  log: stderrLogger(),
});
console.log(`listening on ${sim.url}`);
const reported = new Set<string>();
const report = setInterval(() => {
  for (const call of sim.calls.values()) {
    if (reported.has(call.sid)) continue;
    reported.add(call.sid);
    call.done.then((result) =>
      console.log(JSON.stringify({
        sid: call.sid,
        status: call.status,
        error: call.error,
        statusCallbacks: call.statusCallbacks,
        framesSent: result?.framesSent,
        streamCallbacks: result?.streamCallbacks,
      }))
    );
  }
}, 50);
Deno.addSignalListener("SIGTERM", async () => {
  clearInterval(report);
  await sim.close();
  Deno.exit(0);
});
