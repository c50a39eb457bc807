/**
 * The transcript store on real SQLite files, and the exports parsed back
 * with subtitle libraries from npm.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { parseSync } from "subtitle";
import webvtt from "webvtt-parser";
import { dbPath, SCHEMA_VERSION, type Segment, TranscriptStore } from "../lib/store/db.ts";
import { exportTranscript, mergeByTime, timestamp } from "../lib/store/export.ts";

async function tempStore(): Promise<{ dir: string; store: TranscriptStore }> {
  const dir = await Deno.makeTempDir({ prefix: "callscribe-store-" });
  return { dir, store: TranscriptStore.open(dir) };
}

const word = (text: string, startMs: number, endMs: number) => ({ text, startMs, endMs });

/** A small two-sided conversation with overlap and text that needs escaping. */
function fillCall(store: TranscriptStore, callSid: string, startedAt = Date.now()) {
  store.callStarted(
    { callSid, direction: "outbound", from: "+15005550006", to: "+15551234567" },
    startedAt,
    "local",
  );
  store.addSegment(callSid, {
    track: "outbound",
    text: "hello this is the laptop",
    startMs: 400,
    endMs: 1900,
    words: [word("hello", 400, 700), word("laptop", 1500, 1900)],
  });
  store.addSegment(callSid, {
    track: "inbound",
    text: "good morning <tom> & jerry --> here",
    startMs: 250,
    endMs: 2100,
    words: [{ ...word("good", 250, 500), confidence: 0.5 }, {
      ...word("here", 1800, 2100),
      confidence: 1,
    }],
  });
  store.addSegment(callSid, {
    track: "inbound",
    text: "the weather is fine",
    startMs: 3_723_004,
    endMs: 3_725_999,
    words: [],
  });
  store.callEnded(callSid, startedAt + 3_726_000, "stop");
}

