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
import { bodyLimit } from "hono/body-limit";
import type { BridgeManager } from "../laptop_audio/bridge.ts";
import type { CallRegistry } from "../call/registry.ts";
import type { Logger } from "../log.ts";
import { signatureValid } from "../twilio/signature.ts";
import { CallStatusBook } from "../twilio/call_status.ts";
import { callTwiml } from "../twilio/twiml.ts";
import { registerWebhooks } from "./webhooks.ts";
import { upgradeMediaStream } from "./deno_websocket.ts";
import {
  LaptopAudioStream,
  type MediaStreamHandler,
  type StreamSocket,
  TranscriptionStream,
} from "./media_stream.ts";
import { transcriptRoutes, type TranscriptRoutesOptions } from "./transcripts_api.ts";

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
}

/** Largest request body accepted; Twilio's webhooks are a few KiB of form. */
export const MAX_BODY_BYTES = 64 * 1024;

/** Builds the app. */
export function createApp(options: AppOptions): Hono {
  const { registry, log } = options;
  const app = new Hono();

  // Before any route reads a body: bigger ones are refused unread (chunked ones once past the limit).
  app.use(
    "*",
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: (c) => c.text(`request body over ${MAX_BODY_BYTES} bytes`, 413),
    }),
  );

  app.get(
    "/healthz",
    (c) => c.json({ ok: true, engine: registry.engine.name, activeCalls: registry.activeCalls }),
  );

  app.post("/twiml/outbound", async (c) => {
    const params = await formParams(c);
    if (params === null) return c.text("expected an application/x-www-form-urlencoded body", 400);
    if (!verifySignature(c, params)) return c.text("invalid Twilio signature", 403);
    const twiml = callTwiml(options.publicBase(), {
      direction: "outbound",
      ...(params.From ? { from: params.From } : {}),
      ...(params.To ? { to: params.To } : {}),
    });
    return c.body(twiml, 200, { "content-type": "text/xml; charset=utf-8" });
  });

  const streamRoute = (make: (socket: StreamSocket) => MediaStreamHandler) => (c: Context) => {
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      return c.text("this route expects a WebSocket upgrade from Twilio Media Streams", 426);
    }
    if (!verifySignature(c, {})) return c.text("invalid Twilio signature", 403);
    return upgradeMediaStream(c.req.raw, make);
  };
  const streamOptions = (socket: StreamSocket) => ({
    registry,
    socket,
    log,
    idleTimeoutMs: options.streamIdleMs,
  });
  // Dashboard and API (guarded by the dashboard token, never by Twilio signatures).
  if (options.transcripts) app.route("/", transcriptRoutes(options.transcripts));

  app.get("/stream", streamRoute((socket) => new TranscriptionStream(streamOptions(socket))));
  app.get(
    "/audio",
    streamRoute((socket) =>
      new LaptopAudioStream({ ...streamOptions(socket), bridges: options.bridges })
    ),
  );

  /** Twilio signs the public URL it requested: https for webhooks, wss for streams. */
  function verifySignature(c: Context, params: Record<string, string>): boolean {
    if (options.authToken === undefined) return true;
    const requestUrl = new URL(c.req.url);
    const base = new URL(options.publicBase());
    const isUpgrade = c.req.header("upgrade")?.toLowerCase() === "websocket";
    const protocol = isUpgrade ? base.protocol.replace("http", "ws") : base.protocol;
    const url = `${protocol}//${base.host}${
      base.pathname.replace(/\/$/, "")
    }${requestUrl.pathname}${requestUrl.search}`;
    const signature = c.req.header("x-twilio-signature") ?? "";
    if (signature && signatureValid(options.authToken, signature, url, params)) return true;
    const remote = c.req.header("x-forwarded-for") ?? "direct";
    log.warn(
      `refused ${c.req.method} ${requestUrl.pathname} from ${remote}: ${
        signature ? "invalid" : "missing"
      } X-Twilio-Signature`,
    );
    return false;
  }

  registerWebhooks(app, {
    publicBase: options.publicBase,
    verify: verifySignature,
    formParams,
    statuses: options.statuses ?? new CallStatusBook(log),
    inbound: options.inbound,
  });

  return app;
}

/** Parses a Twilio webhook body; null when it is not a form. */
async function formParams(c: Context): Promise<Record<string, string> | null> {
  const type = c.req.header("content-type") ?? "";
  if (!type.startsWith("application/x-www-form-urlencoded")) return null;
  const params: Record<string, string> = {};
  for (const [key, value] of new URLSearchParams(await c.req.text())) params[key] = value;
  return params;
}
