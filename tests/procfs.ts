/**
 * Process facts from Linux /proc, for tests that check what a server left
 * running or holding. Deno refuses direct reads under /proc without
 * `--allow-all`; the tests run with the app's own permissions, so these read
 * /proc through `sh` (allowed by `--allow-run`).
 */

async function sh(script: string, ...args: string[]): Promise<string> {
  const { stdout } = await new Deno.Command("sh", {
    args: ["-c", script, "sh", ...args],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(stdout);
}

/** The fields of /proc/<pid>/stat after the parenthesised command name. */
function statFields(line: string): string[] {
  return line.slice(line.lastIndexOf(")") + 2).split(" ");
}

/** Resident set size of a process, in bytes. */
export async function rssOf(pid: number): Promise<number> {
  const status = await sh('cat "/proc/$1/status"', String(pid));
  const kb = /VmRSS:\s+(\d+) kB/.exec(status);
  if (!kb) throw new Error(`no process ${pid}`);
  return Number(kb[1]) * 1024;
}

/** Open file descriptors of a process (sockets, files, pipes). */
export async function fdsOf(pid: number): Promise<{ total: number; sockets: number }> {
  const links = (await sh('ls -l "/proc/$1/fd"', String(pid))).split("\n")
    .filter((l) => l.includes(" -> "));
  // Every live process has at least stdin, stdout and stderr: none means the read failed.
  if (links.length === 0) throw new Error(`no file descriptors of process ${pid}`);
  return { total: links.length, sockets: links.filter((l) => l.includes("-> socket:")).length };
}

/** Child processes of a process. */
export async function childrenOf(pid: number): Promise<number[]> {
  const stats = await sh("cat /proc/[0-9]*/stat");
  return stats.split("\n").filter((l) => l.includes(")"))
    .filter((l) => Number(statFields(l)[1]) === pid)
    .map((l) => Number(l.slice(0, l.indexOf(" "))));
}

/** Command line and zombie state of a process, or null once it is gone. */
export async function processOf(
  pid: number,
): Promise<{ cmdline: string; zombie: boolean } | null> {
  const out = await sh(
    'cat "/proc/$1/stat" && tr "\\0" " " < "/proc/$1/cmdline"',
    String(pid),
  );
  const [stat, cmdline = ""] = out.split("\n");
  if (!stat?.includes(")")) return null;
  return { cmdline, zombie: statFields(stat)[0] === "Z" };
}
