/**
 * Who may use the dashboard and the API. With a token (DASHBOARD_TOKEN, or
 * the one the server generated because it is reachable from outside),
 * every dashboard and API route needs a session cookie (from the login
 * form, or from a one-time login link printed on the server's console) or
 * `Authorization: Bearer <token>`. Without a token (a loopback-only server
 * and no DASHBOARD_TOKEN) they are open, as before; the Host and cross-site
 * checks apply either way. Wrong tokens, in the form or as a bearer, are
 * counted per client ({@link LoginLimiter}) and logged with the client's
 * cleaned address, never with what was sent.
 *
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import type { Logger } from "../log.ts";
import { secretsEqual, SESSION_COOKIE } from "./auth.ts";
import { clientOf } from "./client_address.ts";
import { LoginLimiter, MAX_FAILURES } from "./login_limiter.ts";
import { loginPage } from "./pages.ts";
import type { AppEnv, RouteGroup } from "./route_group.ts";
import { SESSION_MAX_MS, Sessions } from "./sessions.ts";

/** Options of {@link DashboardAuth}. */
export interface DashboardAuthOptions {
  /** The token in force; undefined leaves the dashboard open (loopback only). */
  token?: string;
  log: Logger;
  /** The public base URL now: a cookie set on its host is `Secure` when it is https. */
  publicBase: () => string;
  /** The sessions and tickets (new ones when omitted). */
  sessions?: Sessions;
  /** The failure counts (a new limiter when omitted). */
  limiter?: LoginLimiter;
}

/** The dashboard's credential check and its login, logout and login-link routes. */
export class DashboardAuth {
  readonly sessions: Sessions;
  readonly #token: string | undefined;
  readonly #log: Logger;
  readonly #limiter: LoginLimiter;
  readonly #publicBase: () => string;
  readonly #logoutListeners: ((sessionId: string) => void)[] = [];

  constructor(options: DashboardAuthOptions) {
    this.#token = options.token;
    this.#log = options.log;
    this.#publicBase = options.publicBase;
    this.sessions = options.sessions ?? new Sessions();
    this.#limiter = options.limiter ?? new LoginLimiter();
  }

  /** True when the dashboard and API need a credential. */
  get required(): boolean {
    return this.#token !== undefined;
  }

  /** Middleware of the dashboard group: refuses (401, 429) a request without a credential. */
  readonly guard: MiddlewareHandler<AppEnv> = async (c, next) => {
    if (this.#token === undefined || this.#session(c)) return await next();
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header("authorization") ?? "")?.[1];
    if (bearer !== undefined) {
      const client = this.#client(c);
      this.#refuseIfLimited(c, client);
      if (secretsEqual(bearer, this.#token)) return await next();
      this.#failed(client, "a wrong bearer token");
    }
    if (c.req.path.startsWith("/api/")) {
      throw new HTTPException(401, {
        res: Response.json(
          {
            error: "this API needs the dashboard token: Authorization: Bearer <DASHBOARD_TOKEN>",
          },
          { headers: { "www-authenticate": 'Bearer realm="callscribe"' } },
        ),
      });
    }
    throw new HTTPException(401, { res: htmlResponse(loginPage()) });
  };

  /** Adds `GET|POST /login` to the public routes and `POST /logout` to the guarded ones. */
  register(publicRoutes: RouteGroup, guarded: RouteGroup): void {
    publicRoutes.get("/login", (c) => {
      if (this.#token === undefined) return c.redirect("/");
      const ticket = c.req.query("ticket");
      if (ticket === undefined) {
        return this.#session(c) ? c.redirect("/") : c.html(loginPage(), 200);
      }
      const client = this.#client(c);
      this.#refuseIfLimited(c, client);
      if (!this.sessions.redeemTicket(ticket)) {
        this.#failed(client, "a used, expired or unknown login link");
        return c.html(
          loginPage(
            "That login link was used already or has expired. Log in with the token, or restart the server for a new link.",
          ),
          401,
        );
      }
      return this.#loggedIn(c);
    });
    publicRoutes.post("/login", async (c) => {
      if (this.#token === undefined) return c.redirect("/", 303);
      const client = this.#client(c);
      this.#refuseIfLimited(c, client);
      const body = await c.req.parseBody().catch(() => ({} as Record<string, unknown>));
      const given = typeof body.token === "string" ? body.token : "";
      if (!secretsEqual(given, this.#token)) {
        this.#failed(client, "a wrong token");
        return c.html(loginPage("That token is not right."), 401);
      }
      return this.#loggedIn(c);
    });
    guarded.post("/logout", (c) => {
      const id = readCookie(c.req.header("cookie"), SESSION_COOKIE);
      if (id) {
        this.sessions.revoke(id);
        for (const listener of this.#logoutListeners) listener(id);
      }
      c.header("set-cookie", `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`);
      return c.redirect(this.#token === undefined ? "/" : "/login", 303);
    });
  }

  /** Calls `listener` with the session id (the cookie's value) of each logout. */
  onLogout(listener: (sessionId: string) => void): void {
    this.#logoutListeners.push(listener);
  }

  /** The request's session id (its cookie's value) if it names a live session. */
  sessionId(c: Context): string | undefined {
    const id = readCookie(c.req.header("cookie"), SESSION_COOKIE);
    return id !== undefined && this.#session(c) ? id : undefined;
  }

  /** A new one-time login link's ticket. */
  issueTicket(): string {
    return this.sessions.issueTicket();
  }

  #session(c: Context): boolean {
    const id = readCookie(c.req.header("cookie"), SESSION_COOKIE);
    return id !== undefined && this.sessions.touch(id);
  }

  #loggedIn(c: Context): Response {
    const id = this.sessions.create();
    const secure = this.#secure(c) ? "; Secure" : "";
    c.header(
      "set-cookie",
      `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${
        SESSION_MAX_MS / 1000
      }${secure}`,
    );
    return c.redirect("/", 303);
  }

  /** Secure on the public host when the public URL is https (a loopback cookie never leaves). */
  #secure(c: Context): boolean {
    if (new URL(c.req.url).protocol === "https:") return true;
    const base = new URL(this.#publicBase());
    const host = c.req.header("host") ?? new URL(c.req.url).host;
    const hostname = URL.canParse(`http://${host}`) ? new URL(`http://${host}`).hostname : "";
    return base.protocol === "https:" && hostname === base.hostname;
  }

  #client(c: Context): string {
    return clientOf(c);
  }

  #refuseIfLimited(c: Context, client: string): void {
    const wait = this.#limiter.retryAfter(client);
    if (wait === 0) return;
    const message = `too many wrong tokens from your address; try again in ${wait} s`;
    const headers = { "retry-after": String(wait) };
    throw new HTTPException(429, {
      res: c.req.path.startsWith("/api/")
        ? Response.json({ error: message }, { headers })
        : htmlResponse(loginPage(message), headers),
    });
  }

  #failed(client: string, what: string): void {
    const failures = this.#limiter.fail(client);
    // Each failure is logged until the client is refused, saying so once; then nothing.
    if (failures - 1 <= MAX_FAILURES - 1) {
      const refused = this.#limiter.retryAfter(client);
      this.#log.warn(
        `dashboard: refused ${what} from ${client}` +
          (refused ? `; too many in a row, so it is refused for ${refused} s` : ""),
      );
    }
  }
}

function htmlResponse(html: string, headers: Record<string, string> = {}): Response {
  return new Response(html, {
    headers: { "content-type": "text/html; charset=UTF-8", ...headers },
  });
}

/** A cookie's value from a `Cookie` header. */
function readCookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? "").split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return rest.join("=");
  }
  return undefined;
}
