/**
 * `deno task test`: every test file in its own `deno test` process, several at once.
 *
 * Most of the suite waits on calls played in real time, so files run side by side (`--jobs`,
 * default {@link defaultJobs}). Each file is a process of its own, not a worker of one
 * `deno test --parallel`: sherpa-onnx and ONNX Runtime are native and process-wide, and one hung
 * file must not hold the others (it is ended after `--file-timeout` minutes and counted failed).
 * A file's output is printed whole when it ends, so files never interleave; each ends with
 * `deno test`'s own summary line, and the last line adds them up.
 *
 * Files whose checks are wall-clock deadlines of a few seconds ({@link DEADLINES}) run at the
 * normal priority and at most `--deadline-jobs` at once; every other file runs at a lower one,
 * so no neighbour decoding speech can make them miss a deadline.
 *
 * ```sh
 * deno task test                       # everything
 * deno task test tests/store_test.ts   # some files (or folders)
 * deno task test --jobs 1 --deadline-jobs 1   # one file at a time
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { getPriority, setPriority } from "node:os";

const TESTS = fileURLToPath(new URL("./", import.meta.url));
const ROOT = fileURLToPath(new URL("../", import.meta.url));

/**
 * The files whose checks are deadlines of a few seconds (frames or player positions against the
 * clock, dead peers, slow clients, engine faults, a soak whose streams end after 30 s without a
 * frame): they run at the normal priority, at most `--deadline-jobs` at once, while every other
 * file runs 10 steps lower (nice 10 from a normal shell), so decoding next door never makes them miss
 * one.
 */
const DEADLINES = new Set([
  "bridge_test.ts",
  "call_page_browser_test.ts",
  "cluster_test.ts",
  "reliability/dead_peer_test.ts",
  "reliability/engine_faults_test.ts",
  "reliability/hostile_streams_http_test.ts",
  "reliability/slow_clients_test.ts",
  "reliability/soak_test.ts",
  "softphone_browser_test.ts",
  "softphone_test.ts",
]);

/**
 * The files that take longest (measured on 2 cores), started first so the run does not end
 * waiting on one of them; the rest start in name order.
 */
const LONGEST_FIRST = [
  "reliability/soak_test.ts",
  "outgoing_webhooks_server_test.ts",
  "bench_test.ts",
  "fast_mode_test.ts",
  "bridge_test.ts",
  "assemblyai_hybrid_test.ts",
  "local_engine_test.ts",
];

/** How much lower the files that do not check deadlines run than the runner itself. */
const NICE = 10;

/**
 * Side by side by default: the files mostly wait on calls played in real time. Three per core and
 * two (8 on 2 cores), and no more than 12: each file can hold a speech model, a PostgreSQL server
 * or a browser in memory.
 */
export function defaultJobs(): number {
  return Math.min(12, navigator.hardwareConcurrency * 3 + 2);
}

/** One test file's run: its output, its summary and how it ended. */
interface FileRun {
  job: Job;
  output: string;
  code: number;
  ms: number;
  timedOut: boolean;
}

const SUMMARY =
  /^(ok|FAILED) \| (\d+) passed(?: \((\d+) steps?\))? \| (\d+) failed(?: \| (\d+) ignored)?/m;

function testFilesIn(path: string): string[] {
  const info = Deno.statSync(path);
  if (info.isFile) return [path];
  const found: string[] = [];
  for (const entry of Deno.readDirSync(path)) {
    const child = `${path.replace(/\/$/, "")}/${entry.name}`;
    if (entry.isDirectory && !["fixtures", "artifacts", "fakes"].includes(entry.name)) {
      found.push(...testFilesIn(child));
    } else if (entry.isFile && /(^|[._])test\.ts$/.test(entry.name)) found.push(child);
  }
  return found.sort();
}

/** The file's name relative to tests/, as the lists above name it. */
function suiteName(file: string): string {
  const absolute = file.startsWith("/") ? file : `${Deno.cwd()}/${file}`;
  return absolute.startsWith(TESTS) ? absolute.slice(TESTS.length) : file;
}

