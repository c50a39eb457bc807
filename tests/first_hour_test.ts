/**
 * A new user's first hour, with the real commands as child processes: quiet
 * output, common mistakes that end in one line and exit 2 (no stack trace),
 * the local dashboard without a Twilio account, the call page's URL at the
 * start of a simulated call, and Ctrl-C ending a call properly.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { ROOT, spawnServer } from "./reliability/fixtures.ts";
import { SHARED_AUDIO } from "./helpers.ts";
import { postSigned } from "../lib/sim/twilio_sim.ts";
import { readLines } from "./read_lines.ts";

/** A stack trace's frame, or Deno's report of an uncaught error. */
const STACK = /^\s+at |Uncaught/m;
const LONG_WAV = `${SHARED_AUDIO}librispeech-samples/1089-134686-0001.wav`;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `deno <args>` in the project with only `env` set (and PATH, HOME, a fresh DATA_DIR). */
function denoCommand(args: string[], env: Record<string, string> = {}): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "",
      HOME: Deno.env.get("HOME") ?? "",
      NO_COLOR: "1",
      DATA_DIR: Deno.makeTempDirSync({ prefix: "callscribe-first-hour-" }),
      ...env,
    },
    stdout: "piped",
    stderr: "piped",
  });
}

/** Runs `deno <args>` (see {@link denoCommand}) to the end. */
async function deno(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const output = await denoCommand(args, env).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: output.code, stdout: decode(output.stdout), stderr: decode(output.stderr) };
}

const serve = (env: Record<string, string>, ...args: string[]) =>
  deno(["run", "-A", "main.ts", ...args], env);
const call = (env: Record<string, string>, ...args: string[]) =>
  deno(["run", "-A", "make_call.ts", ...args], env);

/** Asserts a run ended on one line naming `problem` (each pattern), exit 2, no stack. */
function assertOneLineError(run: Run, ...problems: RegExp[]) {
  assert.equal(run.code, 2, run.stderr);
  assert.doesNotMatch(run.stderr, STACK);
  for (const problem of problems) assert.match(run.stderr, problem);
}

/** Deno's lines on stderr, `deno task`'s own naming of the command it runs aside. */
function denoLines(stderr: string): string[] {
  return stderr.trim().split("\n").filter((l) => l && !l.startsWith("Task "));
}

Deno.test("quiet: the tasks' --help print nothing of Deno's own on stderr", async () => {
  for (const task of ["serve", "call", "demo", "transcripts"]) {
    const run = await deno(["task", task, "--help"]);
    assert.equal(run.code, 0, `${task}: ${run.stderr}`);
    assert.match(run.stdout, /Usage/);
    assert.deepEqual(denoLines(run.stderr), [], `${task} printed: ${run.stderr}`);
  }
});

