/**
 * The HTTP routes, as a Hono app made of route groups, each with its own
 * middleware ({@link RouteGroup}); every request first passes the Host check
 * (DNS rebinding) and the body limit:
 *
 * - `twilio`: TwiML webhooks and status callbacks: the form is parsed and its
 *   `X-Twilio-Signature` checked against the public URL (never the Host
 *   header, which tunnels rewrite) before any handler runs.
 * - `streams`: the two Media Stream WebSockets: a signed upgrade, then the
 *   per-call capability in the path.
 * - `dashboard`: the dashboard, every `/api` route, live events, exports,
 *   recordings and webhook admin: security headers, the cross-site check and
 *   the dashboard credential ({@link DashboardAuth}).
 * - `public`: `/healthz`, the login form and the static files, with the
 *   security headers and cross-site check but no credential.
 *
 * A route outside every group is found by `routesInNoGroup` (and a test).
 *
 * @module
 */
import { Hono } from "hono";
import type { Context, MiddlewareHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import { boundedBody } from "./bounded_body.ts";
import type { BridgeManager } from "../laptop_audio/bridge.ts";
import type { CallRegistry } from "../call/registry.ts";
import type { Logger } from "../log.ts";
import { signatureValid } from "../twilio/signature.ts";
import { CallStatusBook } from "../twilio/call_status.ts";
import { type CallStreams, callTwiml } from "../twilio/twiml.ts";
import { refuseCall, registerWebhooks } from "./webhooks.ts";
import { type AppEnv, mountGroups, RouteGroup } from "./route_group.ts";
import { DashboardAuth } from "./dashboard_auth.ts";
import { hostProblem } from "./host_check.ts";
import { sameOrigin } from "./same_origin.ts";
import { securityHeaders } from "./security_headers.ts";
import { UserError } from "../user_error.ts";
import { STREAM_ROUTES, StreamAccess } from "./stream_access.ts";
import { upgradeMediaStream } from "./deno_websocket.ts";
import {
  LaptopAudioStream,
  type MediaStreamHandler,
  type StreamKind,
  type StreamSocket,
  TranscriptionStream,
} from "./media_stream.ts";
import { Softphone } from "./softphone.ts";
import { type DialOut, registerDialOut } from "./dial_out.ts";
import { registerTranscriptRoutes, type TranscriptRoutesOptions } from "./transcripts_api.ts";
import { RefusalLog } from "./refusal_log.ts";
import { clientOf } from "./client_address.ts";
import { printable } from "../text/printable.ts";

/** What the routes need. */
export interface AppOptions {
  registry: CallRegistry;
  log: Logger;
  /** The public base URL (known only once the server is bound). */
  publicBase: () => string;
  /** Token for signature checks; undefined only when checks are explicitly skipped. */
  authToken?: string;
  /** The laptop audio bridge, given to one call's `/audio` stream at a time. */
  bridges?: BridgeManager;
  /** The transcript store and live events: mounts the dashboard and `/api`. */
  transcripts?: Omit<TranscriptRoutesOptions, "loginRequired">;
  /** Who may use the dashboard and the API (open when omitted: tests of Twilio's routes). */
  dashboardAuth?: DashboardAuth;
  /** Where the server listens: requests must name it (or a public name) as Host. */
  bind?: { host: string; port: () => number };
  /** More names this server answers to as Host (`ALLOWED_HOSTS`). */
  allowedHosts?: string[];
  /** Call and stream status callbacks land here (a new book when omitted). */
  statuses?: CallStatusBook;
  /** Inbound calls (`/twiml/inbound`): greeting and forwarding number. */
  inbound?: { greeting?: string; forwardTo?: string };
  /** A stream with no message for this long is closed and its call ended (default 30 s). */
  streamIdleMs?: number;
  /** This instance's base for its streams (INSTANCE_URL); the public base when omitted. */
  streamBase?: () => string;
  /** The per-call stream tokens (a random key when omitted). */
  streamAccess?: StreamAccess;
  /** Whether a call has ended, as far as the store knows (no stream opens for it). */
  callEnded?: (callSid: string) => Promise<boolean>;
  /** The dashboard places calls with these Twilio credentials (`POST /api/calls`). */
  dialOut?: DialOut;
  /** True while the instance drains: /healthz answers 503 and no new call is taken. */
  draining?: () => boolean;
  /** A request body must arrive within this long of its head (default 10 s), else 408. */
  bodyTimeoutMs?: number;
}

/** Largest request body accepted; Twilio's webhooks are a few KiB of form. */
export const MAX_BODY_BYTES = 64 * 1024;

/** Builds the app. */
export function createApp(options: AppOptions): Hono<AppEnv> {
  const { registry, log } = options;
  const app = new Hono<AppEnv>();
  // A flood of refused requests writes a line per kind per period, not a line each.
  const refusals = new RefusalLog(log);
  const draining = options.draining ?? (() => false);
  const access = options.streamAccess ?? StreamAccess.fromSecrets({ authToken: options.authToken });
  const streams: CallStreams = {
    base: options.streamBase ?? options.publicBase,
    path: (callSid, kind) => access.path(callSid, kind),
  };
  const auth = options.dashboardAuth ??
    new DashboardAuth({ log, publicBase: options.publicBase });

  /** Before anything else: a request that names another host is a rebinding page's (or lost). */
  const hostCheck: MiddlewareHandler<AppEnv> = async (c, next) => {
    const bind = options.bind;
    if (!bind) return await next();
    const host = c.req.header("host") ?? new URL(c.req.url).host;
    const problem = hostProblem(host, {
      bind: bind.host,
      port: bind.port,
      names: () =>
        [options.publicBase(), streams.base()].map((url) => new URL(url).hostname)
          .concat(options.allowedHosts ?? []),
    });
    if (!problem) return await next();
    const shown = host.replace(/[^\x21-\x7e]/g, "").slice(0, 100);
    return c.text(
      // Names only what the asker typed: a rebinding page reads this answer, so no URL of ours.
      `misdirected request: Host "${shown}" is refused (${problem}). Open this server on ` +
        "its local address (localhost and its port), its public URL, or a name in ALLOWED_HOSTS.",
      421,
    );
  };
  // Before any route reads a body: bigger ones are refused unread (chunked ones once past the
  // limit), slow ones once their time is up.
  const limitBody = boundedBody({
    maxBytes: MAX_BODY_BYTES,
    timeoutMs: options.bodyTimeoutMs ?? 10_000,
  });

  /** The Twilio group's check: a signed form, parsed once for the handler. */
  const twilioForm: MiddlewareHandler<AppEnv> = async (c, next) => {
    const params = await formParams(c);
    if (params === null) {
      throw new HTTPException(400, {
        message: "expected an application/x-www-form-urlencoded body",
      });
    }
    if (!verifySignature(c, params)) {
      throw new HTTPException(403, { message: "invalid Twilio signature" });
    }
    c.set("twilioParams", params);
    await next();
  };
  /** The stream group's check: a WebSocket upgrade (the route then checks signature and capability). */
  const websocketUpgrade: MiddlewareHandler<AppEnv> = async (c, next) => {
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      throw new HTTPException(426, {
        message: "this route expects a WebSocket upgrade from Twilio Media Streams",
      });
    }
    await next();
  };

  const publicOrigins = () =>
    [options.publicBase(), streams.base()].map((url) => new URL(url).origin);
  const ownOrigin = sameOrigin(publicOrigins);
  const softphone = new Softphone({ log, publicOrigins });
  const publicRoutes = new RouteGroup("public", [securityHeaders, ownOrigin]);
  const twilio = new RouteGroup("twilio", [twilioForm]);
  const streamRoutes = new RouteGroup("streams", [websocketUpgrade]);
  const dashboard = new RouteGroup("dashboard", [securityHeaders, ownOrigin, auth.guard]);
  // The browser softphone's WebSocket: the credential at the upgrade; its Origin is checked by
  // the route (a GET), and no security headers (they would rewrite the 101 response).
  const softphoneRoutes = new RouteGroup("softphone", [auth.guard]);

  publicRoutes.get("/healthz", (c) => {
    const state = { engine: registry.engine.name, activeCalls: registry.activeCalls };
    // A load balancer moves new calls elsewhere; the live ones finish here.
    if (draining()) return c.json({ ok: false, draining: true, ...state }, 503);
    return c.json({ ok: true, ...state });
  });

  twilio.post("/twiml/outbound", (c) => {
    const params = c.get("twilioParams");
    const refused = refuseCall(c, { draining }, params);
    if (refused) return refused;
    // The call's key terms, from the webhook's own URL (`deno task call --keyterms`); signed with it.
    const keyterms = c.req.query("keyterms");
    const twiml = callTwiml(options.publicBase(), streams, params.CallSid, {
      direction: "outbound",
      ...(params.From ? { from: params.From } : {}),
      ...(params.To ? { to: params.To } : {}),
      ...(keyterms ? { keyterms } : {}),
    });
    return c.body(twiml, 200, { "content-type": "text/xml; charset=utf-8" });
  });

  const streamOptions = (socket: StreamSocket, callSid: string) => ({
    registry,
    socket,
    log,
    callSid,
    idleTimeoutMs: options.streamIdleMs,
  });
  const makeStream: Record<
    StreamKind,
    (socket: StreamSocket, callSid: string) => MediaStreamHandler
  > = {
    transcription: (socket, callSid) => new TranscriptionStream(streamOptions(socket, callSid)),
    audio: (socket, callSid) =>
      new LaptopAudioStream({
        ...streamOptions(socket, callSid),
        bridges: options.bridges,
        softphone,
      }),
  };
  /**
   * `/stream/<CallSid>/<token>`: opened only with Twilio's signature for this
   * exact URL, a valid unexpired token for this call and kind, no such stream
   * open, and the call not ended. Refused before any audio reaches a
   * transcriber; logged with the reason, never with the token.
   */
  const streamRoute = (kind: StreamKind) => async (c: Context<AppEnv>) => {
    const callSid = c.req.param("callSid") ?? "";
    const refuse = (status: 403 | 409, reason: string) => {
      log.warn(`refused the ${kind} stream of ${printable(callSid, 40)}: ${reason}`);
      return c.text(`stream refused: ${reason}`, status);
    };
    if (!verifySignature(c, {})) return c.text("invalid Twilio signature", 403);
    const problem = access.check(callSid, kind, c.req.param("token") ?? "");
    if (problem) return refuse(403, problem);
    if (registry.hasEnded(callSid) || await options.callEnded?.(callSid)) {
      return refuse(403, "the call has ended");
    }
    const release = access.claim(callSid, kind);
    if (!release) return refuse(409, `a ${kind} stream of this call is already open`);
    try {
      return upgradeMediaStream(c.req.raw, (socket) => makeStream[kind](socket, callSid), release);
    } catch (error) {
      release();
      throw error;
    }
  };
  /** A stream URL without its call and token (or with more): not one we made. */
  const unknownStream = (c: Context<AppEnv>) => {
    refusals.note(
      "refused requests for a stream URL that is not a per-call one",
      `${c.req.method} ${loggablePath(c.req.path)} from ${clientOf(c)}`,
    );
    return c.text(
      "stream URLs are per call (/stream/<CallSid>/<token>): use the URL in the call's TwiML",
      404,
    );
  };
  for (const [kind, route] of Object.entries(STREAM_ROUTES) as [StreamKind, string][]) {
    streamRoutes.get(`${route}/:callSid/:token`, streamRoute(kind));
    streamRoutes.get(route, unknownStream);
    streamRoutes.get(`${route}/*`, unknownStream);
  }

  // Dashboard and API (guarded by the dashboard credential, never by Twilio signatures).
  auth.register(publicRoutes, dashboard);
  if (options.transcripts) {
    registerTranscriptRoutes({ guarded: dashboard, open: publicRoutes }, {
      ...options.transcripts,
      loginRequired: auth.required,
    });
  }
  softphone.register(softphoneRoutes);
  registerDialOut(dashboard, { dialOut: options.dialOut, publicBase: options.publicBase, log });
  // Lets `deno task call` find the tunnel's URL; it sends the dashboard token.
  dashboard.get("/api/public-url", (c) => c.json({ publicUrl: options.publicBase() }));

  /** Twilio signs the public URL it requested: https for webhooks, wss for streams. */
  function verifySignature(c: Context<AppEnv>, params: Record<string, string>): boolean {
    if (options.authToken === undefined) return true;
    const requestUrl = new URL(c.req.url);
    const isUpgrade = c.req.header("upgrade")?.toLowerCase() === "websocket";
    // Streams go to this instance's own URL; webhooks may come through a shared one.
    const base = new URL(isUpgrade ? streams.base() : options.publicBase());
    const protocol = isUpgrade ? base.protocol.replace("http", "ws") : base.protocol;
    const url = `${protocol}//${base.host}${
      base.pathname.replace(/\/$/, "")
    }${requestUrl.pathname}${requestUrl.search}`;
    const signature = c.req.header("x-twilio-signature") ?? "";
    if (signature && signatureValid(options.authToken, signature, url, params)) return true;
    // One line per route and kind, then a count (a stream's route without its call and token).
    const route = loggablePath(requestUrl.pathname).replace(/^(\/(?:stream|audio))\/.*$/, "$1/…");
    refusals.note(
      `refused ${c.req.method} ${route} with ${signature ? "an invalid" : "no"} X-Twilio-Signature`,
      `${loggablePath(requestUrl.pathname)} from ${clientOf(c)}`,
    );
    return false;
  }

  registerWebhooks(twilio, {
    publicBase: options.publicBase,
    streams,
    draining,
    statuses: options.statuses ?? new CallStatusBook(log),
    inbound: options.inbound,
  });

  mountGroups(app, [hostCheck, limitBody], [
    publicRoutes,
    twilio,
    streamRoutes,
    softphoneRoutes,
    dashboard,
  ]);
  app.onError((error, c) => {
    if (error instanceof HTTPException) return error.getResponse();
    if (error instanceof UserError) return c.json({ error: error.message }, 400);
    log.error(`${c.req.method} ${loggablePath(c.req.path)} failed: ${error.message}`);
    return c.json({ error: "internal error" }, 500);
  });
  return app;
}

/** A path as it may be logged: a stream URL's token is cut off, the whole at most 200 characters. */
export function loggablePath(path: string): string {
  return printable(path.replace(/^(\/(?:stream|audio)\/[^/]{0,40})[^/]*\/.*$/, "$1/…"), 200);
}

/** Parses a Twilio webhook body; null when it is not a form. */
async function formParams(c: Context): Promise<Record<string, string> | null> {
  const type = c.req.header("content-type") ?? "";
  if (!type.startsWith("application/x-www-form-urlencoded")) return null;
  const params: Record<string, string> = {};
  for (const [key, value] of new URLSearchParams(await c.req.text())) params[key] = value;
  return params;
}
