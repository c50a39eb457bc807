/**
 * The live hub's resume (`Last-Event-ID`) on a bus: events come in commit
 * order, which is not id order, and a client is given what came after its
 * last event, not what has a higher id.
 */
import assert from "node:assert/strict";
import { type LiveBus, type LiveEvent, LiveHub } from "../lib/live/live_hub.ts";

/** A bus that hands nothing back by itself: the test delivers events as the bus would. */
const bus: LiveBus = {
  publish() {},
  since: () => Promise.resolve(null),
  activeCalls: () => Promise.resolve([]),
};

const event = (id: number, callSid = "CA1"): LiveEvent => ({
  id: String(id),
  type: "final",
  callSid,
  data: { callSid, text: `event ${id}` },
});

Deno.test("on a bus, a client that last saw 7 gets 6 when 6 committed after 7", async () => {
  const hub = new LiveHub({ bus });
  for (const id of [5, 7, 6, 8]) hub.deliver(event(id));
  assert.deepEqual((await hub.missed("7")).map((e) => e.id), ["6", "8"]);
  assert.deepEqual((await hub.missed("5")).map((e) => e.id), ["7", "6", "8"]);
  assert.deepEqual(await hub.missed("8"), []);
});

Deno.test("on a bus, resume for one call keeps that call's events only", async () => {
  const hub = new LiveHub({ bus });
  for (const [id, call] of [[5, "CA1"], [7, "CA2"], [6, "CA1"]] as const) {
    hub.deliver(event(id, call));
  }
  assert.deepEqual((await hub.missed("7", "CA1")).map((e) => e.id), ["6"]);
});