Deno.test("quiet: the first task in a fresh clone installs its packages without a word", async () => {
  const clone = await Deno.makeTempDir({ prefix: "callscribe-clone-" });
  const files = new TextDecoder().decode(
    (await new Deno.Command("git", {
      args: ["ls-files", "--cached", "--others", "--exclude-standard"],
      cwd: ROOT,
      stdout: "piped",
    }).output()).stdout,
  ).trim().split("\n").filter((f) => f !== "node_modules");
  for (const file of files) {
    try {
      await Deno.mkdir(join(clone, file, ".."), { recursive: true });
      await Deno.copyFile(join(ROOT, file), join(clone, file));
    } catch (error) {
      // Deleted in the working tree but not yet in the index.
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  const run = await new Deno.Command(Deno.execPath(), {
    args: ["task", "serve", "--help"],
    cwd: clone,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(run.stderr);
  assert.equal(run.code, 0, stderr);
  assert.ok((await Deno.stat(join(clone, "node_modules"))).isDirectory, "packages installed");
  assert.deepEqual(denoLines(stderr), [], stderr);
  await Deno.remove(clone, { recursive: true });
});

Deno.test("mistakes: every configuration problem is reported at once, exit 2", async () => {
  const run = await serve({
    PORT: "abc",
    TWILIO_SKIP_SIGNATURE: "yes",
    TWILIO_ACCOUNT_SID: "XY123",
    PUBLIC_URL: "https://example.ngrok.app",
    RECORD_CALLS: "maybe",
  });
  assertOneLineError(
    run,
    /PORT must be a port number/,
    /TWILIO_SKIP_SIGNATURE must be 1 .* got "yes"/,
    /TWILIO_ACCOUNT_SID must be "AC" followed by 32 hex digits/,
    /TWILIO_AUTH_TOKEN is not set, but PUBLIC_URL is set/,
    /RECORD_CALLS must be 1/,
  );
  // Before anything slow: no model, no database.
  assert.doesNotMatch(run.stderr, /local engine|transcripts are kept/);
});

Deno.test("mistakes: a port in use is named before the model loads or the database opens", async () => {
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = (busy.addr as Deno.NetAddr).port;
    const run = await serve({ PORT: String(port), TWILIO_AUTH_TOKEN: "first-hour-token" });
    assertOneLineError(run, new RegExp(`port ${port} on 127.0.0.1 is in use.*--port`));
    assert.doesNotMatch(run.stderr, /local engine|transcripts are kept/);
  } finally {
    busy.close();
  }
});

Deno.test("mistakes: call --simulate --server where nothing listens says so", async () => {
  const free = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (free.addr as Deno.NetAddr).port;
  free.close();
  const run = await call(
    {},
    "--simulate",
    "--server",
    `http://127.0.0.1:${port}`,
    "--callee-audio",
    LONG_WAV,
  );
  assertOneLineError(
    run,
    new RegExp(`no callscribe server answered at http://127.0.0.1:${port}.*deno task serve`),
  );
});

Deno.test("local mode: no Twilio token serves the dashboard on loopback and refuses Twilio's routes", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "callscribe-first-hour-" });
  const server = await spawnServer("main.ts", ["--port", "0"], { DATA_DIR: dataDir });
  try {
    const all = () => server.stderr.join("\n");
    // The banner's last line comes just after "listening on".
    await until("the dashboard URL", () => all().includes("dashboard: "), 5000);
    assert.match(all(), /local mode.*Twilio cannot reach this server/);
    assert.match(all(), new RegExp(`dashboard: ${server.url}/`));
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:/);
    const page = await fetch(server.url + "/");
    assert.equal(page.status, 200);
    await page.body?.cancel();
    // Unsigned, or signed with any token: nothing can start a call on a local-mode server.
    for (const token of [undefined, "guessed-token"]) {
      const twiml = await postSigned(server.url + "/twiml/outbound", { CallSid: "CA1" }, token);
      assert.equal(twiml.status, 403);
      await twiml.body?.cancel();
    }

    // The simulator against it: refused, and told why in one line.
    const run = await call(
      { DATA_DIR: dataDir, TWILIO_AUTH_TOKEN: "not-the-servers-token" },
      "--simulate",
      "--server",
      server.url,
      "--callee-audio",
      LONG_WAV,
    );
    assertOneLineError(run, /refused the simulator's signature \(403\).*same TWILIO_AUTH_TOKEN/);
  } finally {
    server.kill();
    await server.status;
  }
});

/** Collects a child's stdout and stderr, line by line, as they come. */
function collectLines(child: Deno.ChildProcess) {
  const lines = { stdout: [] as string[], stderr: [] as string[] };
  const pump = async (stream: ReadableStream<Uint8Array>, into: string[]) => {
    for await (const line of readLines(stream, { rest: true })) if (line) into.push(line);
  };
  const done = Promise.all([pump(child.stdout, lines.stdout), pump(child.stderr, lines.stderr)]);
  return { child, lines, done };
}

/** Spawns `deno run make_call.ts …` and collects its stderr and stdout lines. */
function spawnCall(args: string[], env: Record<string, string>) {
  return collectLines(denoCommand(["run", "-A", "make_call.ts", ...args], env).spawn());
}

async function until(what: string, check: () => boolean, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function storedCall(dataDir: string, callSid: string) {
  const db = new DatabaseSync(join(dataDir, "callscribe.db"), { readOnly: true });
  try {
    const call = db.prepare("SELECT status, end_reason FROM calls WHERE call_sid = ?").get(
      callSid,
    ) as { status: string; end_reason: string } | undefined;
    const texts = (db.prepare("SELECT text FROM segments WHERE call_sid = ? ORDER BY seq").all(
      callSid,
    ) as Array<{ text: string }>).map((r) => r.text);
    return { status: call?.status, texts };
  } finally {
    db.close();
  }
}

Deno.test("call --simulate --server prints the call's page at the start; Ctrl-C hangs up cleanly", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "callscribe-first-hour-" });
  const token = "first-hour-shared-token";
  const server = await spawnServer("main.ts", ["--port", "0", "--format", "jsonl"], {
    DATA_DIR: dataDir,
    TWILIO_AUTH_TOKEN: token,
    SHERPA_WORKERS: "1",
  });
  try {
    const { child, lines, done } = spawnCall(
      ["--simulate", "--server", server.url, "--callee-audio", LONG_WAV],
      { TWILIO_AUTH_TOKEN: token, DATA_DIR: dataDir },
    );
    const page = new RegExp(`follow it at ${server.url}/calls/(CA[0-9a-f]{32})`);
    await until("the call's page URL", () => lines.stderr.some((l) => page.test(l)), 20_000);
    const callSid = page.exec(lines.stderr.find((l) => page.test(l))!)![1];
    // The page is there while the call goes on.
    await until("the call in the store", () => storedCall(dataDir, callSid).status !== undefined);
    const live = await fetch(`${server.url}/calls/${callSid}`);
    assert.equal(live.status, 200);
    await live.body?.cancel();

    child.kill("SIGINT");
    const status = await child.status;
    await done;
    assert.equal(status.code, 130, lines.stderr.join("\n"));
    assert.doesNotMatch(lines.stderr.join("\n"), STACK);
    await until("the call to end", () => storedCall(dataDir, callSid).status !== "in-progress");
    assert.equal(storedCall(dataDir, callSid).status, "completed");
  } finally {
    server.kill();
    await server.status;
  }
});

