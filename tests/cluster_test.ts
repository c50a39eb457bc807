/**
 * Two `deno task serve` processes on one real PostgreSQL (started by the
 * test, see test_postgres.ts), as a service runs them: calls spread over
 * both; a call streaming into B shows live on A's SSE; a client resumes on
 * B with an id it got from A; `kill -9` of B mid-call keeps every final B
 * printed and A marks the call interrupted within the bound; SIGTERM of A
 * with a call live drains it (healthz 503, new calls refused) and exits 0.
 */
import assert from "node:assert/strict";
import { makeSid, postSigned, simulateCall } from "../lib/sim/twilio_sim.ts";
import { PostgresStore } from "../lib/store/postgres.ts";
import { audioSet, conversation, toMulaw } from "./helpers.ts";
import { report, sleep } from "./reliability/fixtures.ts";
import {
  BOUND_MS,
  printedFinals,
  type ReceivedEvent,
  SseClient,
  startInstance,
  TOKEN,
} from "./instances.ts";
import { startTestPostgres } from "./test_postgres.ts";

const ofCall = (callSid: string, type: string) => (e: ReceivedEvent) =>
  e.event === type && e.data.callSid === callSid;

Deno.test("two instances on one PostgreSQL: live events everywhere, kill -9 and SIGTERM", async () => {
  const pg = await startTestPostgres();
  const databaseUrl = await pg.createDatabase();
  const [a, b] = await Promise.all([startInstance(databaseUrl), startInstance(databaseUrl)]);
  const clients: SseClient[] = [];
  const calls: Promise<unknown>[] = [];
  const store = await PostgresStore.connect(databaseUrl);
  try {
    const long = toMulaw(
      (await conversation((await audioSet("asterisk-allison-8k")).slice(0, 6), 700)).samples,
    );
    const short = toMulaw(
      (await conversation((await audioSet("librispeech-samples")).slice(0, 1))).samples,
    );
    const onA = new SseClient(`${a.url}/api/events`);
    clients.push(onA);
    await onA.open;

    // A call streaming into B, and one into A.
    const intoB = makeSid("CA");
    const intoA = makeSid("CA");
    calls.push(
      simulateCall({ serverUrl: b.url, calleeAudio: long, authToken: TOKEN, callSid: intoB })
        .catch((error) => error),
      simulateCall({ serverUrl: a.url, calleeAudio: short, authToken: TOKEN, callSid: intoA }),
    );
    await onA.waitFor("B's call-started on A", ofCall(intoB, "call-started"));
    const firstFinal = await onA.waitFor("B's final on A", ofCall(intoB, "final"));
    // What A shows is what B printed (and stored: the event carries the stored id). B prints it
    // as A hears of it, through PostgreSQL: B's line can reach this test a little after A's event.
    const printedByBToo = () =>
      printedFinals(b, intoB).some((p) =>
        p.text === firstFinal.data.text && p.startMs === firstFinal.data.startMs
      );
    for (const waitUntil = performance.now() + 5000; !printedByBToo();) {
      assert.ok(
        performance.now() < waitUntil,
        `A showed a final B did not print within 5 s: ${JSON.stringify(firstFinal.data)}`,
      );
      await sleep(50);
    }
    assert.equal(typeof firstFinal.data.id, "number");

    // A client that got an id from A resumes on B: exactly what A had after it, in order.
    // Some events later (partials and finals of B's call, at least):
    await onA.waitFor(
      "more events of B's call",
      () => onA.events.filter((e) => Number(e.id) > Number(firstFinal.id)).length >= 5,
    );
    const after = onA.events.filter((e) => Number(e.id) > Number(firstFinal.id));
    const onB = new SseClient(`${b.url}/api/events`, firstFinal.id);
    clients.push(onB);
    await onB.waitFor("the resumed events on B", () => onB.events.length >= after.length, 30_000);
    assert.deepEqual(
      onB.events.slice(0, after.length).map((e) => [e.id, e.event, e.data]),
      after.map((e) => [e.id, e.event, e.data]),
    );

    // kill -9 of B mid-call, once it printed two finals of the call.
    while (printedFinals(b, intoB).length < 2) await sleep(100);
    b.kill("SIGKILL");
    const killedAt = performance.now();
    await b.status;
    const printedByB = printedFinals(b, intoB);
    // Every final B printed is in PostgreSQL.
    const stored = await store.segments(intoB);
    for (const p of printedByB) {
      assert.ok(
        stored.some((s) =>
          s.track === p.track && s.text === p.text && s.startMs === p.startMs && s.endMs === p.endMs
        ),
        `printed by B but not stored: ${JSON.stringify(p)}`,
      );
    }
    // A marks the call interrupted, and its dashboards hear it, within the bound.
    const ended = await onA.waitFor(
      "B's call ended on A",
      ofCall(intoB, "call-ended"),
      BOUND_MS + 15_000,
    );
    const markedMs = ended.at - killedAt;
    assert.equal(ended.data.status, "interrupted");
    // The bound, with room for a noisy machine: a beat may wait on the CPU.
    assert.ok(markedMs < BOUND_MS + 5_000, `marked after ${Math.round(markedMs)} ms`);
    const detail = await (await fetch(`${a.url}/api/calls/${intoB}`)).json();
    assert.equal(detail.status, "interrupted");
    assert.ok(detail.segments.length >= printedByB.length);

    // A's own call completed there.
    await calls[1];
    await onA.waitFor("A's call ended", ofCall(intoA, "call-ended"));
    assert.equal((await store.getCall(intoA))?.status, "completed");

    // SIGTERM of A with a call live: it drains and exits 0.
    const draining = makeSid("CA");
    const drained = simulateCall({
      serverUrl: a.url,
      calleeAudio: short,
      authToken: TOKEN,
      callSid: draining,
    });
    await onA.waitFor("the draining call's final", ofCall(draining, "final"));
    a.kill("SIGTERM");
    let health: Response | undefined;
    for (let i = 0; i < 50; i++) {
      health = await fetch(`${a.url}/healthz`);
      if (health.status === 503) break;
      await health.body?.cancel();
      await sleep(50);
    }
    assert.equal(health?.status, 503, "healthz did not report draining");
    assert.equal((await health!.json()).draining, true);
    // A new call is not taken while draining.
    const refused = await postSigned(`${a.url}/twiml/outbound`, {
      CallSid: makeSid("CA"),
      From: "+15005550006",
      To: "+15551234567",
    }, TOKEN);
    assert.equal(refused.status, 503);
    await refused.body?.cancel();
    await drained;
    const status = await a.status;
    assert.equal(status.code, 0, a.stderr.join("\n"));
    assert.ok(a.stderr.some((l) => l.includes("SIGTERM: draining")), a.stderr.join("\n"));
    const finished = await store.getCall(draining);
    assert.equal(finished?.status, "completed");
    assert.equal(finished?.endReason, "stop");
    report("two instances", {
      finalsPrintedByKilledB: printedByB.length,
      interruptedMarkedAfterMs: Math.round(markedMs),
      boundMs: Math.round(BOUND_MS),
      eventsResumedOnB: after.length,
    });
  } finally {
    for (const client of clients) await client.close();
    a.kill("SIGKILL");
    b.kill("SIGKILL");
    await Promise.all([a.status, b.status]);
    await Promise.allSettled(calls);
    await store.close();
    await pg.stop();
  }
});
