/**
 * `POST /api/calls`: the dashboard places a call with the server's Twilio
 * credentials, as `deno task call` does (the same REST request: the call's
 * TwiML from this server's `/twiml/outbound`, status callbacks here). In the
 * dashboard group, so it needs the dashboard credential and, from a browser,
 * this server's own page (the cross-site check). The page then opens the
 * call and can take its laptop leg (the browser softphone).
 *
 * @module
 */
import type { Logger } from "../log.ts";
import { E164 } from "../parse.ts";
import {
  createOutboundCall,
  describeTwilioError,
  TWILIO_API,
  twilioClient,
  type TwilioCredentials,
  unreachablePublicUrl,
} from "../twilio/rest.ts";
import type { RouteGroup } from "./route_group.ts";

/** The server's means of placing calls: checked credentials, or why there are none. */
export type DialOut = { credentials: TwilioCredentials } | { problem: string };

/** Adds `POST /api/calls` (JSON `{ "to": "+15551234567" }` → 201 `{ "callSid": "CA…" }`). */
export function registerDialOut(
  group: RouteGroup,
  options: { dialOut?: DialOut; publicBase: () => string; log: Logger },
): void {
  group.post("/api/calls", async (c) => {
    const body = await c.req.json().catch(() => null) as { to?: unknown } | null;
    const to = typeof body?.to === "string" ? body.to.trim() : "";
    if (!E164.test(to)) {
      return c.json({
        error: `the number to call must be in E.164 form such as +15551234567 (plus sign, ` +
          `country code, no spaces or dashes), got "${to.slice(0, 40)}"`,
      }, 400);
    }
    const dialOut = options.dialOut ?? { problem: "this server was started without them" };
    if ("problem" in dialOut) {
      return c.json({
        error: "placing calls needs the server's Twilio credentials (TWILIO_ACCOUNT_SID, " +
          `TWILIO_AUTH_TOKEN, TWILIO_PHONE_NUMBER in its .env): ${dialOut.problem}`,
      }, 503);
    }
    const { credentials } = dialOut;
    const publicUrl = options.publicBase();
    const unreachable = unreachablePublicUrl(publicUrl, credentials);
    if (unreachable) return c.json({ error: unreachable }, 503);
    try {
      const call = await createOutboundCall(twilioClient(credentials), credentials, {
        to,
        publicUrl,
      });
      options.log.info(`dashboard: calling ${to} from ${credentials.from} (call ${call.sid})`);
      return c.json({ callSid: call.sid }, 201);
    } catch (error) {
      const message = describeTwilioError(error, credentials.apiUrl ?? TWILIO_API);
      options.log.warn(`dashboard: could not call ${to}: ${message}`);
      return c.json({ error: message }, 502);
    }
  });
}
