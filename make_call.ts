/**
 * `deno task call`: places a call, real or simulated (the command is `app/call.ts`).
 *
 * @module
 */
import { callCommand } from "./app/call.ts";
import { runCommand } from "./app/run_command.ts";

if (import.meta.main) await runCommand(() => callCommand(Deno.args));
