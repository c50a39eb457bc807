/**
 * The commands as a user runs them: `deno task demo` and
 * `deno task call --simulate`, as child processes with their output piped.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { wordErrorRate } from "../lib/metrics/wer.ts";
import { SHARED_AUDIO } from "./helpers.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
/** The app's permission set, declared once in deno.json. */
const PERMISSIONS = ["-P=app"];

async function run(args: string[], env: Record<string, string> = {}) {
  const output = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    // Calls are stored; keep this run's out of the project's ./data.
    env: { NO_COLOR: "1", DATA_DIR: Deno.makeTempDirSync({ prefix: "callscribe-cli-" }), ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: output.code, stdout: decode(output.stdout), stderr: decode(output.stderr) };
}

const call = (...args: string[]) =>
  run(["run", ...PERMISSIONS, "make_call.ts", "--simulate", ...args]);

/** The demo script's reference text per track. */
async function demoScript(): Promise<Record<string, string>> {
  const script: Record<string, string> = { inbound: "", outbound: "" };
  for (const line of (await Deno.readTextFile(`${ROOT}demo/script.tsv`)).trim().split("\n")) {
    const [track, , text] = line.split("\t");
    script[track] += " " + text;
  }
  return script;
}

Deno.test("deno task demo transcribes both sides of the bundled call", async () => {
  const { code, stdout, stderr } = await run(["task", "demo"]);
  assert.equal(code, 0, stderr);
  const lines = stdout.trim().split("\n");
  const format = /^(Inbound|Outbound): .+ \[(\d+) - (\d+)\]$/;
  for (const line of lines) assert.match(line, format);
  const said = (side: string) =>
    lines.filter((l) => l.startsWith(side + ":")).map((l) =>
      l.slice(side.length + 2).replace(/ \[\d+ - \d+\]$/, "")
    ).join(" ");
  const script = await demoScript();
  const inbound = wordErrorRate(script.inbound, said("Inbound"));
  const outbound = wordErrorRate(script.outbound, said("Outbound"));
  console.log(`demo WER inbound ${inbound.wer.toFixed(3)}, outbound ${outbound.wer.toFixed(3)}`);
  assert.ok(inbound.wer < 0.15, said("Inbound"));
  assert.ok(outbound.wer < 0.2, said("Outbound"));
  assert.ok(!stdout.includes("\x1b"), "piped output has no escape codes");
});

Deno.test("--format jsonl prints only JSON events on stdout", async () => {
  const { code, stdout, stderr } = await call(
    "--fast",
    "--format",
    "jsonl",
    "--callee-audio",
    `${SHARED_AUDIO}librispeech-samples/1089-134686-0001.wav`,
  );
  assert.equal(code, 0, stderr);
  const events = stdout.trim().split("\n").map((line) => JSON.parse(line));
  assert.deepEqual([events[0].type, events.at(-1).type], ["call-started", "call-ended"]);
  const finals = events.filter((e) => e.type === "final");
  assert.ok(finals.length >= 1);
  for (const f of finals) {
    assert.deepEqual(Object.keys(f), [
      "type",
      "callSid",
      "track",
      "text",
      "startMs",
      "endMs",
      "words",
    ]);
    assert.equal(f.callSid, events[0].callSid);
  }
  assert.ok(!events.some((e) => e.type === "partial"), "no partials unless --partials");
  const text = finals.map((f) => f.text).join(" ");
  assert.ok(
    wordErrorRate(
      "after early nightfall the yellow lamps would light up here and there the squalid quarter of the brothels",
      text,
    ).wer < 0.3,
    text,
  );
});

Deno.test("--partials adds partial events to jsonl", async () => {
  const { code, stdout } = await call(
    "--fast",
    "--format",
    "jsonl",
    "--partials",
    "--callee-audio",
    `${SHARED_AUDIO}librispeech-samples/2830-3980-0043.wav`,
  );
  assert.equal(code, 0);
  const types = stdout.trim().split("\n").map((line) => JSON.parse(line).type);
  assert.ok(types.includes("partial") && types.includes("final"));
});

