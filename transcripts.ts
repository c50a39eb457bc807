/**
 * `deno task transcripts`: the stored transcripts from the command line (the
 * command is `app/transcripts.ts`).
 *
 * @module
 */
import { runCommand } from "./app/run_command.ts";
import { transcriptsCommand } from "./app/transcripts.ts";

if (import.meta.main) await runCommand(() => transcriptsCommand(Deno.args));
