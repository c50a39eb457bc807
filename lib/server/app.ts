/**
 * The HTTP routes, as a Hono app: TwiML webhooks, the two Media Stream
 * WebSockets and a health check. Every Twilio route checks
 * `X-Twilio-Signature` against the public URL (never the Host header, which
 * tunnels rewrite).
 *
 * @module
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { boundedBody } from "./bounded_body.ts";
import type { BridgeManager } from "../laptop_audio/bridge.ts";
import type { CallRegistry } from "../call/registry.ts";
import type { Logger } from "../log.ts";
import { signatureValid } from "../twilio/signature.ts";
import { CallStatusBook } from "../twilio/call_status.ts";
import { type CallStreams, callTwiml } from "../twilio/twiml.ts";
import { refuseCall, registerWebhooks } from "./webhooks.ts";
import { STREAM_ROUTES, StreamAccess } from "./stream_access.ts";
import { upgradeMediaStream } from "./deno_websocket.ts";
import {
  LaptopAudioStream,
  type MediaStreamHandler,
  type StreamKind,
  type StreamSocket,
  TranscriptionStream,
} from "./media_stream.ts";
import { transcriptRoutes, type TranscriptRoutesOptions } from "./transcripts_api.ts";
import { RefusalLog } from "./refusal_log.ts";
import { clientAddress } from "./client_address.ts";
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
  /** The transcript store, live events and dashboard token: mounts the dashboard and `/api`. */
  transcripts?: TranscriptRoutesOptions;
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
  /** True while the instance drains: /healthz answers 503 and no new call is taken. */
  draining?: () => boolean;
  /** A request body must arrive within this long of its head (default 10 s), else 408. */
  bodyTimeoutMs?: number;
}

/** Largest request body accepted; Twilio's webhooks are a few KiB of form. */
export const MAX_BODY_BYTES = 64 * 1024;

/** Builds the app. */
export function createApp(options: AppOptions): Hono {
  const { registry, log } = options;
  const app = new Hono();
  // A flood of refused requests writes a line per kind per period, not a line each.
  const refusals = new RefusalLog(log);
  const draining = options.draining ?? (() => false);
  const access = options.streamAccess ?? StreamAccess.fromSecrets({ authToken: options.authToken });
  const streams: CallStreams = {
    base: options.streamBase ?? options.publicBase,
    path: (callSid, kind) => access.path(callSid, kind),
  };

  // Before any route reads a body: bigger ones are refused unread (chunked ones once past the
  // limit), slow ones once their time is up.
  app.use(
    "*",
    boundedBody({ maxBytes: MAX_BODY_BYTES, timeoutMs: options.bodyTimeoutMs ?? 10_000 }),
  );

  app.get("/healthz", (c) => {
    const state = { engine: registry.engine.name, activeCalls: registry.activeCalls };
    // A load balancer moves new calls elsewhere; the live ones finish here.
    if (draining()) return c.json({ ok: false, draining: true, ...state }, 503);
    return c.json({ ok: true, ...state });
  });

  app.post("/twiml/outbound", async (c) => {
    const params = await formParams(c);
    if (params === null) return c.text("expected an application/x-www-form-urlencoded body", 400);
    if (!verifySignature(c, params)) return c.text("invalid Twilio signature", 403);
    const refused = refuseCall(c, { draining }, params);
    if (refused) return refused;
    const twiml = callTwiml(options.publicBase(), streams, params.CallSid, {
      direction: "outbound",
      ...(params.From ? { from: params.From } : {}),
      ...(params.To ? { to: params.To } : {}),
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
      new LaptopAudioStream({ ...streamOptions(socket, callSid), bridges: options.bridges }),
  };
  /**
   * `/stream/<CallSid>/<token>`: opened only with Twilio's signature for this
   * exact URL, a valid unexpired token for this call and kind, no such stream
   * open, and the call not ended. Refused before any audio reaches a
   * transcriber; logged with the reason, never with the token.
   */
  const streamRoute = (kind: StreamKind) => async (c: Context) => {
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      return c.text("this route expects a WebSocket upgrade from Twilio Media Streams", 426);
    }
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
  const unknownStream = (c: Context) => {
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      return c.text("this route expects a WebSocket upgrade from Twilio Media Streams", 426);
    }
    refusals.note(
      "refused requests for a stream URL that is not a per-call one",
      `${c.req.method} ${loggablePath(c.req.path)} from ${
        clientAddress(c.req.header("x-forwarded-for"))
      }`,
    );
    return c.text(
      "stream URLs are per call (/stream/<CallSid>/<token>): use the URL in the call's TwiML",
      404,
    );
  };

  // Dashboard and API (guarded by the dashboard token, never by Twilio signatures).
  if (options.transcripts) app.route("/", transcriptRoutes(options.transcripts));

  for (const [kind, route] of Object.entries(STREAM_ROUTES) as [StreamKind, string][]) {
    app.get(`${route}/:callSid/:token`, streamRoute(kind));
    app.get(route, unknownStream);
    app.get(`${route}/*`, unknownStream);
  }

  /** Twilio signs the public URL it requested: https for webhooks, wss for streams. */
  function verifySignature(c: Context, params: Record<string, string>): boolean {
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
      `${loggablePath(requestUrl.pathname)} from ${clientAddress(c.req.header("x-forwarded-for"))}`,
    );
    return false;
  }

  registerWebhooks(app, {
    publicBase: options.publicBase,
    streams,
    draining,
    verify: verifySignature,
    formParams,
    statuses: options.statuses ?? new CallStatusBook(log),
    inbound: options.inbound,
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