/** A job of the run: a test file, or the type check of them all. */
interface Job {
  name: string;
  args: string[];
  /** Run at the lower priority ({@link NICE}): it checks no deadline. */
  niced: boolean;
  /** Checks deadlines: at most `--deadline-jobs` of these at once. */
  deadlines: boolean;
  /** Whether it ends with `deno test`'s summary line (the type check has none). */
  tests: boolean;
}

async function runJob(job: Job, timeoutMs: number): Promise<FileRun> {
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: job.args,
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  if (job.niced) lowerPriority(child.pid);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, timeoutMs);
  // stdout and stderr into one text in arrival order, as a terminal would show them.
  const chunks: Uint8Array[] = [];
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) chunks.push(chunk);
  };
  const [status] = await Promise.all([child.status, drain(child.stdout), drain(child.stderr)]);
  clearTimeout(timer);
  const output = new TextDecoder().decode(await new Blob(chunks as BlobPart[]).arrayBuffer());
  return { job, output, code: status.code, ms: performance.now() - started, timedOut };
}

/**
 * Lowers a child's priority where the platform lets us (its threads and children inherit it);
 * where it does not, the file runs at the normal priority.
 */
function lowerPriority(pid: number): void {
  try {
    // Relative to the runner's own: a suite started under `nice` keeps the two apart.
    setPriority(pid, Math.min(19, getPriority() + NICE));
  } catch {
    // Not permitted here: the file runs at the normal priority.
  }
}

/**
 * Runs `queue` in order with at most `jobs` at once, of which at most `deadlineJobs` check
 * deadlines, calling `done` as each ends.
 */
async function runAll(
  queue: Job[],
  limits: { jobs: number; deadlineJobs: number; timeoutMs: number },
  done: (run: FileRun) => void,
): Promise<void> {
  let deadlinesRunning = 0;
  const running = new Set<Promise<void>>();
  while (queue.length || running.size) {
    const i = queue.findIndex((job) => !job.deadlines || deadlinesRunning < limits.deadlineJobs);
    if (i !== -1 && running.size < limits.jobs) {
      const [job] = queue.splice(i, 1);
      if (job.deadlines) deadlinesRunning++;
      // The type check is not a file: a short --file-timeout (run_suite_test's) must not end it
      // while, at its lowered priority, the suite's other files hold the cores.
      const timeoutMs = job.tests ? limits.timeoutMs : Math.max(limits.timeoutMs, CHECK_TIMEOUT_MS);
      const run: Promise<void> = runJob(job, timeoutMs).then((result) => {
        if (job.deadlines) deadlinesRunning--;
        running.delete(run);
        done(result);
      });
      running.add(run);
    } else await Promise.race(running);
  }
}

/**
 * A test file run without its own type check: the files are checked together once, in one job
 * of the run ({@link typeCheck}), where a check per file would cost each file about 1.5 s of CPU.
 */
const testFile = (file: string): Job => ({
  name: suiteName(file),
  args: ["test", "-q", "--no-check", "-P=app", file],
  tests: true,
  deadlines: DEADLINES.has(suiteName(file)),
  niced: !DEADLINES.has(suiteName(file)),
});

/** The type check gets at least this long, whatever `--file-timeout` says. */
const CHECK_TIMEOUT_MS = 5 * 60_000;

/** The type check of every file, as `deno test` would have done; a type error fails the run. */
const typeCheck = (files: string[]): Job => ({
  name: "deno check",
  args: ["check", "-q", ...files],
  tests: false,
  deadlines: false,
  niced: true,
});

/** Lines of each failed file's output shown again at the end. */
const RECAP_LINES = 60;

/**
 * The failed files' headings and the ends of their outputs again, just above the totals, where a
 * CI log cut to its last lines still shows why. Indented, so that no summary line in it is counted
 * twice by whatever adds up `deno test`'s summaries.
 */
function recap(runs: Array<{ heading: string; output: string }>): string {
  const parts = runs.map(({ heading, output }) => {
    const lines = output ? output.split("\n") : ["(it printed nothing)"];
    const shown = lines.slice(-RECAP_LINES);
    const cut = lines.length - shown.length;
    return [
      `   ${heading}${cut ? ` (its last ${shown.length} lines of ${lines.length})` : ""}`,
      ...shown.map((line) => `   | ${line}`),
    ].join("\n");
  });
  return [`suite: ${runs.length} failed; again, from the end of each:`, ...parts].join("\n");
}

