import assert from "node:assert/strict";
import { Lifecycle } from "../app/lifecycle.ts";
import { memoryLogger } from "../lib/log.ts";

Deno.test("the lifecycle stops in reverse; a failing or hanging stop is logged and the rest still run", async () => {
  const log = memoryLogger();
  const lifecycle = new Lifecycle(log);
  const stopped: string[] = [];
  lifecycle.defer("store", () => stopped.push("store"));
  lifecycle.defer("webhooks", () => {
    stopped.push("webhooks");
    throw new Error("worker gone");
  });
  lifecycle.defer("hanging", () => new Promise(() => stopped.push("hanging")), 50);
  lifecycle.defer("calls", async () => {
    await Promise.resolve();
    stopped.push("calls");
  });
  await Promise.all([lifecycle.stop(), lifecycle.stop()]);
  assert.deepEqual(stopped, ["calls", "hanging", "webhooks", "store"]);
  assert.deepEqual(log.lines, [
    "error: stopping hanging took over 50 ms; going on without it",
    "error: cannot stop webhooks: worker gone",
  ]);
  assert.throws(() => lifecycle.defer("late", () => {}), /already stopping/);
});
