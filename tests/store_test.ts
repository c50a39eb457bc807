/**
 * The transcript store, the same specification run on both stores: SQLite
 * files and a real PostgreSQL (started by the test, see test_postgres.ts).
 * Then the exports, parsed back with subtitle libraries from npm.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { parseSync } from "subtitle";
import webvtt from "webvtt-parser";
import postgres from "postgres";
import { dbPath, type Segment, type TranscriptStore } from "../lib/store/db.ts";
import { CallEventPipeline } from "../lib/call/pipeline.ts";
import { storeCommit } from "../lib/call/store_commit.ts";
import { memoryLogger } from "../lib/log.ts";
import { SCHEMA_VERSION } from "../lib/store/migrations.ts";
import { SqliteStore } from "../lib/store/sqlite.ts";
import { PostgresStore } from "../lib/store/postgres.ts";
import { exportTranscript, mergeByTime } from "../lib/export/transcript_export.ts";
import { timestamp } from "../lib/text/time_format.ts";
import { CallRegistry } from "../lib/call/registry.ts";
import type { TranscriberEngine } from "../lib/transcribe/engine.ts";
import { startTestPostgres, type TestPostgres } from "./test_postgres.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One store kind: makes empty databases, each opened (and reopened) by its opener. */
interface Backend {
  name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** A new empty database; the returned function opens a store on it (again and again). */
  database(): Promise<Opener>;
}

type Opener = () => Promise<TranscriptStore>;

const sqlite: Backend = {
  name: "SQLite",
  start: () => Promise.resolve(),
  stop: () => Promise.resolve(),
  async database() {
    const dir = await Deno.makeTempDir({ prefix: "callscribe-store-" });
    return () => Promise.resolve(SqliteStore.open(dir));
  },
};

let server: TestPostgres | undefined;
const postgresql: Backend = {
  name: "PostgreSQL",
  async start() {
    server = await startTestPostgres();
  },
  async stop() {
    await server?.stop();
  },
  async database() {
    const url = await server!.createDatabase();
    return () => PostgresStore.connect(url);
  },
};

const word = (text: string, startMs: number, endMs: number) => ({ text, startMs, endMs });

/** A small two-sided conversation with overlap and text that needs escaping. */
async function fillCall(store: TranscriptStore, callSid: string, startedAt = Date.now()) {
  await store.callStarted(
    { callSid, direction: "outbound", from: "+15005550006", to: "+15551234567" },
    startedAt,
    "local",
  );
  await store.addSegment(callSid, {
    track: "outbound",
    text: "hello this is the laptop",
    startMs: 400,
    endMs: 1900,
    words: [word("hello", 400, 700), word("laptop", 1500, 1900)],
  });
  await store.addSegment(callSid, {
    track: "inbound",
    text: "good morning <tom> & jerry --> here",
    startMs: 250,
    endMs: 2100,
    // A hybrid call's final from the cloud engine; the others leave theirs unset.
    engine: "assemblyai",
    words: [{ ...word("good", 250, 500), confidence: 0.5 }, {
      ...word("here", 1800, 2100),
      confidence: 1,
    }],
  });
  await store.addSegment(callSid, {
    track: "inbound",
    text: "the weather is fine",
    startMs: 3_723_004,
    endMs: 3_725_999,
    words: [],
  });
  await store.callEnded(callSid, startedAt + 3_726_000, "stop");
}

/** Opens a store on a fresh database, runs `body`, closes it. */
async function withStore(
  backend: Backend,
  body: (store: TranscriptStore, open: Opener) => Promise<void>,
): Promise<void> {
  const open = await backend.database();
  const store = await open();
  try {
    await body(store, open);
  } finally {
    await store.close();
  }
}

const sids = (page: { calls: { callSid: string }[] }) => page.calls.map((c) => c.callSid);

