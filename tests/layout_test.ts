/**
 * The layering of lib/ and app/: no import cycle between folders, and each
 * folder imports only folders of lower layers ({@link LAYERS}, the table of
 * docs/architecture.md). Imports are read from every .ts and .js file.
 */
import assert from "node:assert/strict";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/**
 * Folders from the bottom up: a folder may import the folders of the layers
 * below its own, never one of its own layer or above. `lib` is the files
 * directly in lib/ (log, parse, user_error, seeded_random).
 */
const LAYERS: readonly (readonly string[])[] = [
  ["lib/text", "lib/async"],
  ["lib", "lib/server/static"],
  ["lib/audio", "lib/twilio", "lib/model"],
  ["lib/transcribe", "lib/laptop_audio"],
  ["lib/redact", "lib/metrics", "lib/recording", "lib/sim"],
  ["lib/store"],
  ["lib/call", "lib/export"],
  ["lib/console", "lib/live"],
  ["lib/delivery"],
  ["lib/cluster"],
  ["lib/server"],
  ["app"],
];

/** The folder a file belongs to, as LAYERS names it. */
function folderOf(path: string): string {
  const parts = relative(ROOT, path).split("/");
  parts.pop();
  return parts.join("/");
}

function sourceFiles(dir: string): string[] {
  const files: string[] = [];
  for (const entry of Deno.readDirSync(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) files.push(...sourceFiles(path));
    else if (/\.(ts|js)$/.test(entry.name)) files.push(path);
  }
  return files;
}

/** Folder -> imported folder -> the imports that make that edge (`file -> file`). */
function folderGraph(): Map<string, Map<string, string[]>> {
  const graph = new Map<string, Map<string, string[]>>();
  for (const file of [...sourceFiles(join(ROOT, "lib")), ...sourceFiles(join(ROOT, "app"))]) {
    const from = folderOf(file);
    if (!graph.has(from)) graph.set(from, new Map());
    const text = Deno.readTextFileSync(file);
    for (const match of text.matchAll(/(?:\bfrom|\bimport)\s*\(?\s*["'](\.\.?\/[^"']+)["']/g)) {
      const target = resolve(dirname(file), match[1]);
      const to = folderOf(target);
      if (to === from) continue;
      const edges = graph.get(from)!;
      edges.set(to, [
        ...(edges.get(to) ?? []),
        `${relative(ROOT, file)} -> ${relative(ROOT, target)}`,
      ]);
    }
  }
  return graph;
}

/** Strongly connected components with more than one folder (Tarjan). */
function cycles(graph: Map<string, Map<string, string[]>>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const found: string[][] = [];
  let next = 0;
  const visit = (node: string) => {
    index.set(node, next);
    low.set(node, next++);
    stack.push(node);
    for (const to of graph.get(node)?.keys() ?? []) {
      if (!index.has(to)) {
        visit(to);
        low.set(node, Math.min(low.get(node)!, low.get(to)!));
      } else if (stack.includes(to)) {
        low.set(node, Math.min(low.get(node)!, index.get(to)!));
      }
    }
    if (low.get(node) === index.get(node)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        component.push(member);
      } while (member !== node);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const node of graph.keys()) if (!index.has(node)) visit(node);
  return found;
}

Deno.test("no import cycle between the folders of lib/ and app/", () => {
  const graph = folderGraph();
  const problems = cycles(graph).map((component) => {
    const edges = component.flatMap((from) =>
      component.filter((to) => graph.get(from)?.has(to)).map((to) =>
        `  ${from} -> ${to}: ${graph.get(from)!.get(to)!.join(", ")}`
      )
    );
    return `cycle between ${component.join(", ")}:\n${edges.join("\n")}`;
  });
  assert.deepEqual(problems, [], problems.join("\n"));
});

Deno.test("each folder imports only folders of lower layers", () => {
  const graph = folderGraph();
  const layer = new Map(LAYERS.flatMap((folders, n) => folders.map((f) => [f, n] as const)));
  const unknown = [...graph.keys()].filter((folder) => !layer.has(folder));
  assert.deepEqual(unknown, [], `folders missing from LAYERS in tests/layout_test.ts: ${unknown}`);
  const problems: string[] = [];
  for (const [from, edges] of graph) {
    for (const [to, imports] of edges) {
      if (!layer.has(to)) problems.push(`${from} imports ${to}, outside lib/ and app/: ${imports}`);
      else if (layer.get(to)! >= layer.get(from)!) {
        problems.push(
          `${from} (layer ${layer.get(from)}) imports ${to} (layer ${layer.get(to)}): ${
            imports.join(", ")
          }`,
        );
      }
    }
  }
  assert.deepEqual(problems, [], problems.join("\n"));
});
