/**
 * The simulator as Twilio's REST API, for `make_call.ts` and tests: the real
 * `twilio` client is pointed at it (`TWILIO_API_URL`), so the code path is
 * the one a real call takes.
 *
 * It serves `POST /2010-04-01/Accounts/{AccountSid}/Calls.json` (basic auth,
 * Twilio's error JSON for bad credentials or numbers) and
 * `GET`/`POST …/Calls/{CallSid}.json` (fetch; `Status=completed` hangs up),
 * then runs each call the way Twilio does: status callbacks in order
 * (initiated, ringing, answered, completed with `CallDuration`), the `Url`
 * webhook or the given `Twiml`, and both Media Streams — every request to
 * our server signed with the account's auth token. It also places inbound
 * calls to a number's Voice webhook (`/twiml/inbound`).
 *
 * @module
 */
import { E164 } from "../../lib/parse.ts";
import type { Logger } from "../../lib/log.ts";
import { errorDocs } from "../../lib/twilio/rest.ts";
import {
  makeSid,
  postSigned,
  simulateCall,
  type SimulatedCallResult,
} from "../../lib/sim/twilio_sim.ts";
import { sleep } from "../../lib/async/sleep.ts";

/** Options of the simulated REST API. */
export interface TwilioRestSimOptions {
  accountSid: string;
  authToken: string;
  /** What the far party says on every call (µ-law 8 kHz), on the inbound track. */
  calleeAudio: Uint8Array;
  /** Silence after the callee's audio before the far party hangs up, ms. */
  tailMs?: number;
  /** Run calls faster than real time. */
  fast?: boolean;
  /** How long calls ring before they are answered, ms (default 200). */
  ringMs?: number;
  /** A trial account: only these numbers may be called (error 21219 otherwise). */
  verifiedNumbers?: string[];
  log?: Logger;
}

/** One call as the simulator tracks it. */
export interface SimCall {
  sid: string;
  to: string;
  from: string;
  direction: "outbound-api" | "inbound";
  /** Twilio's call status: queued, initiated, ringing, in-progress, completed, canceled. */
  status: string;
  dateCreated: Date;
  startTime?: Date;
  endTime?: Date;
  /** Seconds of the call, once it ended. */
  duration?: number;
  /** Status callbacks posted: the event, Twilio's CallStatus and our server's HTTP status. */
  statusCallbacks: Array<{ event: string; callStatus: string; status: number }>;
  /** True when a REST `Status=completed`/`canceled` ended the call. */
  hungUpByApi: boolean;
  /** Why the call failed on our server's side (webhook or stream refused), if it did. */
  error?: string;
  /** Settles when the call is over (after its last status callback). */
  done: Promise<SimulatedCallResult | null>;
  hangUp: AbortController;
}

/** A request the simulated API received (never with credentials). */
export interface SimRequest {
  method: string;
  path: string;
  params: Record<string, string | string[]>;
  status: number;
}

/** The running simulated API. */
export interface TwilioRestSim {
  /** Base URL to set as `TWILIO_API_URL`. */
  url: string;
  calls: Map<string, SimCall>;
  requests: SimRequest[];
  /** Rings a Twilio number whose Voice webhook is `webhookUrl` (e.g. `…/twiml/inbound`). */
  inbound(options: { webhookUrl: string; from: string; to: string }): SimCall;
  /** Hangs up every call, waits for them, and stops listening. */
  close(): Promise<void>;
}

const API_VERSION = "2010-04-01";

function twilioError(code: number, message: string, status: number): Response {
  return Response.json({ code, message, more_info: errorDocs(code), status }, { status });
}