function minutes(ms: number): string {
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      jobs: { type: "string" },
      "deadline-jobs": { type: "string", default: "3" },
      "file-timeout": { type: "string", default: "20" },
    },
  });
  const jobs = values.jobs === undefined ? defaultJobs() : Number(values.jobs);
  const deadlineJobs = Number(values["deadline-jobs"]);
  const timeoutMinutes = Number(values["file-timeout"]);
  const counts = [["--jobs", jobs, values.jobs], [
    "--deadline-jobs",
    deadlineJobs,
    values["deadline-jobs"],
  ]] as const;
  for (const [flag, value, given] of counts) {
    if (!Number.isInteger(value) || value < 1) {
      console.error(`Cannot run the suite: ${flag} ${given} is not a whole number above 0`);
      return 2;
    }
  }
  if (!(timeoutMinutes > 0)) {
    console.error(
      `Cannot run the suite: --file-timeout ${
        values["file-timeout"]
      } is not a number of minutes above 0`,
    );
    return 2;
  }
  const files = (positionals.length ? positionals : [TESTS]).flatMap((path) => {
    try {
      return testFilesIn(path);
    } catch {
      console.error(`Cannot run ${path}: no such file or folder`);
      Deno.exit(2);
    }
  });
  const rank = (file: string) => {
    const i = LONGEST_FIRST.indexOf(suiteName(file));
    return i === -1 ? LONGEST_FIRST.length : i;
  };
  const ordered = [...files].sort((a, b) => rank(a) - rank(b));
  const deadlineFiles = files.filter((f) => DEADLINES.has(suiteName(f))).length;

  const started = performance.now();
  const totals = { passed: 0, steps: 0, failed: 0, ignored: 0 };
  const failedFiles: string[] = [];
  const failedRuns: Array<{ heading: string; output: string }> = [];
  let finished = 0;
  const report = (run: FileRun) => {
    finished++;
    const summary = run.output.match(SUMMARY);
    const failed = run.code !== 0 || (run.job.tests && !summary);
    if (summary) {
      totals.passed += Number(summary[2]);
      totals.steps += Number(summary[3] ?? 0);
      totals.failed += Number(summary[4]);
      totals.ignored += Number(summary[5] ?? 0);
    }
    if (failed) failedFiles.push(run.job.name);
    if (failed && (!summary || Number(summary[4]) === 0)) totals.failed++;
    const why = run.timedOut
      ? ` (ended after ${timeoutMinutes} minutes: it hung or ran too long)`
      : failed && !summary
      ? ` (exit ${run.code}${run.job.tests ? " before its summary" : ""})`
      : "";
    const heading = `── ${run.job.name}: ${failed ? "FAILED" : "ok"} in ${minutes(run.ms)}${why}`;
    console.log(
      `${heading} [${finished}/${files.length + 1}, ${minutes(performance.now() - started)}]`,
    );
    const text = run.output.trimEnd();
    if (text) console.log(text);
    if (failed) failedRuns.push({ heading, output: text });
  };
  console.log(
    `suite: ${files.length} files, ${jobs} at a time` +
      (deadlineFiles
        ? `; the ${deadlineFiles} that check deadlines at most ${deadlineJobs} at a time, the rest ${NICE} steps lower`
        : ""),
  );
  await runAll(
    [typeCheck(files), ...ordered.map(testFile)],
    { jobs, deadlineJobs, timeoutMs: timeoutMinutes * 60_000 },
    report,
  );

  if (failedRuns.length) console.log(recap(failedRuns));
  console.log(
    `suite: ${totals.passed} passed (${totals.steps} steps), ${totals.failed} failed, ` +
      (totals.ignored ? `${totals.ignored} ignored, ` : "") +
      `${files.length} files in ${minutes(performance.now() - started)}` +
      (failedFiles.length ? `; failed: ${failedFiles.join(", ")}` : ""),
  );
  return failedFiles.length ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main());
