/**
 * The Twilio REST client (the real `twilio` npm package), its credentials
 * checked up front, and its errors turned into one readable line.
 *
 * `TWILIO_API_URL` (testing only) points the client at another base URL,
 * e.g. the simulator in tests/fakes/twilio_rest.ts: a custom `httpClient` (the
 * package's supported hook) rewrites the origin of each request, so
 * everything else — auth, parameters, parsing, errors — is the package's own.
 *
 * @module
 */
import twilio from "twilio";
import { STATUS_PATHS } from "./twiml.ts";

/** Twilio's REST API origin. */
export const TWILIO_API = "https://api.twilio.com";

/** Checked credentials for placing calls. */
export interface TwilioCredentials {
  accountSid: string;
  authToken: string;
  /** The caller ID: a Twilio number (or a verified one) in E.164 form. */
  from: string;
  /** Another origin for the REST API (testing); undefined for Twilio's. */
  apiUrl?: string;
}

/** A request client that sends `https://api.twilio.com/…` requests to another origin. */
function redirectedRequestClient(origin: string): twilio.RequestClient {
  const client = new twilio.RequestClient();
  const request = client.request.bind(client);
  client.request = ((opts) => {
    const uri = new URL(opts.uri);
    const target = uri.origin === TWILIO_API ? origin + uri.pathname + uri.search : opts.uri;
    return request({ ...opts, uri: target });
  }) as typeof client.request;
  return client;
}

/** The `twilio` client for these credentials. */
export function twilioClient(credentials: TwilioCredentials): twilio.Twilio {
  return twilio(credentials.accountSid, credentials.authToken, {
    ...(credentials.apiUrl && credentials.apiUrl !== TWILIO_API
      ? { httpClient: redirectedRequestClient(credentials.apiUrl) }
      : {}),
  });
}

/** Twilio's documentation page for an error code. */
export function errorDocs(code: number | string): string {
  return `https://www.twilio.com/docs/errors/${code}`;
}

/** What to do about the errors people hit first. */
const HINTS: Record<number, string> = {
  20003: "check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN in .env (console, Account info)",
  20404: "the call no longer exists, or belongs to another account",
  21211: "the 'To' number is not a valid phone number; use E.164 form such as +15551234567",
  21212: "the 'From' number must be one of your Twilio numbers or a verified caller ID",
  21215: "allow calls to that country in the console: Voice > Settings > Geo permissions",
  21219:
    "trial accounts can only call verified numbers: add it in the console under Phone Numbers > Verified Caller IDs, or upgrade the account",
};

/** One readable line for an error from the `twilio` client (never a stack trace). */
export function describeTwilioError(error: unknown, apiUrl = TWILIO_API): string {
  const e = error as { code?: unknown; status?: number; message?: string; moreInfo?: string };
  if (error instanceof twilio.RestException || (typeof e?.code === "number" && e.status)) {
    const code = e.code as number | undefined;
    if (code) {
      const hint = HINTS[code] ? ` (${HINTS[code]})` : "";
      return `Twilio error ${code}: ${e.message}${hint} — ${errorDocs(code)}`;
    }
    return `Twilio answered HTTP ${e.status}: ${e.message}`;
  }
  const message = e?.message || String(error);
  const network = typeof e?.code === "string" ? ` (${e.code})` : "";
  return `could not reach the Twilio API at ${apiUrl}${network}: ${message}`;
}

/** What {@link createOutboundCall} needs. */
export interface OutboundCallRequest {
  to: string;
  /** The server's public base URL: Twilio asks its `/twiml/outbound` for the call's TwiML. */
  publicUrl: string;
  /** The call's key terms, sent on its TwiML request (comma-separated). */
  keyterms?: string;
}

/**
 * Why Twilio cannot reach `publicUrl` (a loopback address, with Twilio's own API), or null.
 * The fix is named: a tunnel or PUBLIC_URL.
 */
export function unreachablePublicUrl(
  publicUrl: string,
  credentials: TwilioCredentials,
): string | null {
  const host = new URL(publicUrl).hostname;
  if (credentials.apiUrl || !/^(localhost|127\.|\[::1\]|0\.0\.0\.0|::1)/.test(host)) return null;
  return `the server's public URL is ${publicUrl}, which Twilio cannot reach: set NGROK_AUTHTOKEN ` +
    "(or run a tunnel and set PUBLIC_URL) in .env, then restart `deno task serve`";
}

/**
 * Creates an outbound call whose TwiML comes from the server's `/twiml/outbound` (so its stream
 * URLs are that call's own), with status callbacks to the server.
 */
export function createOutboundCall(
  client: twilio.Twilio,
  credentials: TwilioCredentials,
  request: OutboundCallRequest,
): ReturnType<twilio.Twilio["calls"]["create"]> {
  const base = request.publicUrl.replace(/\/$/, "");
  return client.calls.create({
    to: request.to,
    from: credentials.from,
    // The server puts them in the call's <Stream> as its `keyterms` parameter.
    url: base + "/twiml/outbound" +
      (request.keyterms ? `?keyterms=${encodeURIComponent(request.keyterms)}` : ""),
    method: "POST",
    statusCallback: base + STATUS_PATHS.call,
    statusCallbackMethod: "POST",
    statusCallbackEvent: ["initiated", "ringing", "answered", "completed"],
  });
}
