/**
 * Which client sent a request, as refusals and failed logins are counted and
 * logged. The connection front ({@link PEER_HEADER}) names the socket's peer;
 * a tunnel (ngrok in this process) or a reverse proxy on this machine
 * connects from loopback for every client and names the real one in the last
 * hop of `X-Forwarded-For` (the one it appended; earlier hops are the
 * client's own word). So: the last hop when the peer is this machine,
 * otherwise the peer itself. The result is short and clean (an IP address,
 * `local` or `unknown`): safe to log, never the header as sent.
 *
 * @module
 */
import type { Context } from "hono";
import { getConnInfo } from "hono/deno";
import { isLoopback } from "./auth.ts";

/**
 * The header in which the connection front passes on the socket's peer
 * address (`Deno.serve` sees only the front's loopback connection). The
 * front drops any such header a client sent.
 */
export const PEER_HEADER = "x-callscribe-peer";

/** The client of a request from `remote` (the socket's address; undefined in-process). */
export function clientAddress(request: Request, remote: string | undefined): string {
  const peer = request.headers.get(PEER_HEADER) ?? remote;
  if (peer === undefined || isLoopback(peer)) {
    const lastHop = request.headers.get("x-forwarded-for")?.split(",").at(-1)?.trim();
    if (lastHop) return cleanAddress(lastHop);
  }
  return peer === undefined ? "local" : cleanAddress(peer);
}

/** {@link clientAddress} of a Hono request, with its socket's address when it has one. */
export function clientOf(c: Context): string {
  let remote: string | undefined;
  try {
    const address = getConnInfo(c).remote.address;
    remote = address === undefined ? undefined : String(address);
  } catch {
    // In-process requests (tests) have no socket.
  }
  return clientAddress(c.req.raw, remote);
}

/** An IPv4 or IPv6 address (brackets and port dropped), or `unknown`. */
function cleanAddress(value: string): string {
  const bare = /^\[([0-9a-fA-F:.]+)\](?::\d+)?$/.exec(value)?.[1] ??
    /^(\d{1,3}(?:\.\d{1,3}){3})(?::\d+)?$/.exec(value)?.[1] ?? value;
  return /^[0-9a-fA-F:.]{2,45}$/.test(bare) && /[.:]/.test(bare) ? bare.toLowerCase() : "unknown";
}
