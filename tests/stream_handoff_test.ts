/**
 * Media streams through the connection front as the server runs them
 * (`listenHttp` with a {@link StreamHandoff}, a real WebSocket client over
 * TCP): a stream the app accepts is served by the front itself, never by the
 * fallback upgrade; a request the app refuses is answered as usual; a
 * client's own handoff header is dropped; a request that did not come
 * through the front is upgraded by the fallback.
 */
import assert from "node:assert/strict";
import { listenHttp } from "../lib/server/http_listener.ts";
import { StreamHandoff } from "../lib/server/stream_handoff.ts";
import { upgradeThroughFront } from "../lib/server/front_upgrade.ts";
import { upgradeDenoWebSocket } from "../lib/server/deno_websocket.ts";
import type { StreamSocket, UpgradeStream } from "../lib/server/stream_socket.ts";
import { memoryLogger } from "../lib/log.ts";
import { defaultConnectionLimits } from "../lib/server/connection_front.ts";

/** A server whose `/stream` route echoes each message back upper-cased and records what it saw. */
async function echoServer() {
  const handoff = new StreamHandoff();
  const seen = {
    fallbackUpgrades: 0,
    messages: [] as string[],
    /** Messages the listener read from their bytes (the media fast path's way). */
    readFromBytes: [] as string[],
    oversized: [] as number[],
    closes: 0,
    closedAfterListener: 0,
    handoffHeaders: [] as Array<string | null>,
  };
  const fallback: UpgradeStream = (request, make, onClosed) => {
    seen.fallbackUpgrades++;
    return upgradeDenoWebSocket(request, make, onClosed);
  };
  const upgrade = upgradeThroughFront(handoff, fallback);
  const fetch = (request: Request): Response => {
    seen.handoffHeaders.push(request.headers.get("x-callscribe-handoff"));
    const url = new URL(request.url);
    if (url.pathname === "/refused") return new Response("no", { status: 403 });
    return upgrade(request, (socket: StreamSocket) => ({
      onMessage(data) {
        seen.messages.push(String(data));
        socket.send(String(data).toUpperCase());
        if (data === "bye") socket.close(1000, "bye received");
      },
      // Takes messages starting with "raw:" from their bytes, as media messages are taken.
      readText(bytes) {
        const message = new TextDecoder().decode(bytes);
        if (!message.startsWith("raw:")) return false;
        seen.readFromBytes.push(message);
        socket.send(message.toUpperCase());
        return true;
      },
      onOversized(bytes) {
        seen.oversized.push(bytes);
        socket.close(1009, "too big");
      },
      onClose() {
        seen.closes++;
      },
    }), () => seen.closedAfterListener++);
  };
  const listener = await listenHttp({
    host: "127.0.0.1",
    port: 0,
    fetch,
    limits: defaultConnectionLimits(),
    handoff,
    log: memoryLogger(),
  });
  return { listener, seen, fetch, url: `ws://127.0.0.1:${listener.port}` };
}

function until(condition: () => boolean, what: string, ms = 5000): Promise<void> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const check = () => {
      if (condition()) return resolve();
      if (Date.now() - started > ms) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(check, 10);
    };
    check();
  });
}

Deno.test("a stream accepted through the front is served by the front: messages both ways, close heard once", async () => {
  const { listener, seen, url } = await echoServer();
  try {
    const socket = new WebSocket(`${url}/stream`);
    const received: string[] = [];
    const closed = new Promise<CloseEvent>((resolve) => socket.onclose = resolve);
    socket.onmessage = (event) => received.push(event.data);
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = reject;
    });
    for (const text of ["hello", "raw:bytes", "ünïcode ✓", "x".repeat(40_000), "bye"]) {
      socket.send(text);
    }
    const event = await closed;
    assert.equal(event.code, 1000);
    assert.equal(event.reason, "bye received");
    assert.deepEqual(received, ["HELLO", "RAW:BYTES", "ÜNÏCODE ✓", "X".repeat(40_000), "BYE"]);
    // The front hands the listener a message's bytes first; what it declines comes as text.
    assert.deepEqual(seen.readFromBytes, ["raw:bytes"]);
    assert.deepEqual(seen.messages, ["hello", "ünïcode ✓", "x".repeat(40_000), "bye"]);
    await until(() => seen.closes === 1, "the listener's close");
    assert.equal(seen.closedAfterListener, 1);
    assert.equal(seen.fallbackUpgrades, 0, "the stream went through Deno.upgradeWebSocket");
  } finally {
    await listener.stop();
  }
});

Deno.test("through the front, a message over the limit is refused at its header with 1009", async () => {
  const { listener, seen, url } = await echoServer();
  try {
    const socket = new WebSocket(`${url}/stream`);
    const closed = new Promise<CloseEvent>((resolve) => socket.onclose = resolve);
    await new Promise((resolve) => socket.onopen = resolve);
    socket.send("y".repeat(200_000));
    const event = await closed;
    assert.equal(event.code, 1009);
    assert.deepEqual(seen.oversized, [200_000]);
    assert.deepEqual(seen.messages, []);
    assert.equal(seen.fallbackUpgrades, 0);
  } finally {
    await listener.stop();
  }
});

Deno.test("a refused upgrade gets its answer; a client's own handoff header never reaches the app", async () => {
  const { listener, seen } = await echoServer();
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.port });
    const head =
      "GET /refused HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
      "X-Callscribe-Handoff: forged-by-client\r\n\r\n";
    await conn.write(new TextEncoder().encode(head));
    const buffer = new Uint8Array(4096);
    let text = "";
    while (!text.includes("\r\n\r\n")) {
      const n = await conn.read(buffer);
      if (n === null) break;
      text += new TextDecoder().decode(buffer.subarray(0, n));
    }
    conn.close();
    assert.match(text, /^HTTP\/1\.1 403/);
    assert.equal(seen.handoffHeaders.length, 1);
    const id = seen.handoffHeaders[0];
    assert.ok(id && id !== "forged-by-client" && !id.includes("forged"), `the app saw ${id}`);
  } finally {
    await listener.stop();
  }
});

Deno.test("a request that did not come through the front is upgraded by the fallback", async () => {
  const { listener, seen, fetch } = await echoServer();
  try {
    // In-process, as tests call the app: no front holds its connection.
    const request = new Request("http://x/stream", {
      headers: {
        upgrade: "websocket",
        connection: "Upgrade",
        "sec-websocket-version": "13",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      },
    });
    try {
      fetch(request);
    } catch {
      // Deno.upgradeWebSocket may refuse a request no server received: the count shows who was asked.
    }
    assert.equal(seen.fallbackUpgrades, 1);
  } finally {
    await listener.stop();
  }
});
