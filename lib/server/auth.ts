/**
 * Small pieces of dashboard access shared by the server's modules: secret
 * comparison in constant time, the session cookie's name, and which
 * addresses are loopback. The access rules themselves are in
 * `dashboard_auth.ts`.
 *
 * @module
 */
import { createHmac, timingSafeEqual } from "node:crypto";

/** Name of the session cookie. */
export const SESSION_COOKIE = "callscribe_session";

/** Compares two secrets in time that depends on neither (both are hashed first). */
export function secretsEqual(a: string, b: string): boolean {
  const digest = (s: string) => createHmac("sha256", "callscribe-compare").update(s).digest();
  return timingSafeEqual(digest(a), digest(b));
}

/** True for addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h);
}
