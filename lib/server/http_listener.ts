/**
 * The `Deno.serve` adapter: serves a fetch handler (the Hono app) on a
 * loopback port of its own, behind a {@link ConnectionFront} on the public
 * port (whose limits protect it). Should `Deno.serve` stop all the same (its
 * accept loop ends on any accept error, e.g. out of file descriptors), it is
 * started again on a new port and the front sent there.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import { sleep } from "../async/sleep.ts";
import { ConnectionFront, type ConnectionLimits } from "./connection_front.ts";
import type { StreamHandoff } from "./stream_handoff.ts";

/** A listening HTTP server. */
export interface HttpListener {
  /** The public port (the one asked for, or the free one picked for 0). */
  readonly port: number;
  /** Stops accepting, lets requests in flight finish, then closes every connection. */
  stop(): Promise<void>;
}

/** Listens on `host:port` and answers every request with `fetch`. */
export async function listenHttp(options: {
  host: string;
  /** 0 picks a free port. */
  port: number;
  fetch: (request: Request) => Response | Promise<Response>;
  limits: ConnectionLimits;
  /** Where the app takes over the media streams it accepts (they are then served by the front). */
  handoff?: StreamHandoff;
  log: Logger;
}): Promise<HttpListener> {
  const { log } = options;
  let stopping = false;
  let front: ConnectionFront | undefined;
  const serveHttp = async (): Promise<{ server: Deno.HttpServer; port: number }> => {
    const ready = Promise.withResolvers<number>();
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      onListen: ({ port }) => ready.resolve(port),
      onError: (error) => {
        log.error(`request failed: ${(error as Error).message}`);
        return new Response("internal error", { status: 500 });
      },
    }, options.fetch);
    server.finished.catch(async (error) => {
      if (stopping) return;
      log.error(`the HTTP server stopped (${error.message}); starting it again`);
      for (let attempt = 1; !stopping; attempt++) {
        await sleep(Math.min(5000, 100 * attempt));
        try {
          httpServer = await serveHttp();
          return;
        } catch (error) {
          log.error(`cannot start the HTTP server again: ${(error as Error).message}`);
        }
      }
    });
    const port = await ready.promise;
    front?.retarget({ hostname: "127.0.0.1", port });
    return { server, port };
  };
  let httpServer = await serveHttp();
  try {
    front = ConnectionFront.start({
      hostname: options.host,
      port: options.port,
      target: { hostname: "127.0.0.1", port: httpServer.port },
      handoff: options.handoff,
      ...options.limits,
      log,
    });
  } catch (error) {
    stopping = true;
    await httpServer.server.shutdown();
    throw error;
  }
  const publicFront = front;
  return {
    port: publicFront.port,
    async stop() {
      stopping = true;
      await publicFront.stop();
      await httpServer.server.shutdown();
      publicFront.closeAll();
    },
  };
}
