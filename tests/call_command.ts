/** Runs `make_call.ts` as a subprocess, the way a user runs `deno task call`. */
import { fileURLToPath } from "node:url";

const MAKE_CALL = fileURLToPath(new URL("../make_call.ts", import.meta.url));

/** Runs make_call.ts with only the given environment (plus what deno needs). */
export function makeCall(args: string[], env: Record<string, string>) {
  const keep = ["HOME", "PATH", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR"];
  const base = Object.fromEntries(
    keep.flatMap((k) => Deno.env.get(k) !== undefined ? [[k, Deno.env.get(k)!]] : []),
  );
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAKE_CALL, ...args],
    env: { ...base, ...env },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}
