/**
 * Dashboard access: with `DASHBOARD_TOKEN` set, the dashboard and the API
 * need it, as `Authorization: Bearer <token>` or as the session cookie the
 * login form sets. Twilio's routes never use this token (they check
 * signatures). Comparisons take constant time.
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

/** The cookie value for a token: derived, so the cookie never holds the token itself. */
export function sessionValue(token: string): string {
  return createHmac("sha256", token).update("callscribe-dashboard-session").digest("hex");
}

/** True when the request carries the token (bearer header or session cookie). */
export function requestAuthorized(request: Request, token: string): boolean {
  const header = request.headers.get("authorization") ?? "";
  const bearer = /^Bearer\s+(.+)$/i.exec(header)?.[1]?.trim();
  if (bearer !== undefined && secretsEqual(bearer, token)) return true;
  const cookie = readCookie(request.headers.get("cookie") ?? "", SESSION_COOKIE);
  return cookie !== undefined && secretsEqual(cookie, sessionValue(token));
}

function readCookie(header: string, name: string): string | undefined {
  for (const part of header.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return rest.join("=");
  }
  return undefined;
}

/** The `Set-Cookie` header for a logged-in browser. */
export function sessionCookie(token: string, secure: boolean): string {
  return `${SESSION_COOKIE}=${sessionValue(token)}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${
    30 * 24 * 3600
  }${secure ? "; Secure" : ""}`;
}

/** True for addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h);
}