Deno.test("store: calls and segments survive closing and reopening the database", async () => {
  const { dir, store } = await tempStore();
  fillCall(store, "CA1");
  store.close();

  const reopened = TranscriptStore.open(dir);
  try {
    const call = reopened.getCall("CA1");
    assert.ok(call);
    assert.equal(call.status, "completed");
    assert.equal(call.durationMs, 3_726_000);
    assert.equal(call.engine, "local");
    assert.equal(call.segmentCount, 3);
    const segments = reopened.segments("CA1");
    assert.deepEqual(segments.map((s) => [s.seq, s.track, s.text]), [
      [1, "outbound", "hello this is the laptop"],
      [2, "inbound", "good morning <tom> & jerry --> here"],
      [3, "inbound", "the weather is fine"],
    ]);
    assert.equal(segments[1].confidence, 0.75);
    assert.equal(segments[0].confidence, null);
    assert.deepEqual(segments[0].words[1], word("laptop", 1500, 1900));
    // Turn order continues after a reopen.
    const next = reopened.addSegment("CA1", {
      track: "outbound",
      text: "one more",
      startMs: 5000,
      endMs: 5500,
      words: [],
    });
    assert.equal(next.seq, 4);
  } finally {
    reopened.close();
  }
  // WAL mode and the schema version are on the file itself.
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

Deno.test("store: a database from a newer callscribe is refused with a clear message", async () => {
  const dir = await Deno.makeTempDir();
  const raw = new DatabaseSync(dbPath(dir));
  raw.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 5}`);
  raw.close();
  assert.throws(() => TranscriptStore.open(dir), /newer than this callscribe/);
});

Deno.test("store: search, number and date filters, paging, delete", async () => {
  const { store } = await tempStore();
  try {
    fillCall(store, "CAold", Date.parse("2024-01-10T10:00:00Z"));
    fillCall(store, "CAnew", Date.parse("2024-02-20T10:00:00Z"));
    store.callStarted(
      { callSid: "CAother", direction: "inbound", from: "+447700900123" },
      Date.parse("2024-03-01T00:00:00Z"),
    );
    store.addSegment("CAother", {
      track: "inbound",
      text: "completely different words",
      startMs: 0,
      endMs: 900,
      words: [],
    });

    assert.deepEqual(store.listCalls().calls.map((c) => c.callSid), ["CAother", "CAnew", "CAold"]);
    // A word on the outbound track and one on the inbound track.
    assert.deepEqual(store.listCalls({ search: "laptop" }).calls.map((c) => c.callSid), [
      "CAnew",
      "CAold",
    ]);
    assert.deepEqual(store.listCalls({ search: "WEATHER" }).calls.map((c) => c.callSid), [
      "CAnew",
      "CAold",
    ]);
    assert.deepEqual(store.listCalls({ search: "differ*" }).calls.map((c) => c.callSid), [
      "CAother",
    ]);
    // FTS syntax in user input is just text.
    assert.equal(store.listCalls({ search: 'AND OR "( NEAR' }).total, 0);
    assert.equal(store.listCalls({ search: "zebra" }).total, 0);
    assert.deepEqual(store.listCalls({ number: "44 7700" }).calls.map((c) => c.callSid), [
      "CAother",
    ]);
    assert.equal(store.listCalls({ number: "5551234" }).total, 2);
    assert.deepEqual(
      store.listCalls({ since: Date.parse("2024-02-01"), until: Date.parse("2024-03-01") }).calls
        .map((c) => c.callSid),
      ["CAnew"],
    );
    const page = store.listCalls({ limit: 1, offset: 1 });
    assert.equal(page.total, 3);
    assert.deepEqual(page.calls.map((c) => c.callSid), ["CAnew"]);

    assert.equal(store.deleteCall("CAnew"), true);
    assert.equal(store.deleteCall("CAnew"), false);
    assert.equal(store.getCall("CAnew"), null);
    assert.deepEqual(store.segments("CAnew"), []);
    // Deleted words leave the search index too.
    assert.deepEqual(store.listCalls({ search: "laptop" }).calls.map((c) => c.callSid), ["CAold"]);
  } finally {
    store.close();
  }
});

Deno.test("store: calls left in progress by a killed server become interrupted", async () => {
  const { store } = await tempStore();
  try {
    store.callStarted({ callSid: "CAcut", direction: "outbound" }, 1000);
    store.addSegment(
      "CAcut",
      { track: "inbound", text: "hi", startMs: 0, endMs: 500, words: [] },
      4000,
    );
    assert.equal(store.markInterrupted(), 1);
    const call = store.getCall("CAcut")!;
    assert.equal(call.status, "interrupted");
    assert.equal(call.durationMs, 3000);
  } finally {
    store.close();
  }
});

function exported(format: "srt" | "vtt" | "txt" | "json") {
  const store = new TranscriptStore(":memory:");
  fillCall(store, "CAexp");
  const call = store.getCall("CAexp")!;
  const segments = store.segments("CAexp");
  const text = exportTranscript(format, call, segments);
  store.close();
  return { text, segments: mergeByTime(segments) };
}

const label = (s: Segment) => (s.track === "inbound" ? "Inbound" : "Outbound");

Deno.test("export: SRT parses back with the subtitle package, times and text as stored", () => {
  const { text, segments } = exported("srt");
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

Deno.test("export: WebVTT is valid per the spec validator, voices and times as stored", () => {
  const { text, segments } = exported("vtt");
  assert.ok(text.startsWith("WEBVTT\n\n"));
  // The W3C validator's parser (CommonJS: its classes hang off the default export).
  // With the full entity table it decodes character references as the spec says.
  const entities = JSON.parse(
    Deno.readTextFileSync(
      new URL("../node_modules/webvtt-parser/html-entities.json", import.meta.url),
    ),
  );
  const parsed = new webvtt.WebVTTParser(entities).parse(text);
  assert.deepEqual(parsed.errors, [], JSON.stringify(parsed.errors));
  assert.equal(parsed.cues.length, segments.length);
  parsed.cues.forEach((cue: {
    startTime: number;
    endTime: number;
    tree: { children: Array<{ name?: string; value?: string; children?: { value: string }[] }> };
  }, i: number) => {
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

Deno.test("export: TXT is readable lines, JSON has every segment", () => {
  const txt = exported("txt").text;
  const lines = txt.trim().split("\n");
  assert.equal(lines[0], "Call CAexp (outbound)");
  assert.ok(lines.includes("Duration: 1:02:06"), txt);
  assert.deepEqual(lines.slice(-3), [
    "[00:00.250] Inbound: good morning <tom> & jerry --> here",
    "[00:00.400] Outbound: hello this is the laptop",
    "[1:02:03.004] Inbound: the weather is fine",
  ]);
  const json = JSON.parse(exported("json").text);
  assert.equal(json.call.callSid, "CAexp");
  assert.deepEqual(json.segments.map((s: { speaker: string }) => s.speaker), [
    "Inbound",
    "Outbound",
    "Inbound",
  ]);
  assert.equal(timestamp(3_723_004, ","), "01:02:03,004");
});
