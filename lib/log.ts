/**
 * Human-facing diagnostics. Everything goes to stderr so stdout stays the
 * transcript (and stays clean JSON lines with `--format jsonl`).
 *
 * @module
 */
import { printable } from "./text/printable.ts";

/** Where diagnostics go; tests pass their own to capture lines. */
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** Logger writing `callscribe: …` lines to stderr. `quiet` drops info lines. */
export function stderrLogger(options: { quiet?: boolean } = {}): Logger {
  const encoder = new TextEncoder();
  // No control character reaches the terminal (an escape sequence in a logged value would
  // rewrite it); the message's own line breaks stay.
  const write = (message: string) =>
    Deno.stderr.writeSync(
      encoder.encode(message.split("\n").map((line) => printable(line)).join("\n") + "\n"),
    );
  return {
    info: (message) => {
      if (!options.quiet) write(`callscribe: ${message}`);
    },
    warn: (message) => write(`callscribe: warning: ${message}`),
    error: (message) => write(`callscribe: error: ${message}`),
  };
}

/** A logger that keeps lines in memory, for tests. */
export function memoryLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (m) => lines.push(`info: ${m}`),
    warn: (m) => lines.push(`warn: ${m}`),
    error: (m) => lines.push(`error: ${m}`),
  };
}
