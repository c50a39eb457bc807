/**
 * The TCP front of the HTTP server: `Deno.serve` never times out a
 * connection (idle, a trickled request head, a stalled client all stay open)
 * and an accept error such as `Too many open files` ends its accept loop and
 * with it the process. So the public port is ours: each connection is
 * accepted here, counted, given {@link ConnectionLimits.headerTimeoutMs} to
 * send its request head, then joined to `Deno.serve` on a loopback port and
 * closed after {@link ConnectionLimits.idleTimeoutMs} without a byte from the
 * server (WebSocket streams excepted: their idle limit is the stream's own).
 *
 * A WebSocket upgrade is marked with an id ({@link HANDOFF_HEADER}); once the
 * app accepts it, the front takes the connection back from `Deno.serve` and
 * serves the stream itself ({@link FrontWebSocket}): each media frame is then
 * one read here, not a copy over loopback and `Deno.serve`'s own read.
 *
 * Plain HTTP requests are made `Connection: close` on the way in, so every
 * request head passes through the header timeout (no idle keep-alive).
 * At the connection cap a new connection replaces the oldest one still
 * sending its head (a slow one: real clients send theirs at once); with none
 * to replace it gets a `503` and is closed. Accept errors are logged (at
 * most one line per reason per {@link REFUSAL_SUMMARY_MS}) and accepting
 * goes on.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import { RefusalLog } from "./refusal_log.ts";
import { PEER_HEADER } from "./client_address.ts";
import { FrontWebSocket } from "./front_websocket.ts";
import { HANDOFF_HEADER, type HandoffEvents, type StreamHandoff } from "./stream_handoff.ts";

/** How long a connection may take, and how many may be open. */
export interface ConnectionLimits {
  /** A request head must be complete this long after the connection opened. */
  headerTimeoutMs: number;
  /** A connection (not a WebSocket stream) the server sent nothing on for this long is closed. */
  idleTimeoutMs: number;
  /** Open connections at most, WebSocket streams included. */
  maxConnections: number;
}

/**
 * The defaults: 10 s for a request head, 10 s for its body, 60 s idle (the
 * dashboard's event streams send a keep-alive every 15 s), and 1,000
 * connections, fewer when the open-file limit is low: each connection takes
 * three descriptors (the client's, and both ends of the loopback one), and
 * calls need more for their recordings and audio.
 */
export function defaultConnectionLimits(): ConnectionLimits & { bodyTimeoutMs: number } {
  return {
    headerTimeoutMs: 10_000,
    bodyTimeoutMs: 10_000,
    idleTimeoutMs: 60_000,
    maxConnections: connectionsWithin(openFileLimit()),
  };
}

/**
 * The connections that fit in `fileLimit` descriptors: after 64 for the
 * process itself (database, recordings, ffmpeg pipes), three per connection
 * and one to spare (1,000 at most).
 */
function connectionsWithin(fileLimit: number | null, most = 1000): number {
  if (fileLimit === null) return most;
  return Math.max(8, Math.min(most, Math.floor((fileLimit - 64) / 4)));
}

/** This process's open-file limit (Linux: /proc/self/limits), or null when unknown. */
function openFileLimit(): number | null {
  try {
    const limits = Deno.readTextFileSync("/proc/self/limits");
    const soft = /^Max open files\s+(\d+)/m.exec(limits)?.[1];
    return soft === undefined ? null : Number(soft);
  } catch {
    return null;
  }
}

/** Largest request head read (request line and headers). */
export const MAX_HEAD_BYTES = 64 * 1024;

/** The read buffer of a stream the front serves (a larger message takes several reads). */
const TAKEN_READ_BYTES = 2048;

/** How often deadlines are checked. */
const SWEEP_MS = 250;