/** A final hook writing each final's id and text to a table of its own; returns its removal. */
async function logFinalsInHook(store: TranscriptStore): Promise<() => void> {
  await store.transaction((tx) =>
    tx.query("CREATE TABLE hook_log (segment_id INTEGER NOT NULL, note TEXT NOT NULL)")
  );
  return store.addFinalHook(async (tx, segment) => {
    await tx.query("INSERT INTO hook_log (segment_id, note) VALUES (?, ?)", [
      segment.id,
      segment.text,
    ]);
  });
}

/** The specification every store meets. */
const SPEC: Record<string, (backend: Backend) => Promise<void>> = {
  "calls and segments survive closing and reopening the database": async (backend) => {
    const open = await backend.database();
    const store = await open();
    await fillCall(store, "CA1");
    await store.close();

    const reopened = await open();
    try {
      const call = await reopened.getCall("CA1");
      assert.ok(call);
      assert.equal(call.status, "completed");
      assert.equal(call.durationMs, 3_726_000);
      assert.equal(call.engine, "local");
      assert.equal(call.segmentCount, 3);
      const segments = await reopened.segments("CA1");
      assert.deepEqual(segments.map((s) => [s.seq, s.track, s.text]), [
        [1, "outbound", "hello this is the laptop"],
        [2, "inbound", "good morning <tom> & jerry --> here"],
        [3, "inbound", "the weather is fine"],
      ]);
      assert.equal(segments[1].confidence, 0.75);
      assert.equal(segments[0].confidence, null);
      assert.deepEqual(segments.map((s) => s.engine), [null, "assemblyai", null]);
      assert.deepEqual(segments[0].words[1], word("laptop", 1500, 1900));
      assert.deepEqual(segments[1].words[0], { ...word("good", 250, 500), confidence: 0.5 });
      // Turn order continues after a reopen.
      const next = await reopened.addSegment("CA1", {
        track: "outbound",
        text: "one more",
        startMs: 5000,
        endMs: 5500,
        words: [],
      });
      assert.equal(next.seq, 4);
      assert.deepEqual(await reopened.segments("CA1").then((s) => s.at(-1)), next);
    } finally {
      await reopened.close();
    }
  },

  "search, number and date filters, paging, delete": (backend) =>
    withStore(backend, async (store) => {
      await fillCall(store, "CAold", Date.parse("2024-01-10T10:00:00Z"));
      await fillCall(store, "CAnew", Date.parse("2024-02-20T10:00:00Z"));
      await store.callStarted(
        { callSid: "CAother", direction: "inbound", from: "+447700900123" },
        Date.parse("2024-03-01T00:00:00Z"),
      );
      await store.addSegment("CAother", {
        track: "inbound",
        text: "completely different words",
        startMs: 0,
        endMs: 900,
        words: [],
      });

      assert.deepEqual(sids(await store.listCalls()), ["CAother", "CAnew", "CAold"]);
      // A word on the outbound track and one on the inbound track.
      assert.deepEqual(sids(await store.listCalls({ search: "laptop" })), ["CAnew", "CAold"]);
      assert.deepEqual(sids(await store.listCalls({ search: "WEATHER" })), ["CAnew", "CAold"]);
      assert.deepEqual(sids(await store.listCalls({ search: "differ*" })), ["CAother"]);
      // Every word must match.
      assert.deepEqual(sids(await store.listCalls({ search: "weather fine" })), [
        "CAnew",
        "CAold",
      ]);
      assert.equal((await store.listCalls({ search: "weather zebra" })).total, 0);
      // Search syntax in user input is just text.
      assert.equal((await store.listCalls({ search: 'AND OR "( NEAR' })).total, 0);
      assert.equal((await store.listCalls({ search: "it's & | ! :* <-> \\" })).total, 0);
      assert.equal((await store.listCalls({ search: "zebra" })).total, 0);
      assert.deepEqual(sids(await store.listCalls({ number: "44 7700" })), ["CAother"]);
      assert.equal((await store.listCalls({ number: "5551234" })).total, 2);
      assert.equal((await store.listCalls({ number: "5%" })).total, 0);
      assert.deepEqual(
        sids(
          await store.listCalls({
            since: Date.parse("2024-02-01"),
            until: Date.parse("2024-03-01"),
          }),
        ),
        ["CAnew"],
      );
      const page = await store.listCalls({ limit: 1, offset: 1 });
      assert.equal(page.total, 3);
      assert.deepEqual(sids(page), ["CAnew"]);

      assert.equal(await store.deleteCall("CAnew"), true);
      assert.equal(await store.deleteCall("CAnew"), false);
      assert.equal(await store.getCall("CAnew"), null);
      assert.deepEqual(await store.segments("CAnew"), []);
      // Deleted words leave the search index too.
      assert.deepEqual(sids(await store.listCalls({ search: "laptop" })), ["CAold"]);
    }),

  "calls started in the same millisecond list newest first": (backend) =>
    withStore(backend, async (store) => {
      for (const sid of ["CAa", "CAb", "CAc"]) {
        await store.callStarted({ callSid: sid, direction: "inbound" }, 5000);
      }
      assert.deepEqual(sids(await store.listCalls()), ["CAc", "CAb", "CAa"]);
    }),

  "calls left in progress by a killed server become interrupted, their words kept": (backend) =>
    withStore(backend, async (store) => {
      await store.callStarted({ callSid: "CAcut", direction: "outbound" }, 1000);
      await store.addSegment(
        "CAcut",
        { track: "inbound", text: "hi", startMs: 0, endMs: 500, words: [] },
        { receivedAt: 4000 },
      );
      await fillCall(store, "CAdone", 2000);
      // Work in the marking transaction (the webhook outbox) sees each call as marked; if it
      // fails, nothing is marked.
      await assert.rejects(
        store.markInterrupted({
          within: () => {
            throw new Error("outbox down");
          },
        }),
        /outbox down/,
      );
      assert.equal((await store.getCall("CAcut"))!.status, "in-progress");
      const seen: string[] = [];
      const marked = await store.markInterrupted({
        within: async (tx, { call, segments }) => {
          const [row] = await tx.query<{ status: string }>(
            "SELECT status FROM calls WHERE call_sid = ?",
            [call.callSid],
          );
          seen.push(`${call.callSid} ${call.status} ${row.status} ${segments.map((s) => s.text)}`);
        },
      });
      assert.equal(marked, 1);
      assert.deepEqual(seen, ["CAcut interrupted interrupted hi"]);
      const call = (await store.getCall("CAcut"))!;
      assert.equal(call.status, "interrupted");
      assert.equal(call.durationMs, 3000);
      assert.equal((await store.segments("CAcut"))[0].text, "hi");
      assert.equal((await store.getCall("CAdone"))!.status, "completed");
    }),

  "a final for a call never seen starting is kept": (backend) =>
    withStore(backend, async (store) => {
      const segment = await store.addSegment("CAmid", {
        track: "outbound",
        text: "mid call",
        startMs: 10,
        endMs: 20,
        words: [],
      }, { receivedAt: 7000 });
      assert.equal(segment.seq, 1);
      const call = (await store.getCall("CAmid"))!;
      assert.equal(call.direction, "unknown");
      assert.equal(call.startedAt, 7000);
    }),

  "a final's speaker within its track and its language are kept; null when the engine gave none": (
    backend,
  ) =>
    withStore(backend, async (store) => {
      const final = { track: "inbound" as const, startMs: 0, endMs: 10, words: [] };
      const labelled = await store.addSegment("CAwho", {
        ...final,
        text: "hola",
        speaker: "B",
        language: "es",
      });
      assert.deepEqual([labelled.speaker, labelled.language], ["B", "es"]);
      await store.addSegment("CAwho", { ...final, text: "plain" });
      assert.deepEqual(
        (await store.segments("CAwho")).map((s) => [s.text, s.speaker, s.language]),
        [["hola", "B", "es"], ["plain", null, null]],
      );
    }),

  "finals appended at once get distinct turn numbers in order": (backend) =>
    withStore(backend, async (store) => {
      await store.callStarted({ callSid: "CAbusy", direction: "inbound" }, 1);
      const texts = Array.from({ length: 20 }, (_, i) => `line ${i}`);
      const stored = await Promise.all(texts.map((text, i) =>
        store.addSegment("CAbusy", {
          track: i % 2 ? "inbound" : "outbound",
          text,
          startMs: i * 100,
          endMs: i * 100 + 50,
          words: [],
        })
      ));
      assert.deepEqual(stored.map((s) => s.seq), texts.map((_, i) => i + 1));
      assert.deepEqual((await store.segments("CAbusy")).map((s) => s.text), texts);
    }),

  "final hooks run inside the final's transaction: both commit, or neither": (backend) =>
    withStore(backend, async (store) => {
      const remove = await logFinalsInHook(store);
      const kept = await store.addSegment("CAhook", {
        track: "inbound",
        text: "kept",
        startMs: 0,
        endMs: 1,
        words: [],
      });
      await assert.rejects(
        store.addSegment("CAhook", {
          track: "inbound",
          text: "rolled back",
          startMs: 2,
          endMs: 3,
          words: [],
        }, {
          within: () => {
            throw new Error("the outbox is full");
          },
        }),
        /the outbox is full/,
      );
      remove();
      await store.addSegment("CAhook", {
        track: "inbound",
        text: "no hook",
        startMs: 4,
        endMs: 5,
        words: [],
      });
      const rows = await store.transaction((tx) =>
        tx.query<{ segment_id: number; note: string }>(
          "SELECT segment_id, note FROM hook_log ORDER BY segment_id",
        )
      );
      assert.deepEqual(rows.map((r) => [Number(r.segment_id), r.note]), [[kept.id, "kept"]]);
      // The rolled-back final is not stored, and the turn numbers have no gap.
      assert.deepEqual((await store.segments("CAhook")).map((s) => [s.seq, s.text]), [
        [1, "kept"],
        [2, "no hook"],
      ]);
    }),

  "writes made at once: each resolves once committed, one that fails is rolled back alone": (
    backend,
  ) =>
    withStore(backend, async (store, open) => {
      const remove = await logFinalsInHook(store);
      // Another connection, as another process would read it: what a promise promised is there.
      const reader = await open();
      try {
        const final = (text: string, within?: () => never) =>
          store.addSegment("CAburst", { track: "inbound", text, startMs: 0, endMs: 1, words: [] }, {
            within,
          });
        const checks: Promise<void>[] = [];
        for (let i = 0; i < 40; i++) {
          const callSid = `CAburst${i}`;
          checks.push(
            store.callStarted({ callSid, direction: "inbound" }, 1000 + i).then(async () => {
              assert.ok(await reader.getCall(callSid), `${callSid} is committed`);
            }),
          );
          checks.push(
            final(`final ${i}`).then(async (segment) => {
              const stored = await reader.segments("CAburst");
              assert.ok(stored.some((s) => s.id === segment.id), `final ${i} is committed`);
            }),
          );
          if (i === 20) {
            checks.push(assert.rejects(
              final("rolled back", () => {
                throw new Error("the outbox is full");
              }),
              /the outbox is full/,
            ));
          }
          if (i % 2) checks.push(store.callEnded(callSid, 2000 + i, "stop"));
        }
        await Promise.all(checks);
        const segments = await reader.segments("CAburst");
        // In the order made, numbered without a gap where the failed one was.
        assert.deepEqual(
          segments.map((s) => [s.seq, s.text]),
          Array.from({ length: 40 }, (_, i) => [i + 1, `final ${i}`]),
        );
        const rows = await store.transaction((tx) =>
          tx.query<{ note: string }>("SELECT note FROM hook_log ORDER BY segment_id")
        );
        assert.deepEqual(rows.map((r) => r.note), segments.map((s) => s.text));
        assert.equal((await reader.getCall("CAburst7"))!.status, "completed");
        assert.equal((await reader.getCall("CAburst8"))!.status, "in-progress");
      } finally {
        remove();
        await reader.close();
      }
    }),

  "a final is committed before a publisher hears it": (backend) =>
    withStore(backend, async (store, open) => {
      // An engine that hears a final in every write.
      const engine: TranscriberEngine = {
        name: "echo",
        open: (track, sink) => ({
          write: (bytes) =>
            sink.onTranscript({
              type: "final",
              track,
              text: `bytes ${bytes.length}`,
              startMs: 0,
              endMs: bytes.length,
              words: [],
            }),
          close: () => Promise.resolve(),
        }),
        whenCaughtUp: () => Promise.resolve(),
        dispose: () => Promise.resolve(),
      };
      const registry = new CallRegistry(engine, {
        pipeline: new CallEventPipeline({
          commit: storeCommit(store, { engine: engine.name }),
          log: memoryLogger(),
        }),
      });
      // Another connection, as another process would read it.
      const reader = await open();
      const seen: string[][] = [];
      registry.pipeline.publish(async (event) => {
        if (event.type !== "transcript") return;
        seen.push((await reader.segments(event.call.callSid)).map((s) => s.text));
      });
      try {
        const session = registry.attachStream("MZ1", { callSid: "CAlisten", direction: "inbound" });
        session.media("inbound", 0, new Uint8Array(160));
        session.media("inbound", 20, new Uint8Array(320));
        await registry.endCall("CAlisten", "stop");
        assert.deepEqual(seen, [["bytes 160"], ["bytes 160", "bytes 320"]]);
        assert.equal((await reader.getCall("CAlisten"))!.status, "completed");
      } finally {
        await reader.close();
      }
    }),
};

