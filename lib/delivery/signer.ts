/**
 * Signs webhook requests the Standard Webhooks way
 * (https://www.standardwebhooks.com, spec "Signature scheme"): headers
 * `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`
 * (`v1,` + base64 HMAC-SHA256 of `id.timestamp.body`), made by the
 * specification's own library, never by hand.
 *
 * @module
 */
import { Webhook } from "standardwebhooks";

/** Secrets are `whsec_` + base64 of the key. */
export const SECRET_PREFIX = "whsec_";

/** The specification asks for keys of 24 to 64 bytes (192 to 512 bits). */
export const MIN_SECRET_BYTES = 24;
/** The longest key the specification allows. */
export const MAX_SECRET_BYTES = 64;

/**
 * What is wrong with a secret, or null when it is usable. Never repeats the
 * secret itself.
 */
export function secretProblem(secret: string): string | null {
  if (!secret.startsWith(SECRET_PREFIX)) {
    return `must start with ${SECRET_PREFIX} followed by base64`;
  }
  const encoded = secret.slice(SECRET_PREFIX.length);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded) || encoded.length % 4 !== 0) {
    return `must be ${SECRET_PREFIX} followed by base64 (A-Z, a-z, 0-9, +, /, = padding)`;
  }
  const bytes = atob(encoded).length;
  if (bytes < MIN_SECRET_BYTES || bytes > MAX_SECRET_BYTES) {
    return `must hold ${MIN_SECRET_BYTES} to ${MAX_SECRET_BYTES} bytes of key, this one holds ${bytes}`;
  }
  return null;
}

/** A fresh secret in the specification's form, e.g. for `.env`. */
export function generateSecret(bytes = 32): string {
  const key = crypto.getRandomValues(new Uint8Array(bytes));
  return SECRET_PREFIX + btoa(String.fromCharCode(...key));
}

/** Signs request bodies with one secret. */
export class WebhookSigner {
  #webhook: Webhook;

  /** `secret` must pass {@link secretProblem}. */
  constructor(secret: string) {
    const problem = secretProblem(secret);
    if (problem) throw new TypeError(`Cannot use webhook secret: it ${problem}`);
    this.#webhook = new Webhook(secret);
  }

  /** The request headers for `body` sent as message `id` at `at`. */
  headers(id: string, body: string, at = new Date()): Record<string, string> {
    return {
      "content-type": "application/json",
      "webhook-id": id,
      "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
      "webhook-signature": this.#webhook.sign(id, at, body),
    };
  }
}
