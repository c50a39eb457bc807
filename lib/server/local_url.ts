/**
 * The local address of a server as a URL: IPv6 hosts go in brackets, and a
 * server bound to every interface (`0.0.0.0`, `::`) is reached on loopback.
 *
 * @module
 */

/** `http://host:port`, with the host bracketed when it is IPv6; `reachable` maps 0.0.0.0 and :: to loopback. */
export function localUrl(
  host: string,
  port: number,
  options: { reachable?: boolean } = {},
): string {
  let shown = host;
  if (options.reachable && host === "0.0.0.0") shown = "127.0.0.1";
  if (options.reachable && host === "::") shown = "::1";
  return `http://${shown.includes(":") ? `[${shown}]` : shown}:${port}`;
}