for (const backend of [sqlite, postgresql]) {
  Deno.test(`store on ${backend.name}`, async (t) => {
    await backend.start();
    try {
      for (const [name, spec] of Object.entries(SPEC)) {
        await t.step(name, () => spec(backend));
      }
    } finally {
      await backend.stop();
    }
  });
}

Deno.test("store on SQLite: WAL mode and the schema version are on the file", async () => {
  const dir = await Deno.makeTempDir();
  await SqliteStore.open(dir).close();
  const raw = new DatabaseSync(dbPath(dir));
  assert.equal(
    (raw.prepare("PRAGMA journal_mode").get() as { journal_mode: string }).journal_mode,
    "wal",
  );
  assert.equal(
    (raw.prepare("PRAGMA user_version").get() as { user_version: number }).user_version,
    SCHEMA_VERSION,
  );
  raw.close();
});

Deno.test("store on SQLite: calls starting at once commit together (their log is written once, not once each)", async () => {
  const dir = await Deno.makeTempDir();
  const store = SqliteStore.open(dir);
  try {
    await Promise.all(
      Array.from(
        { length: 200 },
        (_, i) => store.callStarted({ callSid: `CAgroup${i}`, direction: "inbound" }, i),
      ),
    );
    // A commit each would append the calls table's pages to the log 200 times (about 1.6 MB).
    const wal = (await Deno.stat(`${dbPath(dir)}-wal`)).size;
    assert.ok(wal < 200_000, `the write-ahead log holds ${wal} bytes`);
    assert.equal((await store.listCalls({ limit: 500 })).total, 200);
  } finally {
    await store.close();
  }
});

