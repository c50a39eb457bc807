/**
 * A local stand-in for a tunnel (ngrok, Cloudflare Tunnel) or a user's own
 * HTTPS reverse proxy, for end-to-end tests: it ends TLS for a public name
 * (`tunnel.callscribe.test`) with a certificate from `tests/fixtures/tunnel_tls`,
 * passes the public `Host` through untouched, adds `X-Forwarded-For` and
 * `X-Forwarded-Proto`, and forwards the bytes to the server on 127.0.0.1, so
 * WebSocket upgrades and event streams pass as they do through a tunnel.
 * Like a tunnel, it delivers every client from 127.0.0.1.
 *
 * The public name resolves nowhere, and Deno's fetch cannot be told where a
 * name is. So the tunnel also runs a tiny HTTP `CONNECT` proxy that plays
 * DNS: it opens `tunnel.callscribe.test:<port>` to the tunnel and refuses
 * every other name. Deno programs use it with `HTTPS_PROXY` (fetch and
 * WebSocket both honor it) and trust the test CA with `DENO_CERT`; the TLS
 * session, its SNI and the certificate check are end to end, as on the
 * internet. Chromium maps the name with `--host-resolver-rules` and trusts
 * exactly the tunnel's key with `--ignore-certificate-errors-spki-list`.
 *
 * @module
 */
import { fileURLToPath } from "node:url";

const FIXTURES = new URL("./fixtures/tunnel_tls/", import.meta.url);

/** The tunnel's public host name (resolved by {@link TlsTunnel.resolverUrl} only). */
export const TUNNEL_HOSTNAME = "tunnel.callscribe.test";

/** A running tunnel. */
export interface TlsTunnel {
  /** `https://tunnel.callscribe.test:<port>`: the server's PUBLIC_URL. */
  publicUrl: string;
  /** The CA that signed the tunnel's certificate (a PEM file, for `DENO_CERT`). */
  caFile: string;
  /** `http://127.0.0.1:<port>`: the name-resolving CONNECT proxy, for `HTTPS_PROXY`. */
  resolverUrl: string;
  /** Environment for a Deno subprocess that reaches the public URL the way the internet does. */
  clientEnv: Record<string, string>;
  /** Chromium flags: the public name maps to 127.0.0.1, and the tunnel's key is trusted. */
  chromiumArgs: string[];
  /** How many connections the TLS side accepted. */
  connections: number;
  close(): Promise<void>;
}

const HEAD_END = new TextEncoder().encode("\r\n\r\n");
const MAX_HEAD = 64 * 1024;

function indexOfHeadEnd(bytes: Uint8Array): number {
  outer: for (let i = 0; i + HEAD_END.length <= bytes.length; i++) {
    for (let j = 0; j < HEAD_END.length; j++) if (bytes[i + j] !== HEAD_END[j]) continue outer;
    return i;
  }
  return -1;
}

/** Reads a request or CONNECT head; returns it and the bytes read past it, or null at EOF. */
async function readHead(conn: Deno.Conn): Promise<{ head: string; rest: Uint8Array } | null> {
  let bytes = new Uint8Array(0);
  const chunk = new Uint8Array(16 * 1024);
  while (bytes.length < MAX_HEAD) {
    const end = indexOfHeadEnd(bytes);
    if (end >= 0) {
      return {
        head: new TextDecoder().decode(bytes.subarray(0, end)),
        rest: bytes.subarray(end + HEAD_END.length),
      };
    }
    const n = await conn.read(chunk);
    if (n === null) return null;
    const joined = new Uint8Array(bytes.length + n);
    joined.set(bytes);
    joined.set(chunk.subarray(0, n), bytes.length);
    bytes = joined;
  }
  return null;
}

/** Copies both ways until either side ends, then closes both. */
async function splice(a: Deno.Conn, b: Deno.Conn): Promise<void> {
  await Promise.allSettled([
    a.readable.pipeTo(b.writable),
    b.readable.pipeTo(a.writable),
  ]);
  for (const conn of [a, b]) {
    try {
      conn.close();
    } catch {
      // Already closed by its stream.
    }
  }
}

/**
 * The request head as the tunnel forwards it: Host untouched, the client
 * appended to `X-Forwarded-For`, `X-Forwarded-Proto: https`, and one request
 * per connection (the forwarded headers are only added to a head this proxy reads).
 */
function forwardedHead(head: string, client: string): string {
  const [requestLine, ...fields] = head.split("\r\n");
  const upgrade = fields.some((f) => /^upgrade:\s*websocket/i.test(f));
  const earlier = fields.find((f) => /^x-forwarded-for:/i.test(f))?.replace(/^[^:]*:\s*/, "");
  const kept = fields.filter((f) =>
    !/^(x-forwarded-for|x-forwarded-proto):/i.test(f) &&
    (upgrade || !/^connection:/i.test(f))
  );
  kept.push(`X-Forwarded-For: ${earlier ? `${earlier}, ${client}` : client}`);
  kept.push("X-Forwarded-Proto: https");
  if (!upgrade) kept.push("Connection: close");
  return [requestLine, ...kept].join("\r\n") + "\r\n\r\n";
}

