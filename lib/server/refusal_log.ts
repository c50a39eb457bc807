/**
 * Refusals as the log shows them: the first of a kind is written at once,
 * repeats within {@link REFUSAL_SUMMARY_MS} are counted and written as one
 * line when that time is up (`… 512 more in the last 10 s`). A flood of bad
 * requests costs the log a line per kind per period, not a line each.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import { printable } from "../text/printable.ts";

/** The period over which repeated refusals of one kind are summed up. */
export const REFUSAL_SUMMARY_MS = 10_000;

/** Counts and writes refusals; see the module documentation. */
export class RefusalLog {
  #log: Logger;
  #periodMs: number;
  /** Kinds written in the current period, with the repeats since. */
  #repeats = new Map<string, number>();
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(log: Logger, periodMs = REFUSAL_SUMMARY_MS) {
    this.#log = log;
    this.#periodMs = periodMs;
  }

  /**
   * One refusal of `kind` (a fixed text such as `refused requests without
   * X-Twilio-Signature`); `detail` (the request, the client) is shown only
   * on the first of the period.
   */
  note(kind: string, detail?: string): void {
    const repeats = this.#repeats.get(kind);
    if (repeats !== undefined) {
      this.#repeats.set(kind, repeats + 1);
      return;
    }
    this.#repeats.set(kind, 0);
    this.#log.warn(detail === undefined ? kind : `${kind}: ${printable(detail, 300)}`);
    if (this.#timer === undefined) {
      const timer = setTimeout(() => this.flush(), this.#periodMs);
      // A summary still due never keeps the process alive.
      Deno.unrefTimer(timer);
      this.#timer = timer;
    }
  }

  /** Writes the counts of the period now and starts a new one. */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const seconds = Math.round(this.#periodMs / 1000);
    for (const [kind, repeats] of this.#repeats) {
      if (repeats > 0) this.#log.warn(`${kind}: ${repeats} more in the last ${seconds} s`);
    }
    this.#repeats.clear();
  }
}