Deno.test("store on SQLite: a group whose transaction breaks fails as a whole, and the store goes on", async () => {
  const dir = await Deno.makeTempDir();
  const store = SqliteStore.open(dir);
  try {
    const first = store.callStarted({ callSid: "CAfirst", direction: "inbound" }, 1);
    // A hook that ends the transaction under the group: what the group wrote before is gone too.
    const broken = store.callStarted({ callSid: "CAbroken", direction: "inbound" }, 2, undefined, {
      within: async (tx) => void await tx.query("ROLLBACK"),
    });
    const after = store.callStarted({ callSid: "CAafter", direction: "inbound" }, 3);
    const results = await Promise.allSettled([first, broken, after]);
    assert.deepEqual(results.map((r) => r.status), ["rejected", "rejected", "rejected"]);
    await store.callStarted({ callSid: "CAnext", direction: "inbound" }, 4);
    assert.deepEqual(sids(await store.listCalls()), ["CAnext"]);
  } finally {
    await store.close();
  }
});

Deno.test("store on SQLite: a database from a newer callscribe is refused with a clear message", async () => {
  const dir = await Deno.makeTempDir();
  const raw = new DatabaseSync(dbPath(dir));
  raw.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 5}`);
  raw.close();
  assert.throws(() => SqliteStore.open(dir), /newer than this callscribe/);
});

Deno.test("store on PostgreSQL: instances migrating at once, a newer schema refused", async () => {
  const pg = await startTestPostgres();
  try {
    const url = await pg.createDatabase();
    // Instances starting together: the advisory lock lets one migrate, the others wait.
    const stores = await Promise.all([1, 2, 3].map(() => PostgresStore.connect(url)));
    await stores[0].callStarted({ callSid: "CAm", direction: "inbound" }, 1);
    for (const store of stores) assert.equal((await store.getCall("CAm"))?.callSid, "CAm");
    await Promise.all(stores.map((store) => store.close()));

    const sql = postgres(url, { max: 1, onnotice: () => {} });
    const [{ version }] = await sql`SELECT version FROM callscribe_schema`;
    assert.equal(version, SCHEMA_VERSION);
    // GIN index behind the search.
    const [{ indexdef }] = await sql`
      SELECT indexdef FROM pg_indexes WHERE indexname = 'segments_text_search'`;
    assert.match(indexdef, /USING gin/);
    await sql`UPDATE callscribe_schema SET version = ${SCHEMA_VERSION + 5}`;
    await sql.end();
    await assert.rejects(PostgresStore.connect(url), /newer than this callscribe/);
    // The message names the database without its password.
    await assert.rejects(PostgresStore.connect(url), (error: Error) => {
      assert.ok(!error.message.includes("callscribe-test"), error.message);
      return true;
    });
  } finally {
    await pg.stop();
  }
});

async function exported(format: "srt" | "vtt" | "txt" | "json") {
  const store = new SqliteStore(":memory:");
  await fillCall(store, "CAexp");
  const call = (await store.getCall("CAexp"))!;
  const segments = await store.segments("CAexp");
  const text = exportTranscript(format, call, segments);
  await store.close();
  return { text, segments: mergeByTime(segments) };
}

const label = (s: Segment) => (s.track === "inbound" ? "Inbound" : "Outbound");

Deno.test("export: SRT parses back with the subtitle package, times and text as stored", async () => {
  const { text, segments } = await exported("srt");
  assert.ok(text.includes("01:02:03,004 --> 01:02:05,999"), text);
  const cues = parseSync(text).filter((n) => n.type === "cue");
  assert.equal(cues.length, segments.length);
  cues.forEach((cue, i) => {
    const s = segments[i];
    assert.equal(cue.type, "cue");
    if (cue.type !== "cue") return;
    assert.equal(cue.data.start, s.startMs);
    assert.equal(cue.data.end, s.endMs);
    assert.equal(cue.data.text, `${label(s)}: ${s.text.replace("-->", "->")}`);
  });
  // Merged by time: the inbound line started first.
  assert.equal(segments[0].track, "inbound");
});

Deno.test("export: WebVTT is valid per the spec validator, voices and times as stored", async () => {
  const { text, segments } = await exported("vtt");
  assert.ok(text.startsWith("WEBVTT\n\n"));
  // The W3C validator's parser (CommonJS: its classes hang off the default export).
  // With the full entity table it decodes character references as the spec says.
  const entities = JSON.parse(
    Deno.readTextFileSync(
      new URL("../node_modules/webvtt-parser/html-entities.json", import.meta.url),
    ),
  );
  // Typed here: the package has no types, and its UMD wrapper hides the class from inference.
  type Cue = {
    startTime: number;
    endTime: number;
    tree: { children: Array<{ name?: string; value?: string; children?: { value: string }[] }> };
  };
  const { WebVTTParser } = webvtt as unknown as {
    WebVTTParser: new (entities: unknown) => {
      parse(text: string): { errors: unknown[]; cues: Cue[] };
    };
  };
  const parsed = new WebVTTParser(entities).parse(text);
  assert.deepEqual(parsed.errors, [], JSON.stringify(parsed.errors));
  assert.equal(parsed.cues.length, segments.length);
  parsed.cues.forEach((cue, i) => {
    const s = segments[i];
    assert.equal(Math.round(cue.startTime * 1000), s.startMs);
    assert.equal(Math.round(cue.endTime * 1000), s.endMs);
    const voice = cue.tree.children[0];
    assert.equal(voice.name, "v");
    assert.equal(voice.value, label(s));
    // The escaped < > & come back as the characters spoken.
    assert.equal(voice.children?.map((c) => c.value).join(""), s.text.replace("-->", "->"));
  });
});

Deno.test("export: TXT is readable lines, JSON has every segment", async () => {
  const txt = (await exported("txt")).text;
  const lines = txt.trim().split("\n");
  assert.equal(lines[0], "Call CAexp (outbound)");
  assert.ok(lines.includes("Duration: 1:02:06"), txt);
  assert.deepEqual(lines.slice(-3), [
    "[00:00.250] Inbound: good morning <tom> & jerry --> here",
    "[00:00.400] Outbound: hello this is the laptop",
    "[1:02:03.004] Inbound: the weather is fine",
  ]);
  const json = JSON.parse((await exported("json")).text);
  assert.equal(json.call.callSid, "CAexp");
  assert.deepEqual(json.segments.map((s: { speaker: string }) => s.speaker), [
    "Inbound",
    "Outbound",
    "Inbound",
  ]);
  assert.equal(timestamp(3_723_004, ","), "01:02:03,004");
});

Deno.test("store on PostgreSQL: only the calls of instances that stopped beating are interrupted", async () => {
  const pg = await startTestPostgres();
  try {
    const url = await pg.createDatabase();
    const alive = await PostgresStore.connect(url, {
      instanceId: "i-alive",
      instanceTimeoutMs: 500,
    });
    const dead = await PostgresStore.connect(url, { instanceId: "i-dead", instanceTimeoutMs: 500 });
    await alive
      .sql`INSERT INTO instances (id, url, state) VALUES ('i-alive', 'x', 'live'), ('i-dead', 'y', 'live')`;
    await alive.callStarted({ callSid: "CAalive", direction: "inbound" }, 1000);
    await dead.callStarted({ callSid: "CAdead", direction: "inbound" }, 1000);
    await dead.addSegment("CAdead", {
      track: "inbound",
      text: "kept",
      startMs: 0,
      endMs: 9,
      words: [],
    }, {
      receivedAt: 2500,
    });
    await dead.close();
    // Still beating: nothing is an orphan.
    assert.deepEqual(await alive.interruptOrphans(), []);
    await sleep(700);
    await alive.sql`UPDATE instances SET heartbeat_at = now() WHERE id = 'i-alive'`;
    const marked = await alive.interruptOrphans();
    assert.deepEqual(marked.map((c) => [c.callSid, c.status, c.durationMs, c.segmentCount]), [
      ["CAdead", "interrupted", 1500, 1],
    ]);
    // Its own calls are never orphans to an instance, however stale its row.
    await sleep(700);
    assert.deepEqual(await alive.interruptOrphans(), []);
    assert.equal((await alive.getCall("CAalive"))?.status, "in-progress");
    // To another instance, that stale row is a dead instance: its call is marked now, once.
    const other = await PostgresStore.connect(url, {
      instanceId: "i-other",
      instanceTimeoutMs: 500,
    });
    assert.deepEqual((await other.interruptOrphans()).map((c) => c.callSid), ["CAalive"]);
    await other.close();
    await alive.close();
  } finally {
    await pg.stop();
  }
});