/** Starts the tunnel in front of `target` (`http://127.0.0.1:<port>`). */
export async function startTlsTunnel(target: string): Promise<TlsTunnel> {
  const upstream = new URL(target);
  const tls = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: await Deno.readTextFile(new URL("tunnel.pem", FIXTURES)),
    key: await Deno.readTextFile(new URL("tunnel.key", FIXTURES)),
  });
  const tlsPort = tls.addr.port;
  const resolver = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.Conn>();
  const track = (conn: Deno.Conn) => {
    open.add(conn);
    return conn;
  };

  const tunnel: TlsTunnel = {
    publicUrl: `https://${TUNNEL_HOSTNAME}:${tlsPort}`,
    caFile: fileURLToPath(new URL("ca.pem", FIXTURES)),
    resolverUrl: `http://127.0.0.1:${resolver.addr.port}`,
    clientEnv: {},
    chromiumArgs: [
      `--host-resolver-rules=MAP ${TUNNEL_HOSTNAME} 127.0.0.1`,
      `--ignore-certificate-errors-spki-list=${await spkiHash()}`,
    ],
    connections: 0,
    async close() {
      tls.close();
      resolver.close();
      for (const conn of open) {
        try {
          conn.close();
        } catch {
          // Closed already.
        }
      }
      await Promise.allSettled([accepting, resolving]);
    },
  };
  tunnel.clientEnv = {
    HTTPS_PROXY: tunnel.resolverUrl,
    NO_PROXY: "127.0.0.1,localhost",
    DENO_CERT: tunnel.caFile,
  };

  const forward = async (client: Deno.TlsConn) => {
    try {
      const read = await readHead(client);
      if (!read) return;
      const server = track(
        await Deno.connect({ hostname: upstream.hostname, port: +upstream.port }),
      );
      const head = forwardedHead(read.head, (client.remoteAddr as Deno.NetAddr).hostname);
      const writer = server.writable.getWriter();
      await writer.write(new TextEncoder().encode(head));
      if (read.rest.length) await writer.write(read.rest);
      writer.releaseLock();
      await splice(client, server);
    } catch {
      // A client or the server went away mid-request; a tunnel drops that connection only.
    }
  };
  const accepting = (async () => {
    for await (const client of tls) {
      tunnel.connections++;
      forward(track(client) as Deno.TlsConn);
    }
  })().catch(() => {});

  // The CONNECT proxy that plays DNS for the public name, and for nothing else.
  const connect = async (client: Deno.Conn) => {
    try {
      const read = await readHead(client);
      const authority = read?.head.match(/^CONNECT (\S+) HTTP\/1\.[01]/)?.[1];
      if (authority !== `${TUNNEL_HOSTNAME}:${tlsPort}`) {
        await client.write(new TextEncoder().encode("HTTP/1.1 502 Bad Gateway\r\n\r\n"));
        client.close();
        return;
      }
      const server = track(await Deno.connect({ hostname: "127.0.0.1", port: tlsPort }));
      await client.write(new TextEncoder().encode("HTTP/1.1 200 Connection established\r\n\r\n"));
      if (read!.rest.length) await server.write(read!.rest);
      await splice(client, server);
    } catch {
      // As above.
    }
  };
  const resolving = (async () => {
    for await (const client of resolver) connect(track(client));
  })().catch(() => {});
  return tunnel;
}

/** Base64 SHA-256 of the tunnel certificate's public key, as Chromium's SPKI list wants it. */
async function spkiHash(): Promise<string> {
  const pem = await Deno.readTextFile(new URL("tunnel.key", FIXTURES));
  const der = Uint8Array.from(
    atob(pem.replace(/-----[^-]+-----|\s/g, "")),
    (c) => c.charCodeAt(0),
  );
  const key = await crypto.subtle.importKey(
    "pkcs8",
    der,
    { name: "ECDSA", namedCurve: "P-256" },
    true,
    ["sign"],
  );
  // The public half of a private key: export as JWK, drop d, re-import as public.
  const { d: _d, ...jwk } = await crypto.subtle.exportKey("jwk", key);
  const publicKey = await crypto.subtle.importKey(
    "jwk",
    { ...jwk, key_ops: ["verify"] },
    { name: "ECDSA", namedCurve: "P-256" },
    true,
    ["verify"],
  );
  const spki = await crypto.subtle.exportKey("spki", publicKey);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", spki));
  return btoa(String.fromCharCode(...digest));
}
