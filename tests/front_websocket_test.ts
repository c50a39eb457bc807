/**
 * The front's WebSocket framing (RFC 6455), on bytes in memory: what a client
 * sends, split anywhere, gives the same messages; control frames are answered;
 * what is not part of the protocol is refused without being buffered.
 */
import assert from "node:assert/strict";
import { FrontWebSocket } from "../lib/server/front_websocket.ts";

const KEY = "dGhlIHNhbXBsZSBub25jZQ==";

/** A client frame: masked, FIN set unless `fin: false`. */
function clientFrame(
  opcode: number,
  payload: Uint8Array,
  options: { fin?: boolean; declaredLength?: number } = {},
): Uint8Array {
  const length = options.declaredLength ?? payload.length;
  const header = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const out = new Uint8Array(header + 4 + payload.length);
  out[0] = (options.fin === false ? 0 : 0x80) | opcode;
  if (header === 2) out[1] = 0x80 | length;
  else if (header === 4) {
    out[1] = 0x80 | 126;
    out[2] = length >> 8;
    out[3] = length & 0xff;
  } else {
    out[1] = 0x80 | 127;
    new DataView(out.buffer).setUint32(6, length);
  }
  const mask = [0x12, 0x34, 0x56, 0x78];
  out.set(mask, header);
  for (let i = 0; i < payload.length; i++) out[header + 4 + i] = payload[i] ^ mask[i & 3];
  return out;
}

const text = (s: string) => new TextEncoder().encode(s);

