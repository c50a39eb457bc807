/**
 * Request bodies within bounds, read before any route: at most `maxBytes`
 * (`413`, unread when `Content-Length` says so), and complete within
 * `timeoutMs` of the request head (`408`, and the connection is closed): a
 * client that trickles its body holds no connection and no memory for long.
 * Twilio's webhooks are a few KiB of form, sent at once.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";

/** Options of {@link boundedBody}. */
export interface BodyBounds {
  maxBytes: number;
  timeoutMs: number;
}

/** The middleware; the body is buffered and handed on (`c.req` reads it as usual). */
export function boundedBody(bounds: BodyBounds): MiddlewareHandler {
  const { maxBytes, timeoutMs } = bounds;
  const tooLarge = `request body over ${maxBytes} bytes`;
  return async (c, next) => {
    const body = c.req.raw.body;
    if (!body) return await next();
    const declared = c.req.header("content-length");
    if (declared !== undefined && !c.req.header("transfer-encoding")) {
      if (Number(declared) > maxBytes) return c.text(tooLarge, 413);
    }
    const reader = body.getReader();
    const expired = Promise.withResolvers<"expired">();
    const timer = setTimeout(() => expired.resolve("expired"), timeoutMs);
    const chunks: Uint8Array[] = [];
    let size = 0;
    try {
      for (;;) {
        const result = await Promise.race([reader.read(), expired.promise]);
        if (result === "expired") {
          reader.cancel().catch(() => {});
          return c.text(`request body not received within ${timeoutMs} ms`, 408, {
            connection: "close",
          });
        }
        if (result.done) break;
        size += result.value.length;
        if (size > maxBytes) {
          reader.cancel().catch(() => {});
          return c.text(tooLarge, 413);
        }
        chunks.push(result.value);
      }
    } catch {
      return c.text("the request body could not be read", 400);
    } finally {
      clearTimeout(timer);
    }
    const bytes = new Uint8Array(size);
    let offset = 0;
    for (const chunk of chunks) {
      bytes.set(chunk, offset);
      offset += chunk.length;
    }
    // A new request, not `new Request(c.req.raw, …)`: that would read the original's signal,
    // which Deno.serve then warns about.
    const { method, headers, url } = c.req.raw;
    c.req.raw = new Request(url, { method, headers, body: bytes });
    return await next();
  };
}