Deno.test("Ctrl-C on call --simulate ends the call completed with its words stored", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "callscribe-first-hour-" });
  const { child, lines, done } = spawnCall(
    ["--simulate", "--format", "jsonl", "--callee-audio", LONG_WAV],
    { DATA_DIR: dataDir, SHERPA_WORKERS: "1" },
  );
  const finals = () => lines.stdout.map((l) => JSON.parse(l)).filter((e) => e.type === "final");
  await until("a first final", () => finals().length >= 1);
  child.kill("SIGINT");
  const status = await child.status;
  await done;
  assert.equal(status.code, 130, lines.stderr.join("\n"));
  assert.doesNotMatch(lines.stderr.join("\n"), STACK);
  const events = lines.stdout.map((l) => JSON.parse(l));
  assert.equal(events.at(-1).type, "call-ended");
  const callSid = events[0].callSid;
  const stored = storedCall(dataDir, callSid);
  assert.equal(stored.status, "completed");
  // Every printed final is stored, the last words included.
  assert.deepEqual(stored.texts, finals().map((f) => f.text));
});

Deno.test(".env.example sets nothing, so a line appended to a copy is the one that counts", async () => {
  // Deno's --env-file keeps the first value of a name: an uncommented default would win.
  const settings = (await Deno.readTextFile(join(ROOT, ".env.example"))).split("\n")
    .filter((line) => /^\s*[A-Z_]+=/.test(line));
  assert.deepEqual(settings, []);
});

Deno.test({
  name:
    "Ctrl-C on deno task demo (the terminal's SIGINT to the whole group) ends the call completed",
  // setsid gives the task its own process group, as a terminal's foreground job has.
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const dataDir = await Deno.makeTempDir({ prefix: "callscribe-first-hour-" });
    const { child, lines, done } = collectLines(spawnInOwnGroup({
      args: [Deno.execPath(), "task", "demo"],
      cwd: ROOT,
      env: { NO_COLOR: "1", DATA_DIR: dataDir },
      stdout: "piped",
      stderr: "piped",
    }));
    await until("a first line of the transcript", () => lines.stdout.length >= 1);
    // setsid made the task a group leader: its pid is the group's id.
    Deno.kill(-child.pid, "SIGINT");
    const status = await child.status;
    await done;
    const stderr = lines.stderr.join("\n");
    assert.equal(status.code, 130, stderr);
    assert.doesNotMatch(stderr, STACK);
    const callSid = /call (CA[0-9a-f]{32}) started/.exec(stderr)![1];
    const stored = storedCall(dataDir, callSid);
    assert.equal(stored.status, "completed");
    // Every printed line is stored.
    assert.deepEqual(
      stored.texts,
      lines.stdout.map((l) =>
        l.replace(/^(Inbound|Outbound): /, "").replace(/ \[\d+ - \d+\]$/, "")
      ),
    );
  },
});

Deno.test("mistakes: a stream URL the simulator cannot reach (the server's PUBLIC_URL) is one line", async () => {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const unreachable = `http://127.0.0.1:${(closed.addr as Deno.NetAddr).port}`;
  closed.close();
  const server = await spawnServer("main.ts", ["--port", "0"], {
    DATA_DIR: await Deno.makeTempDir({ prefix: "callscribe-first-hour-" }),
    TWILIO_SKIP_SIGNATURE: "1",
    PUBLIC_URL: unreachable,
  });
  try {
    const run = await call({}, "--simulate", "--server", server.url, "--callee-audio", LONG_WAV);
    assertOneLineError(
      run,
      new RegExp(`simulated call to ${server.url} failed: could not open ws://127.0.0.1:\\d+/`),
      /PUBLIC_URL/,
    );
  } finally {
    server.kill();
    await server.status;
  }
});

/** Starts `setsid` with `options` (a process group of its own); a clear error when it is missing. */
function spawnInOwnGroup(options: Deno.CommandOptions): Deno.ChildProcess {
  try {
    return new Deno.Command("setsid", options).spawn();
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    throw new Error(
      "Cannot run the Ctrl-C test: setsid is not installed. Install util-linux " +
        "(apt install util-linux), which every Debian and Ubuntu base system has.",
    );
  }
}