/** One accepted connection. */
interface Connection {
  client: Deno.TcpConn;
  server?: Deno.TcpConn;
  /**
   * `head` until the request head is complete, then `piped`; `stream` after a `101` from
   * `Deno.serve`; `taken` once the app took the stream over (the front serves its frames).
   */
  phase: "head" | "piped" | "stream" | "taken";
  /** The stream the front serves itself, once taken. */
  taken?: FrontWebSocket;
  /** Closed at this time (performance.now()) unless moved on. */
  deadline: number;
  closed: boolean;
  /** Withdraws this connection's handoff offer (an upgrade not yet taken). */
  withdraw?: () => void;
  /** The server's final answer has begun (`refused`: a 4xx or 5xx): what the client still sends is not forwarded. */
  answered: false | "answered" | "refused";
}

/** Options of {@link ConnectionFront.start}. */
export interface ConnectionFrontOptions extends ConnectionLimits {
  hostname: string;
  /** 0 picks a free port. */
  port: number;
  /** Where `Deno.serve` listens (loopback). */
  target: { hostname: string; port: number };
  /** Where the app takes over the WebSocket streams it accepts; none: they stay piped. */
  handoff?: StreamHandoff;
  log: Logger;
}

/** The public listener in front of `Deno.serve`. */
export class ConnectionFront {
  #listener: Deno.TcpListener;
  #options: ConnectionFrontOptions;
  #open = new Set<Connection>();
  /** Connections still sending their request head, oldest first. */
  #heads = new Set<Connection>();
  #sweeper: ReturnType<typeof setInterval>;
  #refusals: RefusalLog;
  #accepting: Promise<void>;
  #stopped = false;

  private constructor(listener: Deno.TcpListener, options: ConnectionFrontOptions) {
    this.#listener = listener;
    this.#options = options;
    this.#refusals = new RefusalLog(options.log);
    this.#sweeper = setInterval(() => this.#sweep(), SWEEP_MS);
    this.#accepting = this.#acceptLoop();
  }

  /**
   * Listens on `hostname:port` and starts accepting. A cap above what the
   * open-file limit allows is lowered (with a warning): past it, the server
   * behind the front could not accept and would stop.
   */
  static start(options: ConnectionFrontOptions): ConnectionFront {
    const fileLimit = openFileLimit();
    const ceiling = connectionsWithin(fileLimit, Infinity);
    if (options.maxConnections > ceiling) {
      options.log.warn(
        `MAX_CONNECTIONS=${options.maxConnections} needs about ${
          options.maxConnections * 4 + 64
        } open files, and this process may open ${fileLimit} (ulimit -n): using ${ceiling}`,
      );
      options = { ...options, maxConnections: ceiling };
    }
    const listener = Deno.listen({ hostname: options.hostname, port: options.port });
    return new ConnectionFront(listener, options);
  }