Deno.test("a WAV that cannot be read is a clear error naming the file", async () => {
  const missing = await call("--callee-audio", "no/such/file.wav");
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /no\/such\/file\.wav/);
  const text = await Deno.makeTempFile({ suffix: ".wav" });
  await Deno.writeTextFile(text, "this is not audio");
  const bad = await call("--callee-audio", text);
  assert.equal(bad.code, 2);
  assert.ok(bad.stderr.includes(text), bad.stderr);
  assert.match(bad.stderr, /not a WAV file/);
  const noArgs = await call();
  assert.equal(noArgs.code, 2);
  assert.match(noArgs.stderr, /--callee-audio/);
});

Deno.test("--room with a setting out of range, or with --server, is one clear line and exit 2", async () => {
  const far = await call("--callee-audio", "demo/inbound.wav", "--room", "delay=10");
  assert.equal(far.code, 2);
  assert.match(far.stderr, /--room: Cannot parse room "delay=10": delay must be a number from 50/);
  assert.doesNotMatch(far.stderr, /\n\s+at /);
  const remote = await call(
    "--callee-audio",
    "demo/inbound.wav",
    "--room",
    "--server",
    "http://127.0.0.1:1",
  );
  assert.equal(remote.code, 2);
  assert.match(remote.stderr, /--room only works with the in-process server/);
});

Deno.test("a model folder sherpa-onnx refuses is a user error: exit 2, its reason, no stack", async () => {
  // Every file is where findModelFiles looks, but tokens.txt points nowhere: sherpa-onnx's
  // own check refuses the model ("Please check your config!"), with and without workers.
  const shared = `${ROOT}../shared/models/sherpa-onnx-kws-zipformer-gigaspeech-3.3M-2024-01-01`;
  const dir = await Deno.makeTempDir({ prefix: "callscribe-refused-model-" });
  for await (const entry of Deno.readDir(shared)) {
    if (entry.name.endsWith(".onnx")) {
      await Deno.symlink(`${shared}/${entry.name}`, `${dir}/${entry.name}`);
    }
  }
  await Deno.symlink(`${dir}/gone.txt`, `${dir}/tokens.txt`);
  for (const workers of ["0", "2"]) {
    const { code, stderr } = await run(
      [
        "run",
        ...PERMISSIONS,
        "make_call.ts",
        "--simulate",
        "--fast",
        "--callee-audio",
        "demo/inbound.wav",
      ],
      { SHERPA_MODEL_DIR: dir, SHERPA_WORKERS: workers },
    );
    assert.equal(code, 2, stderr);
    assert.match(stderr, /error: could not load the speech model .*tokens\.txt/);
    assert.doesNotMatch(stderr, /^\s+at /m, "no stack trace");
  }
});

Deno.test("deno task serve reachable by Twilio without TWILIO_AUTH_TOKEN stops before looking for a model", async () => {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...PERMISSIONS, "main.ts", "--port", "0"],
    cwd: ROOT,
    clearEnv: true,
    env: {
      NO_COLOR: "1",
      HOME: Deno.env.get("HOME") ?? "/tmp",
      DATA_DIR: await Deno.makeTempDir({ prefix: "callscribe-test-" }),
      // A model that is nowhere: looking for it would be an error of its own (or a download).
      SHERPA_MODEL_DIR: "/nonexistent/model",
      // Without it the server would run local-only (the dashboard on loopback, Twilio refused).
      PUBLIC_URL: "https://example.ngrok.app",
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const errors = new TextDecoder().decode(stderr);
  assert.equal(code, 2, errors);
  assert.match(errors, /TWILIO_AUTH_TOKEN is not set/);
  assert.doesNotMatch(errors, /model/i);
});
