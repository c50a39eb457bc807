/**
 * Retention: calls older than the cutoff are gone with their segments, search
 * index entries, recordings and delivered webhook rows, on SQLite and
 * PostgreSQL; newer calls, live calls and pending webhooks stay. On SQLite
 * the words are gone from the database file itself.
 */
import assert from "node:assert/strict";
import { dbPath, type TranscriptStore } from "../lib/store/db.ts";
import { SqliteStore } from "../lib/store/sqlite.ts";
import { PostgresStore } from "../lib/store/postgres.ts";
import { purgeBefore, startRetention } from "../lib/store/retention.ts";
import { memoryLogger } from "../lib/log.ts";
import { startTestPostgres } from "./test_postgres.ts";
import { transcriptsCommand } from "../app/transcripts.ts";
import { loadConfig } from "../app/config.ts";
import { NullEngine } from "../lib/transcribe/null_engine.ts";
import { testServer } from "./helpers.ts";

const DAY = 86_400_000;
const NOW = Date.now();

/** Old calls (with a word found nowhere else), a new one, and one still in progress. */
async function fill(store: TranscriptStore): Promise<void> {
  const calls: Array<[string, number, string, boolean]> = [
    ["CAold1", NOW - 40 * DAY, "zanzibarquux", true],
    ["CAold2", NOW - 31 * DAY, "zanzibarquux", true],
    ["CAnew", NOW - 2 * DAY, "keepsakeword", true],
    ["CAlive", NOW - 35 * DAY, "livewordstays", false],
  ];
  for (const [sid, at, text, ended] of calls) {
    await store.callStarted({ callSid: sid, direction: "inbound" }, at, "local");
    await store.addSegment(sid, {
      track: "inbound",
      text: `my secret is ${text}`,
      startMs: 0,
      endMs: 1000,
      words: [{ text, startMs: 500, endMs: 1000 }],
    });
    if (ended) await store.callEnded(sid, at + 60_000, "stop");
  }
  await store.transaction(async (tx) => {
    const row = (sid: string, status: string, at: number, id: string, body: string) =>
      tx.query(
        `INSERT INTO webhook_outbox (message_id, endpoint, call_sid, event_type, body, status,
           created_at, window_start, next_attempt_at, delivered_at)
         VALUES (?, 'http://127.0.0.1/h', ?, 'final', ?, ?, ?, ?, ?, ?)`,
        [id, sid, body, status, at, at, at, status === "delivered" ? at : null],
      );
    await row("CAold1", "delivered", NOW - 40 * DAY, "m1", '{"text":"zanzibarquux"}');
    await row("CAold1", "pending", NOW - 40 * DAY, "m2", '{"text":"still owed"}');
    await row("CAnew", "delivered", NOW - 2 * DAY, "m3", '{"text":"keepsakeword"}');
  });
}

async function check(store: TranscriptStore): Promise<void> {
  const search = async (words: string) =>
    (await store.listCalls({ search: words })).calls.map((c) => c.callSid);
  assert.deepEqual(await search("zanzibarquux"), ["CAold2", "CAold1"]);
  const removed: string[] = [];
  const result = await purgeBefore(store, NOW - 30 * DAY, {
    remove: (sid) => Promise.resolve(removed.push(sid) > 0),
  });
  assert.deepEqual(result, { calls: 2, recordings: 2, webhooks: 1 });
  assert.deepEqual(removed.sort(), ["CAold1", "CAold2"]);
  assert.equal(await store.getCall("CAold1"), null);
  assert.deepEqual(await store.segments("CAold1"), []);
  assert.deepEqual(await search("zanzibarquux"), []);
  assert.deepEqual(await search("keepsakeword"), ["CAnew"]);
  assert.deepEqual(await search("livewordstays"), ["CAlive"], "a call in progress is kept");
  const outbox = await store.transaction((tx) =>
    tx.query<{ message_id: string }>("SELECT message_id FROM webhook_outbox ORDER BY message_id")
  );
  assert.deepEqual(outbox.map((r) => r.message_id), ["m2", "m3"], "pending rows are still owed");
}

Deno.test("retention on SQLite: old calls are gone, search index and file included", async () => {
  const dir = await Deno.makeTempDir();
  const store = SqliteStore.open(dir);
  await fill(store);
  await check(store);
  if (store.kind === "sqlite") {
    // The full-text index itself (not only the search through segments) no longer has the word.
    const fts = await store.transaction((tx) =>
      tx.query("SELECT rowid FROM segments_fts WHERE segments_fts MATCH 'zanzibarquux'")
    );
    assert.deepEqual(fts, []);
  }
  await store.close();
  const bytes = new TextDecoder("latin1").decode(await Deno.readFile(dbPath(dir)));
  assert.ok(bytes.includes("keepsakeword"), "the file holds the kept call's words");
  assert.ok(!bytes.includes("zanzibarquux"), "the deleted words are gone from the file");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("retention on PostgreSQL: old calls are gone, search included", async () => {
  const pg = await startTestPostgres();
  try {
    const store = await PostgresStore.connect(await pg.createDatabase());
    try {
      await fill(store);
      await check(store);
    } finally {
      await store.close();
    }
  } finally {
    await pg.stop();
  }
});

Deno.test("retention runs at start in the background and says what it deleted", async () => {
  const dir = await Deno.makeTempDir();
  const store = SqliteStore.open(dir);
  await fill(store);
  const log = memoryLogger();
  const stop = startRetention({ store, days: 30, log });
  await stop();
  assert.equal(await store.getCall("CAold1"), null);
  assert.ok(await store.getCall("CAnew"));
  assert.ok(
    log.lines.some((l) => /retention \(30 days\): deleted 2 call\(s\)/.test(l)),
    log.lines.join("\n"),
  );
  await store.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("transcripts purge --before DATE deletes older calls on demand", async () => {
  const dir = await Deno.makeTempDir();
  const store = SqliteStore.open(dir);
  await fill(store);
  await store.close();
  const env = { DATA_DIR: dir };
  const cutoff = new Date(NOW - 30 * DAY).toISOString().slice(0, 10);
  assert.equal(await transcriptsCommand(["purge", "--before", cutoff], env), 0);
  const after = SqliteStore.open(dir);
  assert.equal(await after.getCall("CAold1"), null);
  assert.ok(await after.getCall("CAnew"));
  await after.close();
  assert.equal(await transcriptsCommand(["purge"], env), 2, "--before is required");
  assert.equal(await transcriptsCommand(["purge", "--before", "soon"], env), 2);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("RETENTION_DAYS: the server purges at start; a bad value names the setting", async () => {
  assert.throws(
    () => loadConfig({ RETENTION_DAYS: "a month" }),
    /RETENTION_DAYS must be a positive number of days such as 30, got "a month"/,
  );
  const dataDir = await Deno.makeTempDir();
  const store = SqliteStore.open(dataDir);
  await fill(store);
  await store.close();
  await Deno.mkdir(`${dataDir}/recordings`);
  await Deno.writeFile(`${dataDir}/recordings/CAold1.wav`, new Uint8Array(44));
  const server = await testServer({
    dataDir,
    engine: new NullEngine(),
    env: { RETENTION_DAYS: "30" },
  });
  try {
    for (let i = 0; i < 50 && await server.store.getCall("CAold1"); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(await server.store.getCall("CAold1"), null);
    assert.ok(await server.store.getCall("CAnew"));
    assert.equal(await Deno.stat(`${dataDir}/recordings/CAold1.wav`).catch(() => null), null);
  } finally {
    await server.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  }
});
