/**
 * Runs a command body and exits with its code. A problem the user must fix is
 * printed as its message alone; anything else is a bug and keeps its stack.
 *
 * @module
 */
import { stderrLogger } from "../lib/log.ts";
import { UserError } from "../lib/user_error.ts";

/** Runs `command`, then exits the process with the code it returns. */
export async function runCommand(command: () => number | Promise<number>): Promise<never> {
  try {
    Deno.exit(await command());
  } catch (error) {
    if (error instanceof UserError) {
      stderrLogger().error(error.message);
      Deno.exit(error.exitCode);
    }
    throw error;
  }
}
