/**
 * Runs a command body and exits with its code. A problem the user must fix is
 * printed as its message alone; anything else is a bug and keeps its stack.
 *
 * @module
 */
import { WavError } from "../lib/audio/wav.ts";
import { stderrLogger } from "../lib/log.ts";
import { ModelError } from "../lib/model/model_files.ts";
import { TunnelError } from "../lib/server/tunnel.ts";
import { ConfigError } from "./config.ts";

/** Runs `command`, then exits the process with the code it returns. */
export async function runCommand(command: () => number | Promise<number>): Promise<never> {
  try {
    Deno.exit(await command());
  } catch (error) {
    if (
      error instanceof ConfigError || error instanceof ModelError || error instanceof WavError ||
      error instanceof TunnelError
    ) {
      stderrLogger().error(error.message);
      Deno.exit(2);
    }
    throw error;
  }
}
