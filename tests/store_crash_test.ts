/**
 * A server killed with SIGKILL in the middle of a call keeps every final it
 * printed: `main.ts` runs as a child process on a temp DATA_DIR, a real-time
 * simulated call talks to it, and once finals have been printed the child
 * is killed; the database must hold every one of them.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { makeSid, simulateCall } from "../lib/sim/twilio_sim.ts";
import { SqliteStore } from "../lib/store/sqlite.ts";
import { audioSet, conversation, toMulaw } from "./helpers.ts";
import { readLines } from "./read_lines.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

interface PrintedFinal {
  type: string;
  callSid: string;
  track: string;
  text: string;
  startMs: number;
  endMs: number;
}

Deno.test("store: a server killed with SIGKILL mid-call keeps every final it printed", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "callscribe-crash-" });
  const token = "crash-test-token-0123456789";
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", "--format", "jsonl", "--port", "0"],
    cwd: ROOT,
    env: {
      NO_COLOR: "1",
      DATA_DIR: dataDir,
      TWILIO_AUTH_TOKEN: token,
      HOST: "127.0.0.1",
      PUBLIC_URL: "",
      NGROK_AUTHTOKEN: "",
      AUDIO_INPUT: "none",
    },
    stdout: "piped",
    stderr: "piped",
  }).spawn();

  // The server says where it listens on stderr.
  const stderrLines: string[] = [];
  const listening = Promise.withResolvers<string>();
  (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      stderrLines.push(chunk);
      const match = /listening on (http:\/\/[^\s]+)/.exec(stderrLines.join(""));
      if (match) listening.resolve(match[1]);
    }
    listening.reject(new Error(`the server exited before listening:\n${stderrLines.join("")}`));
  })();

  // Every line it prints to stdout; the first final is the cue to kill it.
  const printed: PrintedFinal[] = [];
  const firstFinal = Promise.withResolvers<void>();
  const stdoutDone = (async () => {
    for await (const text of readLines(child.stdout)) {
      const line = JSON.parse(text);
      if (line.type === "final") {
        printed.push(line);
        // Two finals, so the kill lands mid-call with more still to come.
        if (printed.length >= 2) firstFinal.resolve();
      }
    }
  })();

  let call: Promise<unknown> | null = null;
  try {
    const url = await listening.promise;
    const speech = await conversation((await audioSet("asterisk-allison-8k")).slice(9, 14), 700);
    const callSid = makeSid("CA");
    // Real time, not fast: the kill comes while the call is still streaming.
    call = simulateCall({
      serverUrl: url,
      calleeAudio: toMulaw(speech.samples),
      authToken: token,
      callSid,
    }).catch((error) => error);
    const killedEarly = await Promise.race([
      firstFinal.promise.then(() => false),
      call.then(() => true),
    ]);
    assert.ok(!killedEarly, "the call ended before two finals were printed");
    child.kill("SIGKILL");
    const status = await child.status;
    assert.equal(status.signal, "SIGKILL");
    await stdoutDone;
    // The simulator sees the server vanish; it must not hang.
    await call;

    assert.ok(printed.length >= 2);
    const store = SqliteStore.open(dataDir);
    try {
      const stored = await store.segments(callSid);
      for (const final of printed) {
        assert.equal(final.callSid, callSid);
        assert.ok(
          stored.some((s) =>
            s.track === final.track && s.text === final.text && s.startMs === final.startMs &&
            s.endMs === final.endMs
          ),
          `printed but not stored: ${JSON.stringify(final)}`,
        );
      }
      // The call is in the store, still marked as in progress (nobody ended it).
      assert.equal((await store.getCall(callSid))?.status, "in-progress");
      console.log(`${printed.length} printed finals, ${stored.length} stored`);
    } finally {
      await store.close();
    }
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await child.status;
    await call;
  }
});
