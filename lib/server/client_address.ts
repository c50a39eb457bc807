/**
 * Which client sent a request, as failed logins are counted and logged. A
 * tunnel (ngrok in this process) or a reverse proxy on this machine connects
 * from loopback for every client and names the real one in the last hop of
 * `X-Forwarded-For` (the one it appended; earlier hops are the client's own
 * word). So: the last hop when the connection comes from this machine,
 * otherwise the connection's own address. The result is short and clean
 * (an IP address, or `unknown`): safe to log, never the header as sent.
 *
 * @module
 */
import { isLoopback } from "./auth.ts";

/** The client of a request from `remote` (the socket's address; undefined in-process). */
export function clientAddress(request: Request, remote: string | undefined): string {
  const local = remote === undefined || isLoopback(remote);
  if (local) {
    const lastHop = request.headers.get("x-forwarded-for")?.split(",").at(-1)?.trim();
    if (lastHop) return cleanAddress(lastHop);
  }
  return remote === undefined ? "local" : cleanAddress(remote);
}

/** An IPv4 or IPv6 address (brackets and port dropped), or `unknown`. */
function cleanAddress(value: string): string {
  const bare = /^\[([0-9a-fA-F:.]+)\](?::\d+)?$/.exec(value)?.[1] ??
    /^(\d{1,3}(?:\.\d{1,3}){3})(?::\d+)?$/.exec(value)?.[1] ?? value;
  return /^[0-9a-fA-F:.]{2,45}$/.test(bare) && /[.:]/.test(bare) ? bare.toLowerCase() : "unknown";
}
