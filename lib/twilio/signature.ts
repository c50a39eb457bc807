/**
 * `X-Twilio-Signature`: checked with the `twilio` library, and made the same
 * way by the simulator. For WebSocket upgrades Twilio signs the `wss://` URL
 * with no parameters.
 *
 * @module
 */
import twilio from "twilio";

/** True when `signature` is Twilio's signature of `url` and `params` under `authToken`. */
export function signatureValid(
  authToken: string,
  signature: string,
  url: string,
  params: Record<string, string>,
): boolean {
  return twilio.validateRequest(authToken, signature, url, params);
}

/** The signature Twilio would send for a request to `url` with `params`. */
export function signRequest(
  authToken: string,
  url: string,
  params: Record<string, string>,
): string {
  return twilio.getExpectedTwilioSignature(authToken, url, params);
}