function harness(maxMessageBytes = 64 * 1024) {
  const written: Uint8Array[] = [];
  const messages: Array<string | Uint8Array> = [];
  const oversized: number[] = [];
  let closed = 0;
  let ended = 0;
  const socket = new FrontWebSocket(KEY, {
    write: (bytes) => {
      written.push(bytes.slice());
      return Promise.resolve();
    },
    end: () => ended++,
    onMessage: (data) => messages.push(data),
    onOversized: (bytes) => oversized.push(bytes),
    onClose: () => closed++,
    maxMessageBytes,
  });
  const sent = () => {
    const all = new Uint8Array(written.reduce((n, w) => n + w.length, 0));
    let at = 0;
    for (const w of written) {
      all.set(w, at);
      at += w.length;
    }
    return all;
  };
  return { socket, messages, oversized, sent, closes: () => closed, ends: () => ended };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("the 101 answer carries the RFC 6455 accept value for the key", async () => {
  const { sent } = harness();
  await settle();
  const head = new TextDecoder().decode(sent());
  assert.match(head, /^HTTP\/1\.1 101 /);
  // The example of RFC 6455 section 1.3.
  assert.match(head, /sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n\r\n$/);
});

Deno.test("messages come out the same however the bytes are split", () => {
  const frames = [
    clientFrame(1, text('{"event":"connected"}')),
    clientFrame(1, text("x".repeat(300))),
    clientFrame(1, text("é".repeat(200))),
    clientFrame(1, text("frag-"), { fin: false }),
    clientFrame(9, text("ping")),
    clientFrame(0, text("ment"), { fin: true }),
  ];
  const stream = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  let at = 0;
  for (const f of frames) {
    stream.set(f, at);
    at += f.length;
  }
  const expected = ['{"event":"connected"}', "x".repeat(300), "é".repeat(200), "frag-ment"];
  for (const step of [stream.length, 1, 3, 7, 64]) {
    const { socket, messages } = harness();
    for (let i = 0; i < stream.length; i += step) socket.receive(stream.slice(i, i + step));
    assert.deepEqual(messages, expected, `split every ${step} bytes`);
  }
});

Deno.test("a ping is answered with a pong carrying its payload", async () => {
  const { socket, sent } = harness();
  await settle();
  const before = sent().length;
  socket.receive(clientFrame(9, text("are you there")));
  await settle();
  const pong = sent().subarray(before);
  assert.equal(pong[0], 0x8a);
  assert.equal(pong[1], 13);
  assert.equal(new TextDecoder().decode(pong.subarray(2)), "are you there");
});

Deno.test("a binary frame is announced at its header and never read", () => {
  const { socket, messages } = harness();
  // 1 MiB declared, only the header and a few bytes sent: the announcement comes at once.
  const frame = clientFrame(2, new Uint8Array(16), { declaredLength: 1024 * 1024 });
  socket.receive(frame);
  assert.equal(messages.length, 1);
  assert.ok(messages[0] instanceof Uint8Array && messages[0].length === 0);
});

Deno.test("a message over the limit is refused at its header, not buffered", () => {
  const { socket, messages, oversized } = harness(1000);
  socket.receive(clientFrame(1, new Uint8Array(10), { declaredLength: 4 * 1024 * 1024 }));
  assert.deepEqual(oversized, [4 * 1024 * 1024]);
  assert.equal(messages.length, 0);
});

Deno.test("an unmasked frame or an invalid close closes with 1002; a close is echoed and ends the stream", async () => {
  {
    const { socket, sent, closes } = harness();
    await settle();
    const before = sent().length;
    socket.receive(new Uint8Array([0x81, 0x02, 0x68, 0x69]));
    await settle();
    const close = sent().subarray(before);
    assert.equal(close[0], 0x88);
    assert.equal((close[2] << 8) | close[3], 1002);
    assert.equal(closes(), 1);
  }
  {
    const { socket, sent, closes } = harness();
    await settle();
    const before = sent().length;
    socket.receive(clientFrame(8, new Uint8Array([0x03, 0xe8])));
    await settle();
    const echo = sent().subarray(before);
    assert.deepEqual([...echo], [0x88, 0x02, 0x03, 0xe8]);
    assert.equal(closes(), 1);
  }
  // A close frame of one byte, a code no peer may send (1005, 1006 and 1015 are never sent),
  // or a reason that is not UTF-8: a protocol error (RFC 6455 5.5.1, 7.4).
  for (const payload of [[0x03], [0x03, 0xed], [0x03, 0xee], [0x03, 0xf7], [0x03, 0xe8, 0xff]]) {
    const { socket, sent, closes } = harness();
    await settle();
    const before = sent().length;
    socket.receive(clientFrame(8, new Uint8Array(payload)));
    await settle();
    const close = sent().subarray(before);
    assert.equal(close[0], 0x88, `close frame ${payload}`);
    assert.equal((close[2] << 8) | close[3], 1002, `close frame ${payload}`);
    assert.equal(closes(), 1);
  }
});

Deno.test("invalid UTF-8 in a text message closes with 1007", async () => {
  const { socket, sent, messages } = harness();
  await settle();
  const before = sent().length;
  socket.receive(clientFrame(1, new Uint8Array([0xc3, 0x28])));
  await settle();
  const close = sent().subarray(before);
  assert.equal(messages.length, 0);
  assert.equal((close[2] << 8) | close[3], 1007);
});

Deno.test("what is sent to a peer that does not read is counted as unsent", async () => {
  const pending = Promise.withResolvers<void>();
  const socket = new FrontWebSocket(KEY, {
    write: () => pending.promise,
    end: () => {},
    onMessage: () => {},
    onOversized: () => {},
    onClose: () => {},
    maxMessageBytes: 1024,
  });
  for (let i = 0; i < 1000; i++) socket.send("y".repeat(200));
  assert.ok(socket.unsentBytes >= 1000 * 202, `${socket.unsentBytes} bytes unsent`);
  pending.resolve();
  await settle();
  await settle();
  assert.equal(socket.unsentBytes, 0);
});

Deno.test("a listener that reads text from its bytes gets them unmasked, and declines the rest to onMessage", async () => {
  const read: string[] = [];
  const messages: Array<string | Uint8Array> = [];
  const written: Uint8Array[] = [];
  const socket = new FrontWebSocket(KEY, {
    write: (bytes) => {
      written.push(bytes.slice());
      return Promise.resolve();
    },
    end: () => {},
    onMessage: (data) => messages.push(data),
    // Takes messages that start with "take", straight from the bytes.
    readText: (bytes) => {
      const message = new TextDecoder().decode(bytes);
      if (!message.startsWith("take")) return false;
      read.push(message);
      return true;
    },
    onOversized: () => {},
    onClose: () => {},
    maxMessageBytes: 1024,
  });
  socket.receive(clientFrame(1, text("take one")));
  socket.receive(clientFrame(1, text("leave this")));
  // Fragmented: read whole, once.
  socket.receive(clientFrame(1, text("take "), { fin: false }));
  socket.receive(clientFrame(0, text("two")));
  assert.deepEqual(read, ["take one", "take two"]);
  assert.deepEqual(messages, ["leave this"]);
  // What is declined is still checked as UTF-8: invalid bytes close the stream with 1007.
  await settle();
  const before = written.length;
  socket.receive(clientFrame(1, Uint8Array.of(0xc3, 0x28)));
  await settle();
  assert.deepEqual(messages, ["leave this"]);
  assert.equal(written.length, before + 1);
  const close = written[before];
  assert.equal(close[0], 0x88);
  assert.equal((close[2] << 8) | close[3], 1007);
});