  /** The port the front listens on. */
  get port(): number {
    return (this.#listener.addr as Deno.NetAddr).port;
  }

  /** Joins the connections accepted from now on to `target` (the server behind was started again). */
  retarget(target: ConnectionFrontOptions["target"]): void {
    this.#options = { ...this.#options, target };
  }

  /** Connections open now. */
  get openConnections(): number {
    return this.#open.size;
  }

  /** Stops accepting; open connections go on until {@link closeAll}. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    try {
      this.#listener.close();
    } catch {
      // already closed
    }
    await this.#accepting;
  }

  /** Closes every open connection and stops the deadline checks. */
  closeAll(): void {
    clearInterval(this.#sweeper);
    for (const connection of [...this.#open]) this.#close(connection);
    this.#refusals.flush();
  }

  async #acceptLoop(): Promise<void> {
    let backoffMs = 10;
    while (!this.#stopped) {
      let client: Deno.TcpConn;
      try {
        client = await this.#listener.accept();
        backoffMs = 10;
      } catch (error) {
        if (this.#stopped || error instanceof Deno.errors.BadResource) return;
        // Out of file descriptors, most likely: wait for some to close, never end the process.
        this.#refusals.note(`cannot accept connections: ${(error as Error).message}`);
        await new Promise((resolve) => setTimeout(resolve, backoffMs));
        backoffMs = Math.min(1000, backoffMs * 2);
        continue;
      }
      this.#admit(client);
    }
  }

  #admit(client: Deno.TcpConn): void {
    const { maxConnections, headerTimeoutMs } = this.#options;
    if (this.#open.size >= maxConnections) {
      const slowest = this.#heads.values().next().value;
      if (slowest) {
        this.#refusals.note(
          `closed connections still sending their request head at the cap (MAX_CONNECTIONS=${maxConnections})`,
        );
        this.#close(slowest);
      } else {
        this.#refusals.note(
          `refused connections: ${maxConnections} open (MAX_CONNECTIONS)`,
        );
        refuse(client, 503, "server busy: too many open connections; try again shortly");
        return;
      }
    }
    const connection: Connection = {
      client,
      phase: "head",
      deadline: performance.now() + headerTimeoutMs,
      closed: false,
      answered: false,
    };
    this.#open.add(connection);
    this.#heads.add(connection);
    this.#serve(connection).catch(() => this.#close(connection));
  }

  async #serve(connection: Connection): Promise<void> {
    const head = await readHead(connection);
    if (connection.closed) return;
    this.#heads.delete(connection);
    if (head === "too large") {
      this.#refusals.note(`refused request heads over ${MAX_HEAD_BYTES} bytes`);
      return this.#refuse(connection, 431, "request head too large");
    }
    if (head === null) return this.#close(connection);
    const { hostname, port } = this.#options.target;
    try {
      connection.server = await Deno.connect({ hostname, port });
    } catch (error) {
      this.#refusals.note(`cannot reach the HTTP server: ${(error as Error).message}`);
      return this.#refuse(connection, 503, "server busy; try again shortly");
    }
    if (connection.closed) return this.#close(connection);
    // Frames go on at once, as they would without the front.
    connection.server.setNoDelay(true);
    connection.client.setNoDelay(true);
    connection.phase = "piped";
    this.#touch(connection);
    let bytes = head.bytes;
    const handoff = this.#options.handoff;
    if (head.upgrade && handoff) {
      const id = crypto.randomUUID();
      handoff.offer(id, (key, events) => this.#takeOver(connection, key, events));
      connection.withdraw = () => handoff.withdraw(id);
      bytes = withHeader(bytes, `${HANDOFF_HEADER}: ${id}`);
    }
    await writeAll(connection.server, bytes);
    const upgrade = head.upgrade;
    await Promise.all([
      this.#pump(connection, connection.client, connection.server, false),
      this.#pump(connection, connection.server, connection.client, upgrade),
    ]);
    this.#close(connection);
  }

  /**
   * The app accepted this connection's upgrade and serves it from here: the
   * connection to `Deno.serve` is closed, and the client's bytes go to the
   * returned stream from now on.
   */
  #takeOver(connection: Connection, key: string, events: HandoffEvents): FrontWebSocket | null {
    if (connection.closed || connection.phase !== "piped") return null;
    connection.phase = "taken";
    connection.withdraw = undefined;
    try {
      connection.server?.close();
    } catch {
      // already closed
    }
    const client = connection.client;
    connection.taken = new FrontWebSocket(key, {
      ...events,
      write: (bytes) => writeAll(client, bytes),
      end: () => this.#close(connection),
    });
    return connection.taken;
  }

