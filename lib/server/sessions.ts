/**
 * Dashboard sessions and one-time login tickets, kept in this process's
 * memory: a restart logs every browser out (log in again with the token or
 * a new login link). A session id is 32 random bytes given to one browser at
 * one login; it expires on the server after {@link SESSION_IDLE_MS} unused or
 * {@link SESSION_MAX_MS} after login, whichever is first, and is revoked at
 * logout. Nothing in it is derived from the token, so a stolen cookie tells
 * nothing about the token and dies with its session. Only SHA-256 digests of
 * ids and tickets are kept.
 *
 * @module
 */
import { createHash, randomBytes } from "node:crypto";

/** A session unused this long is gone. */
export const SESSION_IDLE_MS = 12 * 3600_000;
/** A session is gone this long after its login, used or not. */
export const SESSION_MAX_MS = 7 * 24 * 3600_000;
/** A login link works once, within this time. */
export const TICKET_TTL_MS = 60 * 60_000;
/** Sessions kept at most; past it the oldest login is dropped. */
const MAX_SESSIONS = 1000;
/** Unused tickets kept at most. */
const MAX_TICKETS = 100;

/** A random secret: 32 bytes in base64url. */
export function randomSecret(): string {
  return randomBytes(32).toString("base64url");
}

const digest = (secret: string) => createHash("sha256").update(secret).digest("base64url");

/** The sessions and tickets of one server. */
export class Sessions {
  readonly #sessions = new Map<string, { createdAt: number; lastSeen: number }>();
  readonly #tickets = new Map<string, number>();
  readonly #now: () => number;

  /** `now` is the clock (tests move it). */
  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** Starts a session; returns its id (for the cookie). */
  create(): string {
    const id = randomSecret();
    const now = this.#now();
    if (this.#sessions.size >= MAX_SESSIONS) {
      this.#sessions.delete(this.#sessions.keys().next().value!);
    }
    this.#sessions.set(digest(id), { createdAt: now, lastSeen: now });
    return id;
  }

  /** True while the session is live; using it keeps it from going idle. */
  touch(id: string): boolean {
    const key = digest(id);
    const session = this.#sessions.get(key);
    if (!session) return false;
    const now = this.#now();
    if (now - session.lastSeen > SESSION_IDLE_MS || now - session.createdAt > SESSION_MAX_MS) {
      this.#sessions.delete(key);
      return false;
    }
    session.lastSeen = now;
    return true;
  }

  /** Ends a session (logout). */
  revoke(id: string): void {
    this.#sessions.delete(digest(id));
  }

  /** A one-time login ticket (the `ticket` of a login link). */
  issueTicket(): string {
    const ticket = randomSecret();
    if (this.#tickets.size >= MAX_TICKETS) {
      this.#tickets.delete(this.#tickets.keys().next().value!);
    }
    this.#tickets.set(digest(ticket), this.#now() + TICKET_TTL_MS);
    return ticket;
  }

  /** True, once, for a ticket issued less than {@link TICKET_TTL_MS} ago. */
  redeemTicket(ticket: string): boolean {
    const key = digest(ticket);
    const expires = this.#tickets.get(key);
    this.#tickets.delete(key);
    return expires !== undefined && this.#now() <= expires;
  }
}
