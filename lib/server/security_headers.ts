/**
 * Security headers of the dashboard, its API and the login form: a
 * Content-Security-Policy that runs only this server's own script files
 * (no inline script, no `eval`, no other origin), styles from its own files
 * plus `<style>` elements carrying this response's nonce (the player's
 * shadow DOM), never framed (`frame-ancestors 'none'`); no MIME sniffing;
 * no Referer (a URL could carry a login ticket); pages never cached.
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "./route_group.ts";

/** The Content-Security-Policy of a response whose `<style>` nonce is `nonce`. */
export function contentSecurityPolicy(nonce: string): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    `style-src 'self' 'nonce-${nonce}'`,
    "img-src 'self' data:",
    "media-src 'self' blob:",
    "connect-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join("; ");
}

/** Adds the headers to every response of the routes it guards (refusals included). */
export const securityHeaders: MiddlewareHandler<AppEnv> = async (c, next) => {
  const nonce = randomBytes(16).toString("base64");
  c.set("styleNonce", nonce);
  await next();
  const headers = {
    "content-security-policy": contentSecurityPolicy(nonce),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
  };
  try {
    for (const [name, value] of Object.entries(headers)) c.res.headers.set(name, value);
  } catch {
    // Immutable headers (a Response made elsewhere): copy it.
    c.res = new Response(c.res.body, c.res);
    for (const [name, value] of Object.entries(headers)) c.res.headers.set(name, value);
  }
  if (c.res.headers.get("content-type")?.startsWith("text/html")) {
    c.res.headers.set("cache-control", "no-store");
  }
};
