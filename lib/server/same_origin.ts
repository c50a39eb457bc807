/**
 * The cross-site request check: a state-changing request (POST, PUT, PATCH,
 * DELETE) from a browser must come from this server's own pages, with or
 * without a dashboard token. A browser names the page's origin (`Origin`)
 * and whether it is this site (`Sec-Fetch-Site`) on such requests, and a
 * page cannot forge either; a request carrying neither is no browser's
 * (curl, `deno task call`) and is left to the credential check. Twilio's
 * webhooks are not checked here: no browser sends them, and they are
 * signature-checked.
 *
 * @module
 */
import { HTTPException } from "hono/http-exception";
import type { Context, MiddlewareHandler } from "hono";

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * Refuses (403) a state-changing request a browser sent from another site. This server's pages
 * are on the request's own Host, or on `publicOrigins` (the public URL, when a proxy rewrites
 * Host).
 */
export function sameOrigin(publicOrigins: () => string[]): MiddlewareHandler {
  return async (c, next) => {
    if (SAFE_METHODS.has(c.req.method)) return await next();
    const problem = crossSiteProblem(c, publicOrigins());
    if (problem) {
      const message = `cross-site ${c.req.method} refused: ${problem}; ` +
        "use this dashboard's own page (or a client that sends no Origin, such as curl)";
      throw new HTTPException(403, {
        res: c.req.path.startsWith("/api/")
          ? Response.json({ error: message })
          : new Response(message, { headers: { "content-type": "text/plain; charset=utf-8" } }),
      });
    }
    await next();
  };
}

/**
 * Why a browser's request comes from another site (its `Sec-Fetch-Site` or `Origin`), or null
 * when it comes from this server's pages or from no browser.
 */
export function crossSiteProblem(c: Context, publicOrigins: string[]): string | null {
  const site = c.req.header("sec-fetch-site");
  if (site !== undefined && site !== "same-origin" && site !== "none") {
    return `Sec-Fetch-Site is ${site.slice(0, 20)}`;
  }
  const origin = c.req.header("origin");
  if (origin === undefined) return null;
  const from = URL.canParse(origin) ? new URL(origin) : null;
  if (!from || (from.protocol !== "http:" && from.protocol !== "https:")) {
    return "the Origin is not a web page's";
  }
  if (publicOrigins.includes(from.origin)) return null;
  const host = c.req.header("host") ?? new URL(c.req.url).host;
  const to = URL.canParse(`${from.protocol}//${host}`)
    ? new URL(`${from.protocol}//${host}`)
    : null;
  if (to?.host !== from.host) return "the page is on another site";
  return null;
}
