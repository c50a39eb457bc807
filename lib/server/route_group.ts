/**
 * Routes in groups, each with its own middleware: every route of a group
 * runs that group's middleware first (per route, so a group's checks never
 * leak onto another group's paths). The app is made of groups only; a
 * route registered on the app itself, outside every group, is found by
 * {@link routesInNoGroup} (a test fails on it), so a route added later
 * cannot fall through the checks as `/api/public-url` once did.
 *
 * @module
 */
import { Hono } from "hono";
import type { Handler, MiddlewareHandler } from "hono";

/** What the app's handlers share through the context. */
export type AppEnv = {
  Variables: {
    /** A Twilio webhook's form fields, parsed and signature-checked by the Twilio group. */
    twilioParams: Record<string, string>;
    /** This response's CSP nonce for `<style>` elements (the player's shadow DOM). */
    styleNonce: string;
  };
};

const HTTP_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"] as const;
/** A method a group route answers. */
export type RouteMethod = (typeof HTTP_METHODS)[number];

/** A named set of routes sharing middleware. */
export class RouteGroup {
  /** The routes, as a Hono sub-app mounted at `/`. */
  readonly app: Hono<AppEnv> = new Hono<AppEnv>();
  readonly #routes = new Set<string>();

  /** `middleware` runs, in order, before every route of the group. */
  constructor(readonly name: string, readonly middleware: MiddlewareHandler<AppEnv>[]) {}

  /** Adds a route. */
  on<P extends string>(method: RouteMethod, path: P, handler: Handler<AppEnv, P>): this {
    this.#routes.add(`${method} ${path}`);
    // Hono's overloads do not type a spread of middleware; each runs before the handler.
    (this.app.on as (method: string, path: string, ...handlers: unknown[]) => unknown)(
      method,
      path,
      ...this.middleware,
      handler,
    );
    return this;
  }

  /** Adds a `GET` route. */
  get<P extends string>(path: P, handler: Handler<AppEnv, P>): this {
    return this.on("GET", path, handler);
  }

  /** Adds a `POST` route. */
  post<P extends string>(path: P, handler: Handler<AppEnv, P>): this {
    return this.on("POST", path, handler);
  }

  /** Adds a `DELETE` route. */
  delete<P extends string>(path: P, handler: Handler<AppEnv, P>): this {
    return this.on("DELETE", path, handler);
  }

  /** True when the group has this route. */
  has(method: string, path: string): boolean {
    return this.#routes.has(`${method} ${path}`);
  }
}

const GROUPS = new WeakMap<Hono<AppEnv>, { groups: RouteGroup[]; appWide: Set<unknown> }>();

/**
 * Mounts the groups on `app` (after its app-wide middleware, such as the
 * Host check, which runs for every request) and remembers them for
 * {@link routesInNoGroup}.
 */
export function mountGroups(
  app: Hono<AppEnv>,
  appWide: MiddlewareHandler<AppEnv>[],
  groups: RouteGroup[],
): void {
  for (const middleware of appWide) app.use("*", middleware);
  for (const group of groups) app.route("/", group.app);
  GROUPS.set(app, { groups, appWide: new Set(appWide) });
}

/** The routes of `app` that are in no group (`METHOD path`); an empty list is the rule. */
export function routesInNoGroup(app: Hono<AppEnv>): string[] {
  const known = GROUPS.get(app);
  return app.routes.filter((route) =>
    !known?.appWide.has(route.handler) &&
    !known?.groups.some((group) => group.has(route.method, route.path))
  ).map((route) => `${route.method} ${route.path}`);
}
