/**
 * The Host check against DNS rebinding: a web page whose name is made to
 * resolve to 127.0.0.1 reaches this server with its own name as Host, so
 * only this server's own names are answered: a loopback name (`localhost`,
 * `127.x.x.x`, `[::1]`) with the bound port, the host of the public URL
 * (PUBLIC_URL or the tunnel's) and of INSTANCE_URL, the configured HOST when
 * it is a specific address, any IP address when bound to every interface
 * (an address cannot be rebound), and the names in ALLOWED_HOSTS.
 *
 * @module
 */
import { isLoopback } from "./auth.ts";

/** What a Host is checked against. */
export interface HostRules {
  /** The port the server is bound to (the one loopback names must carry). */
  port: () => number;
  /** The address the server is bound to (HOST). */
  bind: string;
  /** This server's own names now (public URL, instance URL, ALLOWED_HOSTS). */
  names: () => string[];
}

/** Null when `host` (a Host header) names this server, else why not. */
export function hostProblem(host: string, rules: HostRules): string | null {
  const url = URL.canParse(`http://${host}/`) ? new URL(`http://${host}/`) : null;
  if (!url || url.username || url.password || url.pathname !== "/" || !host) {
    return "the Host header is not a host name";
  }
  const name = url.hostname;
  const port = Number(url.port || 80);
  const own = rules.names().map((n) => n.toLowerCase());
  if (own.includes(name)) return null;
  if (isLoopback(name)) {
    return port === rules.port() ? null : `port ${port} is not this server's (${rules.port()})`;
  }
  if (!isLoopback(rules.bind) && url.hostname === hostnameOf(rules.bind)) return null;
  const everyInterface = rules.bind === "0.0.0.0" || rules.bind === "::";
  const isAddress = /^\d{1,3}(\.\d{1,3}){3}$/.test(name) || name.startsWith("[");
  if (everyInterface && isAddress) return null;
  return "it is not a name of this server";
}

/** The URL hostname form of a bind address (IPv6 in brackets). */
function hostnameOf(address: string): string {
  return address.includes(":") ? `[${address.toLowerCase()}]` : address.toLowerCase();
}
