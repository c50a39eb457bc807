/** The one sleep, backoff, bounded wait and shared ring (lib/async). */
import assert from "node:assert/strict";
import { backoffDelay } from "../lib/async/backoff.ts";
import { sleep } from "../lib/async/sleep.ts";
import { waitAtMost } from "../lib/async/wait_at_most.ts";
import { SharedRing } from "../lib/async/shared_ring.ts";

Deno.test("backoffDelay doubles from 250 ms up to 5 s, and gives up after `attempts`", () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map((n) => backoffDelay(n)), [
    250,
    500,
    1000,
    2000,
    4000,
    5000,
    5000,
  ]);
  assert.deepEqual([1, 2, 3, 4].map((n) => backoffDelay(n, { initialMs: 100, attempts: 3 })), [
    100,
    200,
    400,
    undefined,
  ]);
});

Deno.test("sleep ends early when its signal aborts, and at once when already aborted", async () => {
  const controller = new AbortController();
  const started = performance.now();
  setTimeout(() => controller.abort(), 20);
  await sleep(10_000, controller.signal);
  assert.ok(performance.now() - started < 5_000);
  await sleep(10_000, controller.signal);
  assert.ok(performance.now() - started < 5_000);
});

Deno.test("waitAtMost stops waiting at its limit, and passes a rejection on", async () => {
  const started = performance.now();
  await waitAtMost(new Promise(() => {}), 20);
  assert.ok(performance.now() - started < 5_000);
  await assert.rejects(waitAtMost(Promise.reject(new Error("boom")), 1_000), /boom/);
});

Deno.test("SharedRing: messages come out whole and in order across the wrap-around; one that does not fit waits for room", () => {
  const ring = SharedRing.create(32);
  const message = (n: number, length: number) => new Uint8Array(length).fill(n);
  assert.equal(ring.tryRead(), null);
  // 4 bytes of length each: 14 + 14 fill 28 of the 32.
  assert.ok(ring.tryWrite(message(1, 10)));
  assert.ok(ring.tryWrite(message(2, 10)));
  assert.equal(ring.tryWrite(message(3, 10)), false, "wrote past the end of the ring");
  assert.equal(ring.usedBytes, 28);
  assert.deepEqual(ring.tryRead(), message(1, 10));
  // This one wraps around the end of the buffer.
  assert.ok(ring.tryWrite(message(3, 10)));
  assert.deepEqual(ring.tryRead(), message(2, 10));
  assert.ok(ring.tryWrite(new Uint8Array(0)));
  assert.deepEqual(ring.tryRead(), message(3, 10));
  assert.deepEqual(ring.tryRead(), new Uint8Array(0));
  assert.equal(ring.tryRead(), null);
  assert.equal(ring.usedBytes, 0);
  // Exactly full: 32 bytes, of which one stays free.
  assert.ok(ring.tryWrite(message(4, 27)));
  assert.equal(ring.tryWrite(new Uint8Array(0)), false);
  assert.deepEqual(ring.tryRead(), message(4, 27));
  assert.throws(() => SharedRing.create(2), /Cannot create a ring of 2 bytes/);
});

Deno.test("SharedRing: messagesNow reads the messages there when called, not those written meanwhile", () => {
  const ring = SharedRing.create(64);
  ring.tryWrite(Uint8Array.of(1));
  ring.tryWrite(Uint8Array.of(2, 2));
  const read: number[] = [];
  for (const message of ring.messagesNow()) {
    read.push(message[0]);
    // A writer that keeps up with the reader: there is always one more message.
    ring.tryWrite(Uint8Array.of(read.length + 2));
  }
  assert.deepEqual(read, [1, 2]);
  assert.deepEqual([...ring.messagesNow()].map((m) => m[0]), [3, 4]);
  assert.deepEqual([...ring.messagesNow()], []);
});

Deno.test("SharedRing: a worker asleep in waitForMessage wakes on notify and reads what was written", async () => {
  const ring = SharedRing.create(1024);
  const source = `
    import { SharedRing } from ${
    JSON.stringify(new URL("../lib/async/shared_ring.ts", import.meta.url).href)
  };
    self.onmessage = ({ data }) => {
      const ring = new SharedRing(data);
      postMessage("waiting");
      let sum = 0;
      for (let got = 0; got < 3;) {
        ring.waitForMessage();
        for (let m = ring.tryRead(); m; m = ring.tryRead(), got++) sum += m.reduce((a, b) => a + b, 0);
      }
      postMessage(sum);
    };`;
  const url = URL.createObjectURL(new Blob([source], { type: "application/javascript" }));
  const worker = new Worker(url, { type: "module" });
  try {
    const replies: unknown[] = [];
    const next = () => new Promise((resolve) => (worker.onmessage = ({ data }) => resolve(data)));
    let reply = next();
    worker.postMessage(ring.buffer);
    replies.push(await reply);
    await sleep(50); // it is asleep in Atomics.wait by now
    reply = next();
    ring.tryWrite(Uint8Array.of(1, 2));
    ring.tryWrite(Uint8Array.of(3));
    ring.notify();
    await sleep(50);
    ring.tryWrite(Uint8Array.of(10));
    ring.notify();
    // Without a wake the worker sleeps on: fail instead of hanging the suite.
    replies.push(await Promise.race([reply, sleep(5000).then(() => "no wake in 5 s")]));
    assert.deepEqual(replies, ["waiting", 16]);
  } finally {
    worker.terminate();
    URL.revokeObjectURL(url);
  }
});
