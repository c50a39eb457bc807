/**
 * `deno task serve`: the callscribe server (the command is `app/serve.ts`).
 *
 * @module
 */
import { runCommand } from "./app/run_command.ts";
import { serveCommand } from "./app/serve.ts";

if (import.meta.main) await runCommand(() => serveCommand(Deno.args));
