/** Runs `make_call.ts` as a subprocess, the way a user runs `deno task call`. */
import { fileURLToPath } from "node:url";

const MAKE_CALL = fileURLToPath(new URL("../make_call.ts", import.meta.url));

/**
 * Runs make_call.ts with only the given environment (plus what deno needs); with `task`, as
 * `deno task call` in the project, the way users run it.
 */
export function makeCall(
  args: string[],
  env: Record<string, string>,
  options: { task?: boolean } = {},
) {
  const keep = ["HOME", "PATH", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR"];
  const base = Object.fromEntries(
    keep.flatMap((k) => Deno.env.get(k) !== undefined ? [[k, Deno.env.get(k)!]] : []),
  );
  return new Deno.Command(Deno.execPath(), {
    args: options.task ? ["task", "call", ...args] : ["run", "-A", MAKE_CALL, ...args],
    cwd: options.task ? fileURLToPath(new URL("..", import.meta.url)) : undefined,
    env: { ...base, ...env },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}
