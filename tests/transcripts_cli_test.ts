/**
 * `deno task call --simulate` keeps its transcript in DATA_DIR, and
 * `deno task transcripts list|show|export` reads it back, as child processes.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { parseSync } from "subtitle";
import { PostgresStore } from "../lib/store/postgres.ts";
import { SHARED_AUDIO } from "./helpers.ts";
import { startTestPostgres } from "./test_postgres.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

async function run(args: string[], env: Record<string, string>) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: output.code, stdout: decode(output.stdout), stderr: decode(output.stderr) };
}

Deno.test("transcripts command: list, show and export a simulated call's transcript", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "callscribe-cli-" });
  const env = { DATA_DIR: dataDir };
  const audio = `${SHARED_AUDIO}librispeech-samples`;
  const tsv = (await Deno.readTextFile(`${audio}/transcripts.tsv`)).split("\n")[0].split("\t");

  const empty = await run(["transcripts.ts", "list"], env);
  assert.equal(empty.code, 1);
  assert.match(empty.stderr, /no transcripts in .*callscribe\.db yet/);

  const call = await run([
    "make_call.ts",
    "--simulate",
    "--fast",
    "--format",
    "jsonl",
    "--callee-audio",
    `${audio}/${tsv[0]}`,
  ], env);
  assert.equal(call.code, 0, call.stderr);
  const printed = call.stdout.trim().split("\n").map((l) => JSON.parse(l)).filter((e) =>
    e.type === "final"
  );
  assert.ok(printed.length > 0, call.stdout);
  const callSid = printed[0].callSid;

  const list = await run(["transcripts.ts", "list"], env);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, new RegExp(`^${callSid} .* completed .* ${printed.length} lines`, "m"));
  const found = await run(["transcripts.ts", "list", "--search", "nightfall", "--json"], env);
  assert.equal(JSON.parse(found.stdout).calls[0].callSid, callSid);

  const show = await run(["transcripts.ts", "show", callSid], env);
  assert.equal(show.code, 0, show.stderr);
  for (const final of printed) assert.ok(show.stdout.includes(`Inbound: ${final.text}`));

  const srt = await run(["transcripts.ts", "export", callSid, "--format", "srt"], env);
  assert.equal(srt.code, 0, srt.stderr);
  const cues = parseSync(srt.stdout).filter((n) => n.type === "cue");
  assert.deepEqual(
    cues.map((c) => c.type === "cue" ? [c.data.start, c.data.end, c.data.text] : []),
    printed.map((f) => [f.startMs, f.endMs, `Inbound: ${f.text}`]),
  );

  const bad = [
    [["transcripts.ts", "show", "CAnope"], 1, /no call with SID CAnope/],
    [["transcripts.ts", "export", callSid, "--format", "doc"], 2, /--format json\|txt\|srt\|vtt/],
    [["transcripts.ts", "list", "--limit", "0"], 2, /--limit must be a whole number/],
    [["transcripts.ts", "frobnicate"], 2, /unknown command "frobnicate"/],
  ] as const;
  for (const [args, code, message] of bad) {
    const result = await run([...args], env);
    assert.equal(result.code, code, args.join(" "));
    assert.match(result.stderr, message);
  }
});

Deno.test("transcripts command reads PostgreSQL with DATABASE_URL; the password is never shown", async () => {
  const pg = await startTestPostgres();
  try {
    const databaseUrl = await pg.createDatabase();
    const store = await PostgresStore.connect(databaseUrl);
    const callSid = "CA" + "7".repeat(32);
    await store.callStarted({ callSid, direction: "inbound", from: "+15005550006" }, Date.now());
    await store.addSegment(callSid, {
      track: "inbound",
      text: "the evening train leaves at nightfall",
      startMs: 120,
      endMs: 2400,
      words: [],
    });
    await store.callEnded(callSid, Date.now() + 3000, "stop");
    await store.close();
    const env = { DATABASE_URL: databaseUrl };

    const found = await run(["transcripts.ts", "list", "--search", "night*", "--json"], env);
    assert.equal(found.code, 0, found.stderr);
    assert.deepEqual(JSON.parse(found.stdout).calls.map((c: { callSid: string }) => c.callSid), [
      callSid,
    ]);
    const srt = await run(["transcripts.ts", "export", callSid, "--format", "srt"], env);
    assert.equal(srt.code, 0, srt.stderr);
    assert.match(srt.stdout, /00:00:00,120 --> 00:00:02,400\r\nInbound: the evening train/);

    // A database that cannot be reached: a clear error, without the password.
    const down = new URL(databaseUrl);
    down.port = "1";
    const refused = await run(["transcripts.ts", "list"], { DATABASE_URL: down.toString() });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /cannot use the database postgres:\/\/postgres@127\.0\.0\.1:1\//);
    assert.ok(!refused.stderr.includes(down.password), refused.stderr);
  } finally {
    await pg.stop();
  }
});

Deno.test("transcripts command: a unique start of a SID or `last` names a call; delete removes it", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "callscribe-cli-" });
  const env = { DATA_DIR: dataDir };
  const { SqliteStore } = await import("../lib/store/sqlite.ts");
  const store = SqliteStore.open(dataDir);
  const older = "CA1111aaaa" + "0".repeat(24);
  const newer = "CA1111bbbb" + "0".repeat(24);
  await store.callStarted({ callSid: older, direction: "outbound-api" }, 1_000);
  await store.callEnded(older, 2_000, "hung up");
  await store.callStarted({ callSid: newer, direction: "outbound-api" }, 5_000);
  await store.callEnded(newer, 9_000, "hung up");
  await store.close();

  const prefix = await run(["transcripts.ts", "show", "ca1111A"], env);
  assert.equal(prefix.code, 0, prefix.stderr);
  assert.match(prefix.stdout, new RegExp(older));
  const last = await run(["transcripts.ts", "show", "last"], env);
  assert.equal(last.code, 0, last.stderr);
  assert.match(last.stdout, new RegExp(newer));
  const ambiguous = await run(["transcripts.ts", "show", "CA1111"], env);
  assert.equal(ambiguous.code, 1);
  assert.match(ambiguous.stderr, /"CA1111" starts more than one Call SID .*give more of it/);

  const deleted = await run(["transcripts.ts", "delete", "last"], env);
  assert.equal(deleted.code, 0, deleted.stderr);
  assert.match(deleted.stderr, new RegExp(`deleted call ${newer}`));
  const list = await run(["transcripts.ts", "list"], env);
  assert.match(list.stdout, new RegExp(older));
  assert.doesNotMatch(list.stdout, new RegExp(newer));
});

Deno.test("transcripts command: a --fast call is stored with its audio's duration, not the run's", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "callscribe-cli-" });
  const env = { DATA_DIR: dataDir };
  const call = await run([
    "make_call.ts",
    "--simulate",
    "--fast",
    "--format",
    "jsonl",
    "--callee-audio",
    `${ROOT}demo/inbound.wav`,
  ], env);
  assert.equal(call.code, 0, call.stderr);
  const shown = await run(["transcripts.ts", "list", "--json"], env);
  const [stored] = JSON.parse(shown.stdout).calls;
  // demo/inbound.wav is 31 s long (and the simulator adds 1 s of silence); the run takes a few.
  const { readWavFile, toCallAudio } = await import("../lib/audio/wav.ts");
  const wavMs = toCallAudio(await readWavFile(`${ROOT}demo/inbound.wav`)).length / 8;
  assert.ok(
    stored.durationMs >= wavMs - 1000,
    `stored ${stored.durationMs} ms for ${Math.round(wavMs)} ms of audio`,
  );
});
