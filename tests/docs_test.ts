/**
 * The documentation stays readable and true to the repository: every relative
 * link and anchor in README.md and docs/*.md leads somewhere (a link to a file
 * that does not exist is a failure, never skipped), the README stays short,
 * no page cites an internal issue number, and the README's commands table
 * names exactly the tasks of deno.json.
 */
import assert from "node:assert/strict";
import { dirname, join, normalize, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const README = join(ROOT, "README.md");
/** The README is read in five minutes; the rest lives in docs/. */
const README_MAX_LINES = 250;

/** README.md and every Markdown file in docs/. */
function documents(): string[] {
  const docs = [...Deno.readDirSync(join(ROOT, "docs"))]
    .filter((entry) => entry.isFile && entry.name.endsWith(".md"))
    .map((entry) => join(ROOT, "docs", entry.name))
    .sort();
  return [README, ...docs];
}

/** The text without fenced code blocks and inline code, line numbers kept. */
export function proseOf(markdown: string): string {
  let fence: string | null = null;
  return markdown.split("\n").map((line) => {
    const marker = /^\s*(`{3,}|~{3,})/.exec(line)?.[1];
    if (fence !== null) {
      if (marker && marker[0] === fence[0] && marker.length >= fence.length) fence = null;
      return "";
    }
    if (marker) {
      fence = marker;
      return "";
    }
    return line.replace(/(`+)[^`]*?\1/g, "");
  }).join("\n");
}

/** A link's target and the line it is on. */
export interface Link {
  target: string;
  line: number;
}

/** Inline links and images (`[text](target)`, `![alt](target)`) outside code. */
export function linksOf(markdown: string): Link[] {
  const links: Link[] = [];
  proseOf(markdown).split("\n").forEach((line, i) => {
    for (const match of line.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+["'][^"']*["'])?\s*\)/g)) {
      links.push({ target: match[1], line: i + 1 });
    }
  });
  return links;
}

/** The anchor GitHub gives a heading (lower case, punctuation dropped, spaces to hyphens). */
export function slugOf(heading: string): string {
  return heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
    .replace(/<[^>]+>/g, "")
    .replace(/[`*]/g, "")
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "")
    .replace(/ /g, "-");
}

/** Every anchor a Markdown file offers: its headings' (numbered when repeated) and explicit ids. */
export function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  let fence: string | null = null;
  for (const line of markdown.split("\n")) {
    const marker = /^\s*(`{3,}|~{3,})/.exec(line)?.[1];
    if (fence !== null) {
      if (marker && marker[0] === fence[0] && marker.length >= fence.length) fence = null;
      continue;
    }
    if (marker) {
      fence = marker;
      continue;
    }
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (heading) {
      const slug = slugOf(heading[1]);
      const count = seen.get(slug) ?? 0;
      seen.set(slug, count + 1);
      anchors.add(count ? `${slug}-${count}` : slug);
    }
    for (const id of line.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) anchors.add(id[1]);
  }
  return anchors;
}

/** Why each relative link of `file` leads nowhere (empty when all lead somewhere). */
function brokenLinks(file: string): string[] {
  const problems: string[] = [];
  const where = (line: number) => `${relative(ROOT, file)}:${line}`;
  for (const { target, line } of linksOf(Deno.readTextFileSync(file))) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto: …: not ours to check
    const hash = target.indexOf("#");
    const path = decodeURIComponent(hash < 0 ? target : target.slice(0, hash));
    const anchor = hash < 0 ? undefined : decodeURIComponent(target.slice(hash + 1));
    const resolved = path ? normalize(join(dirname(file), path)) : file;
    if (!resolved.startsWith(ROOT)) {
      problems.push(`${where(line)}: ${target} leads outside the repository`);
      continue;
    }
    let stat: Deno.FileInfo;
    try {
      stat = Deno.statSync(resolved);
    } catch {
      problems.push(`${where(line)}: ${target}: no file ${relative(ROOT, resolved)}`);
      continue;
    }
    if (anchor === undefined) continue;
    if (!stat.isFile || !resolved.endsWith(".md")) {
      problems.push(`${where(line)}: ${target}: an anchor into a file that is not Markdown`);
    } else if (!anchorsOf(Deno.readTextFileSync(resolved)).has(anchor)) {
      problems.push(
        `${where(line)}: ${target}: no heading #${anchor} in ${relative(ROOT, resolved)}`,
      );
    }
  }
  return problems;
}

/** Internal issue references: "(issue 16)", "issue #16", "issues 16 and 18", a bare "#16". */
const ISSUE_REFERENCE = /\bissues?\s+#?\d+|(?<![\w/.-])#\d+\b/i;

Deno.test("docs: every relative link and anchor in README.md and docs/*.md leads somewhere", () => {
  const problems = documents().flatMap(brokenLinks);
  assert.deepEqual(problems, [], `broken links:\n${problems.join("\n")}`);
});

Deno.test("docs: the README has at most 250 lines", () => {
  const lines = Deno.readTextFileSync(README).replace(/\n$/, "").split("\n").length;
  assert.ok(lines <= README_MAX_LINES, `README.md has ${lines} lines, at most ${README_MAX_LINES}`);
});

Deno.test("docs: no page cites an internal issue number", () => {
  const found = documents().flatMap((file) =>
    Deno.readTextFileSync(file).split("\n").flatMap((line, i) => {
      const match = ISSUE_REFERENCE.exec(line);
      return match ? [`${relative(ROOT, file)}:${i + 1}: "${match[0]}"`] : [];
    })
  );
  assert.deepEqual(found, [], `internal issue references:\n${found.join("\n")}`);
});

Deno.test("docs: the README's commands table names exactly the tasks of deno.json", () => {
  const config = JSON.parse(Deno.readTextFileSync(join(ROOT, "deno.json")));
  const tasks = Object.keys(config.tasks).sort();
  const rows = Deno.readTextFileSync(README).split("\n").filter((l) => /^\|\s*`deno task /.test(l));
  assert.ok(rows.length > 0, "README.md has no commands table (rows starting | `deno task …`)");
  const named = [...new Set(rows.map((row) => /^\|\s*`deno task ([\w-]+)/.exec(row)![1]))].sort();
  assert.deepEqual(named, tasks, "the commands table and deno.json's tasks differ");
});

Deno.test("docs: the link checker finds what it is meant to find", () => {
  const page = "# A `code` heading: (twice)\n## Twice\n## Twice\n" +
    "[a](#a-code-heading-twice) [b](#twice-1) ![c](x.png 'no')\n" +
    "```\n[not a link](nowhere.md)\n```\n`[nor this](nowhere.md)` [d](other.md#part)\n";
  assert.deepEqual([...anchorsOf(page)], ["a-code-heading-twice", "twice", "twice-1"]);
  assert.deepEqual(linksOf(page).map((l) => l.target), [
    "#a-code-heading-twice",
    "#twice-1",
    "x.png",
    "other.md#part",
  ]);
  assert.equal(slugOf("Live latency and the engine's cost"), "live-latency-and-the-engines-cost");
  assert.equal(slugOf("Speakers and languages (AssemblyAI)"), "speakers-and-languages-assemblyai");
  for (const bad of ["(issue 16)", "see issue #4", "issues 16", "fixed in #12"]) {
    assert.match(bad, ISSUE_REFERENCE);
  }
  for (const good of ["denoland/deno#36626", "[x](#real-calls)", "issue a token", "RFC 9110"]) {
    assert.doesNotMatch(good, ISSUE_REFERENCE);
  }
});