  /** Copies `from` to `to` until either ends; a `101` answer makes the connection a stream. */
  async #pump(
    connection: Connection,
    from: Deno.Conn,
    to: Deno.Conn,
    watchUpgrade: boolean,
  ): Promise<void> {
    let buffer = new Uint8Array(16 * 1024);
    try {
      for (;;) {
        const n = await from.read(buffer);
        if (connection.phase === "taken") {
          // The app took the stream: the client's bytes are its frames; `Deno.serve` is gone.
          if (from === connection.server) return;
          if (n === null) break;
          connection.taken!.receive(buffer.subarray(0, n));
          // A media frame is a few hundred bytes: a small buffer for every later read (memory per call).
          if (buffer.length > TAKEN_READ_BYTES) buffer = new Uint8Array(TAKEN_READ_BYTES);
          continue;
        }
        if (n === null) break;
        if (from === connection.server) {
          if (watchUpgrade) {
            watchUpgrade = false;
            if (startsWith(buffer, n, HTTP_101)) connection.phase = "stream";
          }
          if (connection.phase !== "stream") {
            // Idle means no answer: a client trickling its body after its 408 has had its answer.
            this.#touch(connection);
            // What the client sends after the answer began is not forwarded; after a refusal
            // (the rest of a body answered 408 or 413) it ends the connection.
            if (!connection.answered && !startsWith(buffer, n, HTTP_1XX)) {
              connection.answered = startsWith(buffer, n, HTTP_4XX) ||
                  startsWith(buffer, n, HTTP_5XX)
                ? "refused"
                : "answered";
            }
          }
        } else if (connection.answered === "refused") {
          // A body still coming after its refusal: the client has had its answer (a moment to
          // finish writing it, which is one small chunk).
          await new Promise((resolve) => setTimeout(resolve, 100));
          break;
        } else if (connection.answered) {
          continue;
        }
        await writeAll(to, buffer.subarray(0, n));
      }
      // Either side gone ends both (Deno.serve, too, takes a client's half-close for gone).
      this.#close(connection);
    } catch {
      // The connection to Deno.serve of a taken stream was closed on purpose.
      if (connection.phase !== "taken" || from !== connection.server) this.#close(connection);
    }
  }

  #touch(connection: Connection): void {
    connection.deadline = performance.now() + this.#options.idleTimeoutMs;
  }

  #sweep(): void {
    const now = performance.now();
    for (const connection of this.#open) {
      if (connection.phase === "stream" || connection.phase === "taken") continue;
      if (now < connection.deadline) continue;
      if (connection.phase === "head") {
        this.#refusals.note(
          `closed connections that sent no complete request head within ${this.#options.headerTimeoutMs} ms (HTTP_HEADER_TIMEOUT)`,
        );
        this.#refuse(connection, 408, "request head not received in time");
      } else {
        this.#refusals.note(
          `closed connections idle for ${this.#options.idleTimeoutMs} ms (HTTP_IDLE_TIMEOUT)`,
        );
        this.#close(connection);
      }
    }
  }

  #refuse(connection: Connection, status: number, message: string): void {
    this.#forget(connection);
    refuse(connection.client, status, message);
    try {
      connection.server?.close();
    } catch {
      // already closed
    }
  }

  #close(connection: Connection): void {
    this.#forget(connection);
    // A taken stream hears that its connection is gone (once; it then closes nothing more).
    connection.taken?.ended();
    for (const conn of [connection.client, connection.server]) {
      try {
        conn?.close();
      } catch {
        // already closed
      }
    }
  }

  #forget(connection: Connection): void {
    connection.closed = true;
    connection.withdraw?.();
    connection.withdraw = undefined;
    this.#open.delete(connection);
    this.#heads.delete(connection);
  }
}

/** A complete request head: its bytes as forwarded, and whether it asks for a WebSocket. */
interface Head {
  bytes: Uint8Array;
  upgrade: boolean;
}

const CRLFCRLF = [13, 10, 13, 10];

/**
 * Reads until the end of the request head. Returns it (with whatever body
 * bytes came along), `"too large"`, or null when the client went away.
 */
