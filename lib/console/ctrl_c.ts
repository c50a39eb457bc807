/**
 * Ctrl-C as a person presses it. Under `deno task` one press arrives twice:
 * the terminal sends SIGINT to the whole foreground group, and `deno task`
 * forwards its own copy to the command. SIGINTs this close together are one
 * press; only a press after that counts as the second ("leave now").
 *
 * @module
 */

/** SIGINTs within this many ms of the first are the same press. */
export const SAME_PRESS_MS = 300;

/** What to do on the first press and on a later one. */
export interface CtrlCHandlers {
  /** The first press: end the work properly. */
  first(): void;
  /** A press after the first: leave at once. */
  again(): void;
}

/** Listens for SIGINT until the returned function is called. */
export function onCtrlC(handlers: CtrlCHandlers): () => void {
  let firstAt: number | null = null;
  const listener = () => {
    const now = performance.now();
    if (firstAt === null) {
      firstAt = now;
      handlers.first();
    } else if (now - firstAt > SAME_PRESS_MS) {
      handlers.again();
    }
  };
  Deno.addSignalListener("SIGINT", listener);
  return () => Deno.removeSignalListener("SIGINT", listener);
}
