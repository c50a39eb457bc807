/**
 * The Twilio webhooks beyond the outbound TwiML: the Voice webhook of a
 * Twilio number (`/twiml/inbound`) and the call and stream status callbacks,
 * registered on the app's Twilio group, whose middleware parses the form and
 * checks its signature (against the public URL, never the Host header)
 * before any of these runs.
 *
 * @module
 */
import type { Context } from "hono";
import type { CallStatusBook } from "../twilio/call_status.ts";
import { type CallStreams, callTwiml, STATUS_PATHS } from "../twilio/twiml.ts";
import type { AppEnv, RouteGroup } from "./route_group.ts";

/** What the webhook routes need from the app. */
export interface TwilioWebhookOptions {
  /** The public base URL (`PUBLIC_URL`, the tunnel, or the local address). */
  publicBase: () => string;
  /** Where this instance's streams go, and their per-call paths. */
  streams: CallStreams;
  /** True while the instance drains: new calls get 503 (Twilio then tries the fallback URL). */
  draining: () => boolean;
  statuses: CallStatusBook;
  /** Inbound calls: optional greeting, or a number to forward to instead of the laptop. */
  inbound?: { greeting?: string; forwardTo?: string };
}

/** Adds `/twiml/inbound`, `/twilio/status` and `/twilio/stream-status` to the Twilio group. */
export function registerTwilioWebhooks(twilio: RouteGroup, options: TwilioWebhookOptions): void {
  twilio.post("/twiml/inbound", (c) => {
    const params = c.get("twilioParams");
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
    (record: (params: Record<string, string>) => void) => (c: Context<AppEnv>) => {
      const params = c.get("twilioParams");
      if (!params.CallSid) return c.text("CallSid is missing", 400);
      record(params);
      return c.body(null, 204);
    };
  twilio.post(STATUS_PATHS.call, statusCallback((params) => options.statuses.recordCall(params)));
  twilio.post(
    STATUS_PATHS.stream,
    statusCallback((params) => options.statuses.recordStream(params)),
  );
}

/**
 * A TwiML webhook this instance does not answer: while draining (503, so
 * Twilio tries the number's fallback URL), or without a CallSid to make the
 * stream URLs for (400). Null when the call is taken.
 */
export function refuseCall(
  c: Context,
  options: Pick<TwilioWebhookOptions, "draining">,
  params: Record<string, string>,
): Response | null {
  if (options.draining()) {
    return c.text("this instance is draining; try another", 503, { "retry-after": "5" });
  }
  if (!params.CallSid) return c.text("CallSid is missing", 400);
  return null;
}
