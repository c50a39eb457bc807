/**
 * Live event streams and recordings against clients that hold on or ask
 * oddly: a call's level stream ends when the call ends (at once for a call
 * already over), the number of open event streams is capped with a clear
 * `503`, and a `Range` of an unknown unit is ignored (RFC 9110 §14.2).
 */
import assert from "node:assert/strict";
import { LiveHub } from "../../lib/live/live_hub.ts";
import { CallRegistry } from "../../lib/call/registry.ts";
import { NullEngine } from "../../lib/transcribe/null_engine.ts";
import { parseRange } from "../../lib/server/recording_response.ts";

/** Reads an SSE body to its end (or `timeoutMs`): its text and event names. */
async function readEvents(response: Response, timeoutMs: number) {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  const timer = setTimeout(() => reader.cancel(), timeoutMs);
  let text = "";
  for (;;) {
    const { value, done } = await reader.read().catch(() => ({ value: "", done: true }));
    if (done) break;
    text += value;
  }
  clearTimeout(timer);
  return { events: [...text.matchAll(/^event: (.+)$/gm)].map((m) => m[1]), text };
}

function startCall(registry: CallRegistry, callSid: string) {
  return registry.attachStream(`MZ${callSid.slice(2)}`, {
    callSid,
    direction: "outbound-api",
  });
}

Deno.test("a call's level stream ends when the call ends", async () => {
  const registry = new CallRegistry(new NullEngine());
  const hub = new LiveHub();
  registry.pipeline.publish(hub.publisher());
  const callSid = "CA" + "1".repeat(32);
  startCall(registry, callSid);
  // call-started reaches listeners asynchronously.
  while (!hub.activeCalls.some((call) => call.callSid === callSid)) {
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  const response = hub.levelsSse(callSid);
  hub.publishLevels(callSid, { inbound: -20, outbound: null });
  const started = performance.now();
  setTimeout(() => registry.endCall(callSid, "stop"), 200);
  const { events } = await readEvents(response, 5000);
  assert.ok(performance.now() - started < 4000, "the stream ended with the call, not the timeout");
  assert.deepEqual(events.slice(-1), ["call-ended"]);
  assert.equal(hub.openStreams, 0);
});

Deno.test("the level stream of a call already over ends at once", async () => {
  const hub = new LiveHub();
  const started = performance.now();
  const { events } = await readEvents(hub.levelsSse("CA" + "2".repeat(32)), 5000);
  assert.ok(performance.now() - started < 1000, "ended at once");
  assert.deepEqual(events, ["call-ended"]);
});

Deno.test("open event streams are capped: the next gets 503 with a reason, a closed one frees its place", async () => {
  const hub = new LiveHub({ maxStreams: 3 });
  const open = [hub.sse(undefined), hub.sse(undefined), hub.sse(undefined, "CA1")];
  for (const response of open) assert.equal(response.status, 200);
  const refused = hub.sse(undefined);
  assert.equal(refused.status, 503);
  assert.match(await refused.text(), /too many live event streams open \(3\)/);
  assert.equal(hub.levelsSse("CA1").status, 503);
  await open[0].body!.cancel();
  const again = hub.sse(undefined);
  assert.equal(again.status, 200);
  hub.close();
  for (const response of [...open.slice(1), again]) await response.body?.cancel();
});

Deno.test("Range: a unit other than bytes is ignored (the whole file); bad byte ranges stay 416", () => {
  assert.equal(parseRange("items=0-1", 1000), null);
  assert.equal(parseRange("pages=1", 1000), null);
  assert.deepEqual(parseRange("bytes=0-9", 1000), { start: 0, end: 9 });
  assert.deepEqual(parseRange("Bytes=10-", 1000), { start: 10, end: 999 });
  assert.equal(parseRange("bytes=2000-", 1000), "unsatisfiable");
  assert.equal(parseRange("bytes=x-y", 1000), "unsatisfiable");
});
