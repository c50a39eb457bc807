/**
 * The PostgreSQL live bus on a real PostgreSQL: an event whose id was taken
 * before another's but committed after it (two calls' finals at once) still
 * reaches every instance, once.
 */
import assert from "node:assert/strict";
import { PostgresLiveBus } from "../lib/cluster/live_bus.ts";
import type { LiveEvent } from "../lib/live/live_hub.ts";
import { PostgresStore } from "../lib/store/postgres.ts";
import { stderrLogger } from "../lib/log.ts";
import { startTestPostgres } from "./test_postgres.ts";

async function until(what: string, done: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !done(); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(done(), `timed out waiting for ${what}`);
}

Deno.test("an event committed after a later id is still delivered, and only once", async () => {
  const pg = await startTestPostgres();
  const store = await PostgresStore.connect(await pg.createDatabase());
  const bus = new PostgresLiveBus(store, stderrLogger({ quiet: true }));
  const got: LiveEvent[] = [];
  try {
    await bus.start((event) => got.push(event));
    // A final's transaction takes its id first and holds it open.
    const hold = Promise.withResolvers<void>();
    const taken = Promise.withResolvers<void>();
    const slow = store.sql.begin(async (tx) => {
      await tx`WITH e AS (
          INSERT INTO live_events (call_sid, type, data)
          VALUES ('CAslow', 'final', '{"text":"first"}'::jsonb) RETURNING id
        ) SELECT pg_notify('callscribe_live', id::text) FROM e`;
      taken.resolve();
      await hold.promise;
    });
    await taken.promise;
    // Another call's event takes the next id and commits at once: it is delivered first.
    bus.publish("call-ended", "CAfast", { callSid: "CAfast" });
    await until("the later id", () => got.some((e) => e.callSid === "CAfast"));
    hold.resolve();
    await slow;
    await until("the earlier id, committed last", () => got.some((e) => e.callSid === "CAslow"));
    assert.deepEqual(got.map((e) => e.callSid), ["CAfast", "CAslow"]);
    assert.ok(Number(got[1].id) < Number(got[0].id), "the slow event has the lower id");
    // A repeat notification of the same id is not delivered twice.
    await store.sql`SELECT pg_notify('callscribe_live', ${got[1].id})`;
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(got.length, 2);
  } finally {
    await bus.close();
    await store.close();
    await pg.stop();
  }
});
