/**
 * `deno task test`'s runner (tests/run_suite.ts): each file's output whole, the totals added up,
 * a failing file and a hung one reported by name, and the exit status.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { getPriority } from "node:os";

const RUNNER = fileURLToPath(new URL("./run_suite.ts", import.meta.url));
const FIXTURES = fileURLToPath(new URL("./fixtures/suite/", import.meta.url));

async function runSuite(...args: string[]) {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-q", "-P=app", RUNNER, ...args],
    // fixtures/suite/priority_test.ts fails unless the runner lowered its priority ten steps below
    // its own, which is this process's (Linux): so it can fail even where this test runs lowered.
    env: Deno.build.os === "linux"
      ? { SUITE_FIXTURE_NICE: String(Math.min(19, getPriority() + 10)) }
      : {},
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code,
    stdout: new TextDecoder().decode(stdout),
    stderr: new TextDecoder().decode(stderr),
  };
}

Deno.test("the runner adds up every file's summary, names the failed and hung files and exits 1", async () => {
  // 0.25 minutes: the hung file is ended after 15 s.
  const { code, stdout } = await runSuite("--jobs", "3", "--file-timeout", "0.25", FIXTURES);
  assert.equal(code, 1, stdout);
  const lines = stdout.trimEnd().split("\n");
  assert.match(
    lines.at(-1)!,
    /^suite: 4 passed \(1 steps\), 2 failed, 4 files in \d+m\d\ds; failed: fixtures\/suite\/fails_test\.ts, fixtures\/suite\/hangs_test\.ts$/,
  );
  assert.match(
    stdout,
    /── fixtures\/suite\/hangs_test\.ts: FAILED in 0m1\ds \(ended after 0\.25 minutes/,
  );
  // Each file's output follows its own heading, whole: the failure's lines sit under fails_test.
  const failsAt = lines.findIndex((l) => l.startsWith("── fixtures/suite/fails_test.ts: FAILED"));
  const nextHeading = lines.findIndex((l, i) => i > failsAt && l.startsWith("── "));
  const failsOutput = lines.slice(failsAt, nextHeading === -1 ? undefined : nextHeading).join("\n");
  assert.match(failsOutput, /this failure is expected by run_suite_test/);
  assert.match(failsOutput, /^FAILED \| 1 passed \| 1 failed/m);
  // deno test's own summary line once per finished file: CI adds them up.
  assert.equal(stdout.match(/^(ok|FAILED) \| \d+ passed/gm)?.length, 3);
  // Above the totals, the failed files again, so that a log cut to its end still says why.
  const recapAt = lines.indexOf("suite: 2 failed; again, from the end of each:");
  assert.ok(recapAt > nextHeading, stdout);
  const recap = lines.slice(recapAt, -1).join("\n");
  assert.match(recap, /^ {3}── fixtures\/suite\/fails_test\.ts: FAILED in \d+m\d\ds$/m);
  assert.match(recap, /^ {3}\| .*this failure is expected by run_suite_test/m);
  assert.match(recap, /^ {3}── fixtures\/suite\/hangs_test\.ts: FAILED in 0m1\ds \(ended after/m);
  assert.doesNotMatch(recap, /passes_test/);
});

Deno.test("the runner exits 0 when every file passes, one file at a time too", async () => {
  const { code, stdout } = await runSuite("--jobs", "1", `${FIXTURES}passes_test.ts`);
  assert.equal(code, 0, stdout);
  assert.match(stdout, /^suite: 2 passed \(1 steps\), 0 failed, 1 files in \d+m\d\ds$/m);
});

Deno.test("the runner refuses a bad --jobs or a missing path before running anything", async () => {
  const jobs = await runSuite("--jobs", "0", FIXTURES);
  assert.equal(jobs.code, 2);
  assert.match(jobs.stderr, /--jobs 0 is not a whole number above 0/);
  assert.equal(jobs.stdout, "");
  const missing = await runSuite(`${FIXTURES}no_such_test.ts`);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /Cannot run .*no_such_test\.ts: no such file or folder/);
});

Deno.test("a type error fails the run in its type check, though the file's tests run unchecked", async () => {
  const dir = await Deno.makeTempDir({ prefix: "callscribe-suite-" });
  try {
    await Deno.writeTextFile(
      `${dir}/typo_test.ts`,
      'const n: number = "not a number";\nDeno.test("runs", () => void n);\n',
    );
    const { code, stdout } = await runSuite(dir);
    assert.equal(code, 1, stdout);
    assert.match(stdout, /── deno check: FAILED in \d+m\d\ds \(exit 1\)/);
    assert.match(stdout, /TS2322/);
    assert.match(
      stdout,
      /^suite: 1 passed \(0 steps\), 1 failed, 1 files in \d+m\d\ds; failed: deno check$/m,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