async function readHead(connection: Connection): Promise<Head | "too large" | null> {
  let buffer = new Uint8Array(4096);
  let length = 0;
  for (;;) {
    if (length === buffer.length) {
      if (buffer.length >= MAX_HEAD_BYTES) return "too large";
      const grown = new Uint8Array(Math.min(MAX_HEAD_BYTES, buffer.length * 2));
      grown.set(buffer);
      buffer = grown;
    }
    let n: number | null;
    try {
      n = await connection.client.read(buffer.subarray(length));
    } catch {
      return null;
    }
    if (n === null || connection.closed) return null;
    const searchFrom = Math.max(0, length - 3);
    length += n;
    const end = indexOf(buffer, CRLFCRLF, searchFrom, length);
    if (end >= 0) {
      return rewriteHead(
        buffer.subarray(0, end + 4),
        buffer.subarray(end + 4, length),
        peerOf(connection.client),
      );
    }
  }
}

/** The socket's peer address, as {@link PEER_HEADER} passes it on. */
function peerOf(client: Deno.Conn): string {
  const address = client.remoteAddr;
  return address.transport === "tcp" ? address.hostname : "local";
}

function indexOf(buffer: Uint8Array, needle: number[], from: number, to: number): number {
  outer: for (let i = from; i + needle.length <= to; i++) {
    for (let j = 0; j < needle.length; j++) if (buffer[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/**
 * An HTTP/1.x request that is not a WebSocket upgrade gets `Connection:
 * close`: the next request comes on a new connection, through the header
 * timeout again. Every request names its peer in {@link PEER_HEADER}.
 */
function rewriteHead(head: Uint8Array, rest: Uint8Array, peer: string): Head {
  const text = new TextDecoder("latin1").decode(head);
  const lines = text.slice(0, -4).split("\r\n");
  const upgrade = lines.some((line) => /^upgrade\s*:\s*websocket\s*$/i.test(line));
  const closes = !upgrade && / HTTP\/1\.[01]$/.test(lines[0]);
  // The peer and the handoff are ours to name: a client's own lines of either are dropped.
  const kept = lines.filter((line) =>
    !PEER_LINE.test(line) && !(closes && /^(connection|keep-alive)\s*:/i.test(line))
  );
  kept.push(`${PEER_HEADER}: ${peer}`);
  if (closes) kept.push("connection: close");
  return { bytes: concat(latin1(`${kept.join("\r\n")}\r\n\r\n`), rest), upgrade };
}

const PEER_LINE = new RegExp(`^(${PEER_HEADER}|${HANDOFF_HEADER})\\s*:`, "i");

/** `head` (ending in an empty line) with one more header line. */
function withHeader(head: Uint8Array, line: string): Uint8Array {
  const end = indexOf(head, CRLFCRLF, 0, head.length);
  return concat(concat(head.subarray(0, end + 2), latin1(`${line}\r\n`)), head.subarray(end + 2));
}

function latin1(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

const HTTP_101 = latin1("HTTP/1.1 101");
const HTTP_1XX = latin1("HTTP/1.1 1");
const HTTP_4XX = latin1("HTTP/1.1 4");
const HTTP_5XX = latin1("HTTP/1.1 5");

function startsWith(buffer: Uint8Array, n: number, prefix: Uint8Array): boolean {
  if (n < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (buffer[i] !== prefix[i]) return false;
  return true;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await conn.write(bytes.subarray(written));
}

const REASONS: Record<number, string> = {
  408: "Request Timeout",
  431: "Request Header Fields Too Large",
  503: "Service Unavailable",
};

/** Answers `status` with a one-line text body, then closes (without waiting on the client). */
function refuse(client: Deno.Conn, status: number, message: string): void {
  const body = `${message}\n`;
  const response = latin1(
    `HTTP/1.1 ${status} ${REASONS[status]}\r\ncontent-type: text/plain; charset=utf-8\r\n` +
      `content-length: ${body.length}\r\nconnection: close\r\n` +
      (status === 503 ? "retry-after: 5\r\n" : "") + `\r\n${body}`,
  );
  writeAll(client, response).catch(() => {}).finally(() => {
    try {
      client.close();
    } catch {
      // already closed
    }
  });
}