/** Starts the simulated REST API on a free local port. */
export async function startTwilioRestSim(options: TwilioRestSimOptions): Promise<TwilioRestSim> {
  const calls = new Map<string, SimCall>();
  const requests: SimRequest[] = [];
  const ringMs = options.ringMs ?? 200;

  function resource(call: SimCall) {
    const uri = `/${API_VERSION}/Accounts/${options.accountSid}/Calls/${call.sid}.json`;
    return {
      sid: call.sid,
      account_sid: options.accountSid,
      api_version: API_VERSION,
      to: call.to,
      to_formatted: call.to,
      from: call.from,
      from_formatted: call.from,
      direction: call.direction,
      status: call.status,
      date_created: call.dateCreated.toUTCString(),
      date_updated: new Date().toUTCString(),
      start_time: call.startTime?.toUTCString() ?? null,
      end_time: call.endTime?.toUTCString() ?? null,
      duration: call.duration === undefined ? null : String(call.duration),
      price: null,
      price_unit: "USD",
      answered_by: null,
      caller_name: null,
      forwarded_from: null,
      group_sid: null,
      parent_call_sid: null,
      phone_number_sid: null,
      queue_time: "0",
      trunk_sid: null,
      uri,
      subresource_uris: {
        notifications: uri.replace(".json", "/Notifications.json"),
        recordings: uri.replace(".json", "/Recordings.json"),
        streams: uri.replace(".json", "/Streams.json"),
      },
    };
  }

  /** Runs a call from ringing to its final status callback. */
  async function run(
    call: SimCall,
    how: {
      webhookUrl?: string;
      twiml?: string;
      statusCallback?: string;
      events: Set<string>;
    },
  ): Promise<SimulatedCallResult | null> {
    let sequence = 0;
    const callback = async (event: string) => {
      if (!how.statusCallback || !how.events.has(event)) return;
      const params: Record<string, string> = {
        AccountSid: options.accountSid,
        ApiVersion: API_VERSION,
        CallSid: call.sid,
        CallStatus: call.status,
        Direction: call.direction,
        From: call.from,
        Caller: call.from,
        To: call.to,
        Called: call.to,
        CallbackSource: "call-progress-events",
        SequenceNumber: String(sequence++),
        Timestamp: new Date().toUTCString(),
      };
      if (call.duration !== undefined) {
        params.CallDuration = String(call.duration);
        params.Duration = String(Math.ceil(call.duration / 60));
      }
      try {
        const response = await postSigned(how.statusCallback, params, options.authToken);
        await response.body?.cancel();
        call.statusCallbacks.push({ event, callStatus: call.status, status: response.status });
      } catch (error) {
        call.statusCallbacks.push({ event, callStatus: call.status, status: 0 });
        options.log?.warn(`status callback ${event} failed: ${(error as Error).message}`);
      }
    };
    const signal = call.hangUp.signal;
    let result: SimulatedCallResult | null = null;
    try {
      call.status = "initiated";
      await callback("initiated");
      if (signal.aborted) return null;
      call.status = "ringing";
      await callback("ringing");
      await Promise.race([
        sleep(ringMs),
        new Promise((resolve) => signal.addEventListener("abort", resolve)),
      ]);
      if (signal.aborted) return null;
      call.status = "in-progress";
      call.startTime = new Date();
      await callback("answered");
      const url = how.webhookUrl ? new URL(how.webhookUrl) : undefined;
      result = await simulateCall({
        serverUrl: url ? url.origin : "http://twiml.invalid",
        twimlPath: url ? url.pathname + url.search : undefined,
        twiml: how.twiml,
        direction: call.direction,
        calleeAudio: options.calleeAudio,
        authToken: options.authToken,
        accountSid: options.accountSid,
        callSid: call.sid,
        from: call.from,
        to: call.to,
        fast: options.fast,
        tailMs: options.tailMs,
        signal,
      });
      return result;
    } catch (error) {
      // Twilio says "an application error has occurred" and hangs up.
      call.error = (error as Error).message;
      options.log?.warn(`call ${call.sid}: ${call.error}`);
      return null;
    } finally {
      call.status = call.startTime ? "completed" : "canceled";
      call.endTime = new Date();
      call.duration = result
        ? Math.ceil(result.framesSent * 20 / 1000)
        : call.startTime
        ? Math.round((call.endTime.getTime() - call.startTime.getTime()) / 1000)
        : 0;
      await callback("completed");
    }
  }

  function newCall(to: string, from: string, direction: SimCall["direction"]): SimCall {
    const call: SimCall = {
      sid: makeSid("CA"),
      to,
      from,
      direction,
      status: "queued",
      dateCreated: new Date(),
      statusCallbacks: [],
      hungUpByApi: false,
      done: Promise.resolve(null),
      hangUp: new AbortController(),
    };
    calls.set(call.sid, call);
    return call;
  }

  function authorized(request: Request, pathSid: string): boolean {
    const header = request.headers.get("authorization") ?? "";
    if (!header.startsWith("Basic ")) return false;
    let decoded: string;
    try {
      decoded = atob(header.slice(6));
    } catch {
      return false;
    }
    const colon = decoded.indexOf(":");
    const user = decoded.slice(0, colon);
    const password = decoded.slice(colon + 1);
    return colon > 0 && user === options.accountSid && password === options.authToken &&
      pathSid === options.accountSid;
  }

  function handle(request: Request, body: string): Response {
    const url = new URL(request.url);
    const match = url.pathname.match(
      /^\/2010-04-01\/Accounts\/([^/]+)\/Calls(?:\/([^/]+))?\.json$/,
    );
    if (!match) {
      return twilioError(20404, `The requested resource ${url.pathname} was not found`, 404);
    }
    if (!request.headers.get("authorization")) {
      return twilioError(20003, "Authentication Error - No credentials provided", 401);
    }
    if (!authorized(request, match[1])) {
      return twilioError(20003, "Authentication Error - invalid username", 401);
    }
    const [, , callSid] = match;
    const form = new URLSearchParams(body);
    if (!callSid) {
      if (request.method !== "POST") return twilioError(20004, "Method not allowed", 405);
      return create(form);
    }
    const call = calls.get(callSid);
    if (!call) {
      return twilioError(20404, `The requested resource ${url.pathname} was not found`, 404);
    }
    if (request.method === "POST") {
      const status = form.get("Status");
      if (status !== null && status !== "completed" && status !== "canceled") {
        return twilioError(21218, `Invalid value '${status}' for Status`, 400);
      }
      if (status && !call.endTime) {
        call.hungUpByApi = true;
        call.hangUp.abort();
        call.status = call.startTime ? "completed" : "canceled";
      }
    } else if (request.method !== "GET") {
      return twilioError(20004, "Method not allowed", 405);
    }
    return Response.json(resource(call));
  }

  function create(form: URLSearchParams): Response {
    const to = form.get("To");
    const from = form.get("From");
    if (!to) return twilioError(21201, "No 'To' number is specified", 400);
    if (!E164.test(to)) return twilioError(21211, `Invalid 'To' Phone Number: ${to}`, 400);
    if (!from) return twilioError(21213, "No 'From' number is specified", 400);
    if (!E164.test(from)) {
      return twilioError(21212, `Invalid 'From' Phone Number: ${from}`, 400);
    }
    const webhookUrl = form.get("Url") ?? undefined;
    const twiml = form.get("Twiml") ?? undefined;
    if (!webhookUrl && !twiml) {
      return twilioError(21205, "Either Url, Twiml or ApplicationSid is required", 400);
    }
    if (options.verifiedNumbers && !options.verifiedNumbers.includes(to)) {
      return twilioError(
        21219,
        `The number ${to} is unverified. Trial accounts may only make calls to verified numbers.`,
        400,
      );
    }
    const statusCallback = form.get("StatusCallback") ?? undefined;
    const events = new Set(form.getAll("StatusCallbackEvent").flatMap((e) => e.split(" ")));
    if (events.size === 0) events.add("completed");
    const call = newCall(to, from, "outbound-api");
    // Twilio answers with the queued call, then starts dialing.
    const queued = resource(call);
    call.done = run(call, { webhookUrl, twiml, statusCallback, events });
    return Response.json(queued, { status: 201 });
  }

  const ready = Promise.withResolvers<number>();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: ({ port }) => ready.resolve(port),
  }, async (request) => {
    const url = new URL(request.url);
    const logged: SimRequest = {
      method: request.method,
      path: url.pathname,
      params: {},
      status: 0,
    };
    const body = request.method === "POST" ? await request.text() : "";
    if (request.method === "POST") {
      for (const [key, value] of new URLSearchParams(body)) {
        const previous = logged.params[key];
        logged.params[key] = previous === undefined
          ? value
          : [...(Array.isArray(previous) ? previous : [previous]), value];
      }
    }
    requests.push(logged);
    const response = handle(request, body);
    logged.status = response.status;
    return response;
  });
  const port = await ready.promise;

  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    requests,
    inbound({ webhookUrl, from, to }) {
      const call = newCall(to, from, "inbound");
      call.done = run(call, { webhookUrl, events: new Set() });
      return call;
    },
    async close() {
      for (const call of calls.values()) call.hangUp.abort();
      await Promise.all([...calls.values()].map((c) => c.done));
      await server.shutdown();
    },
  };
}
