/**
 * A real call through Twilio, for `deno task call <to>`: checks the number
 * and credentials (no network before that), finds the server's public URL,
 * creates the call with the `twilio` client (Twilio asks the server's
 * `/twiml/outbound` for the TwiML once the call has its SID, so its stream
 * URLs are that call's own; plus status callbacks), then follows it by
 * polling until it ends. Ctrl-C hangs up through the REST API.
 *
 * @module
 */
import { FINAL_CALL_STATUSES, statusWord } from "../lib/twilio/call_status.ts";
import { loadConfig, twilioCredentials } from "./config.ts";
import { E164 } from "../lib/parse.ts";
import { localUrl } from "../lib/server/local_url.ts";
import { readDashboardToken } from "../lib/server/dashboard_token.ts";
import type { Logger } from "../lib/log.ts";
import {
  createOutboundCall,
  describeTwilioError,
  TWILIO_API,
  twilioClient,
  unreachablePublicUrl,
} from "../lib/twilio/rest.ts";
import { UserError } from "../lib/user_error.ts";
import { onCtrlC } from "../lib/console/ctrl_c.ts";

/** Options of {@link placeCall}. */
export interface PlaceCallOptions {
  /** The positional arguments: exactly one, the number to call. */
  positionals: string[];
  /** `--from`, overriding TWILIO_PHONE_NUMBER. */
  from?: string;
  /** `--server`: the running server to ask for its public URL. */
  server?: string;
  /** `--keyterms`: the call's key terms, sent on its TwiML request (comma-separated). */
  keyterms?: string;
  env: Record<string, string | undefined>;
  log: Logger;
  /** Where the Call SID line goes (stdout by default). */
  write?: (line: string) => void;
  /** How often the call's status is polled once answered, ms (default 1000); 4× as often before. */
  pollMs?: number;
}

/** Places the call and follows it; returns the exit code (0 completed, 1 failed, 2 setup). */
export async function placeCall(options: PlaceCallOptions): Promise<number> {
  const { log, env } = options;
  const write = options.write ?? ((line: string) => console.log(line));

  // Everything that can be wrong locally is reported before any network call.
  const problems: string[] = [];
  const [to, ...extra] = options.positionals;
  if (!to) {
    problems.push("give the number to call: deno task call +15551234567");
  } else if (!E164.test(to)) {
    problems.push(
      `the number to call must be in E.164 form such as +15551234567 (plus sign, country ` +
        `code, no spaces or dashes), got "${to}"`,
    );
  }
  if (extra.length) problems.push(`one number at a time; unexpected: ${extra.join(" ")}`);
  let credentials;
  let config;
  try {
    credentials = twilioCredentials(env, options.from);
  } catch (error) {
    if (!(error instanceof UserError)) throw error;
    problems.push(...error.message.split("\n"));
  }
  try {
    config = loadConfig(env);
  } catch (error) {
    if (!(error instanceof UserError)) throw error;
    problems.push(error.message);
  }
  if (problems.length || !credentials || !config || !to) {
    for (const problem of problems) log.error(problem);
    return 2;
  }
  const apiUrl = credentials.apiUrl ?? TWILIO_API;

  // The public URL: PUBLIC_URL, or ask the running server (it may have opened a tunnel).
  let publicUrl = options.server ? undefined : config.publicUrl;
  if (!publicUrl) {
    const server = (options.server ?? localUrl(config.host, config.port, { reachable: true }))
      .replace(/\/$/, "");
    try {
      // The server's API needs its dashboard token: ours from .env, or the one it generated in
      // DATA_DIR (this command runs beside it). Only ever sent to the server asked.
      const token = config.dashboardToken ?? await readDashboardToken(config.dataDir);
      const response = await fetch(`${server}/api/public-url`, {
        signal: AbortSignal.timeout(5000),
        headers: token ? { authorization: `Bearer ${token}` } : {},
      });
      if (response.status === 401) {
        await response.body?.cancel();
        log.error(
          `the server at ${server} needs its dashboard token to tell its public URL: set ` +
            "DASHBOARD_TOKEN in .env to the server's, or run this command with the server's DATA_DIR " +
            "(where it keeps a generated token), or set PUBLIC_URL",
        );
        return 2;
      }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      publicUrl = String((await response.json()).publicUrl);
    } catch (error) {
      log.error(
        `no callscribe server answered at ${server} (${(error as Error).message}): start it ` +
          "first with `deno task serve`, or pass --server <url>, or set PUBLIC_URL",
      );
      return 2;
    }
  }
  const unreachable = unreachablePublicUrl(publicUrl, credentials);
  if (unreachable) {
    log.error(unreachable);
    return 2;
  }

  const client = twilioClient(credentials);
  let hangUpRequested = false;
  let hangingUp: Promise<void> | null = null;
  let wake = () => {};
  let sid: string | undefined;
  let exitCode: number | undefined;
  const hangUp = () => {
    if (!sid || hangingUp) return;
    log.info(`hanging up ${sid}`);
    hangingUp = client.calls(sid).update({ status: "completed" }).then(
      () => {},
      (error) => {
        log.error(`could not hang up: ${describeTwilioError(error, apiUrl)}`);
        exitCode = 1;
      },
    );
    wake();
  };
  const stopListening = onCtrlC({
    first: () => {
      hangUpRequested = true;
      hangUp();
    },
    again: () => {
      log.warn("second Ctrl-C: leaving without waiting for the call to end");
      Deno.exit(130);
    },
  });
  try {
    let call;
    try {
      call = await createOutboundCall(client, credentials, {
        to,
        publicUrl,
        keyterms: options.keyterms,
      });
    } catch (error) {
      log.error(describeTwilioError(error, apiUrl));
      return 1;
    }
    sid = call.sid;
    write(`Call SID: ${sid}`);
    log.info(`calling ${to} from ${credentials.from}; Ctrl-C hangs up`);
    if (hangUpRequested) hangUp();

    let status = call.status as string;
    log.info(`call ${sid} ${statusWord(status)}`);
    while (!FINAL_CALL_STATUSES.has(status)) {
      await new Promise<void>((resolve) => {
        // Ringing is short and "answered" is news the caller waits for: look more often until then.
        const pollMs = (options.pollMs ?? 1000) / (status === "in-progress" ? 1 : 4);
        const timer = setTimeout(resolve, pollMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      if (hangingUp) await hangingUp;
      if (exitCode !== undefined) return exitCode;
      try {
        call = await client.calls(sid).fetch();
      } catch (error) {
        log.error(describeTwilioError(error, apiUrl));
        return 1;
      }
      if (call.status !== status) {
        status = call.status;
        const duration = FINAL_CALL_STATUSES.has(status) && call.duration
          ? ` after ${call.duration} s`
          : "";
        log.info(`call ${sid} ${statusWord(status)}${duration}`);
      }
    }
    if (status === "completed" || (status === "canceled" && hangUpRequested)) return 0;
    log.error(`the call ended ${status}`);
    return 1;
  } finally {
    stopListening();
  }
}
