/**
 * The Twilio webhooks beyond the outbound TwiML: the Voice webhook of a
 * Twilio number (`/twiml/inbound`), call and stream status callbacks, and
 * the public URL for `deno task call`. Every Twilio route is signature-checked
 * by the app's `verify` (against the public URL, never the Host header).
 *
 * @module
 */
import type { Context, Hono } from "hono";
import type { CallStatusBook } from "../twilio/call_status.ts";
import { type CallStreams, callTwiml, STATUS_PATHS } from "../twilio/twiml.ts";

/** What the webhook routes need from the app. */
export interface WebhookOptions {
  /** The public base URL (`PUBLIC_URL`, the tunnel, or the local address). */
  publicBase: () => string;
  /** Where this instance's streams go, and their per-call paths. */
  streams: CallStreams;
  /** True while the instance drains: new calls get 503 (Twilio then tries the fallback URL). */
  draining: () => boolean;
  /** The app's signature check; false means it already logged the refusal. */
  verify: (c: Context, params: Record<string, string>) => boolean;
  /** The app's form parser; null when the body is not a form. */
  formParams: (c: Context) => Promise<Record<string, string> | null>;
  statuses: CallStatusBook;
  /** Inbound calls: optional greeting, or a number to forward to instead of the laptop. */
  inbound?: { greeting?: string; forwardTo?: string };
}

/** Adds `/twiml/inbound`, `/twilio/status`, `/twilio/stream-status` and `/api/public-url`. */
export function registerWebhooks(app: Hono, options: WebhookOptions): void {
  const form = async (c: Context) => {
    const params = await options.formParams(c);
    if (params === null) {
      return { error: c.text("expected an application/x-www-form-urlencoded body", 400) };
    }
    if (!options.verify(c, params)) return { error: c.text("invalid Twilio signature", 403) };
    return { params };
  };

  app.post("/twiml/inbound", async (c) => {
    const { params, error } = await form(c);
    if (error) return error;
    const refused = refuseCall(c, options, params);
    if (refused) return refused;
    // Key terms for every call to this number: `?keyterms=` on the webhook URL set in Twilio.
    const keyterms = c.req.query("keyterms");
    const twiml = callTwiml(options.publicBase(), options.streams, params.CallSid, {
      direction: "inbound",
      ...(params.From ? { from: params.From } : {}),
      ...(params.To ? { to: params.To } : {}),
      ...(keyterms ? { keyterms } : {}),
    }, options.inbound);
    return c.body(twiml, 200, { "content-type": "text/xml; charset=utf-8" });
  });

  const statusCallback =
    (record: (params: Record<string, string>) => void) => async (c: Context) => {
      const { params, error } = await form(c);
      if (error) return error;
      if (!params.CallSid) return c.text("CallSid is missing", 400);
      record(params);
      return c.body(null, 204);
    };
  app.post(STATUS_PATHS.call, statusCallback((params) => options.statuses.recordCall(params)));
  app.post(STATUS_PATHS.stream, statusCallback((params) => options.statuses.recordStream(params)));

  // Lets `deno task call` find the tunnel's URL; it is no secret to whoever can reach us.
  app.get("/api/public-url", (c) => c.json({ publicUrl: options.publicBase() }));
}

/**
 * A TwiML webhook this instance does not answer: while draining (503, so
 * Twilio tries the number's fallback URL), or without a CallSid to make the
 * stream URLs for (400). Null when the call is taken.
 */
export function refuseCall(
  c: Context,
  options: Pick<WebhookOptions, "draining">,
  params: Record<string, string>,
): Response | null {
  if (options.draining()) {
    return c.text("this instance is draining; try another", 503, { "retry-after": "5" });
  }
  if (!params.CallSid) return c.text("CallSid is missing", 400);
  return null;
}
