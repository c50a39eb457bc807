/**
 * The client of a request as a log names it. Behind a tunnel or proxy every
 * connection comes from 127.0.0.1 and `X-Forwarded-For` says who it is for:
 * the last hop is the one the proxy added (the ones before it are whatever
 * the client sent, up to 64 KiB of it).
 *
 * @module
 */
import { printable } from "../text/printable.ts";

/** Longest address logged. */
const MAX_ADDRESS = 64;

/** The last hop of `X-Forwarded-For`, cleaned and at most 64 characters; `direct` without one. */
export function clientAddress(forwardedFor: string | undefined | null): string {
  const last = forwardedFor?.slice(forwardedFor.lastIndexOf(",") + 1).trim() ?? "";
  const address = printable(last.slice(-4 * MAX_ADDRESS), MAX_ADDRESS);
  return address || "direct";
}
