/** The one sleep, backoff and bounded wait (lib/async). */
import assert from "node:assert/strict";
import { backoffDelay } from "../lib/async/backoff.ts";
import { sleep } from "../lib/async/sleep.ts";
import { waitAtMost } from "../lib/async/wait_at_most.ts";

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
