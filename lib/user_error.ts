/**
 * The one error type for what the user must fix: a setting, a file, a model,
 * an account. Any layer throws it; the commands print its message alone (no
 * stack) and exit with its code. Any other error is a bug and keeps its stack.
 *
 * @module
 */

/** Options of {@link UserError}. */
export interface UserErrorOptions {
  /** The process exit code when a command stops on this error (default 2). */
  exitCode?: number;
  cause?: unknown;
}

/**
 * A problem the user must fix; the message names it and the fix, e.g.
 * `PORT must be a port number (0-65535), got "x"`.
 */
export class UserError extends Error {
  override name = "UserError";
  /** The process exit code when a command stops on this error. */
  readonly exitCode: number;

  constructor(message: string, options: UserErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.exitCode = options.exitCode ?? 2;
  }
}
