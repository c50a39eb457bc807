/**
 * The call-event pipeline: every call event is first committed (the store
 * and the webhook outbox, in one transaction), and only once that commit has
 * resolved is it published (console, live hub, webhook wake, logs). Commit
 * and publish are two stages of this one class: a publisher can only be
 * registered here ({@link CallEventPipeline.publish}), so it only ever hears
 * committed events.
 *
 * A commit that fails is tried again ({@link COMMIT_RETRY_MS}); one that
 * still fails is published to nobody. Instead the failure is logged as an
 * error that carries the final's words (so what was said is not lost), and
 * publishers hear a `call-error` saying the event was not stored. The call
 * goes on, and other calls are not touched (the registry runs each call's
 * events in order, calls side by side).
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { Segment } from "../store/db.ts";
import { printable } from "../text/printable.ts";
import type { CallEvent } from "./events.ts";

/**
 * Commits one call event (store and outbox in one transaction); for a
 * final, resolves with it as stored. Rejects when nothing was committed.
 */
export type CommitStage = (event: CallEvent) => Promise<Segment | void>;

/**
 * Hears a committed call event; for a final, `stored` is the segment as
 * stored (absent when nothing stores). A returned promise is awaited
 * before the next publisher hears the event.
 */
export type Publisher = (event: CallEvent, stored?: Segment) => unknown;

/** Waits before the second, third and fourth attempt of a failed commit. */
export const COMMIT_RETRY_MS: readonly number[] = [100, 500, 2000];

/** Options of a {@link CallEventPipeline}. */
export interface CallEventPipelineOptions {
  /** The commit stage; without one (no store) events go straight to the publishers. */
  commit?: CommitStage;
  /** Where failed commits are reported. */
  log: Logger;
  /** Waits between commit attempts (default {@link COMMIT_RETRY_MS}). */
  retryMs?: readonly number[];
}

/** Commit, then publish, for every call event of one server. */
export class CallEventPipeline {
  #commit: CommitStage | undefined;
  #log: Logger;
  #retryMs: readonly number[];
  #publishers = new Set<Publisher>();

  constructor(options: CallEventPipelineOptions) {
    this.#commit = options.commit;
    this.#log = options.log;
    this.#retryMs = options.retryMs ?? COMMIT_RETRY_MS;
  }

  /**
   * Registers a publisher: it hears each event once it is committed, after
   * the publishers registered before it. Returns the unregister function.
   */
  publish(publisher: Publisher): () => void {
    this.#publishers.add(publisher);
    return () => this.#publishers.delete(publisher);
  }

  /** Commits `event`, then publishes it; never rejects (a failure is reported instead). */
  async run(event: CallEvent): Promise<void> {
    let stored: Segment | void;
    try {
      stored = await this.#committed(event);
    } catch (error) {
      this.#reportUncommitted(event, error as Error);
      await this.#fanOut({
        type: "call-error",
        call: event.call,
        message: `${describe(event)} could not be stored (${
          (error as Error).message
        }); it is not shown or delivered`,
      });
      return;
    }
    await this.#fanOut(event, stored ?? undefined);
  }

  async #committed(event: CallEvent): Promise<Segment | void> {
    if (!this.#commit) return;
    for (let attempt = 0;; attempt++) {
      try {
        return await this.#commit(event);
      } catch (error) {
        const wait = this.#retryMs[attempt];
        if (wait === undefined) throw error;
        this.#log.warn(
          `call ${printable(event.call.callSid, 64)}: cannot store ${describe(event)} (${
            printable((error as Error).message, 300)
          }); trying again in ${wait} ms`,
        );
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }

  #reportUncommitted(event: CallEvent, error: Error): void {
    const words = event.type === "transcript"
      ? ` Its words, kept here only: [${event.transcript.track} ${event.transcript.startMs}-${event.transcript.endMs} ms] "${
        printable(event.transcript.text, 2000)
      }"`
      : "";
    this.#log.error(
      `call ${printable(event.call.callSid, 64)}: ${describe(event)} could not be stored after ${
        this.#retryMs.length + 1
      } attempts (${
        printable(error.message, 300)
      }); it is not printed, sent live or delivered.${words}`,
    );
  }

  async #fanOut(event: CallEvent, stored?: Segment): Promise<void> {
    for (const publisher of [...this.#publishers]) {
      try {
        await publisher(event, stored);
      } catch (error) {
        // A broken publisher must not break the call or the other publishers.
        this.#log.error(`a publisher of call events failed: ${(error as Error).message}`);
      }
    }
  }
}

function describe(event: CallEvent): string {
  switch (event.type) {
    case "transcript":
      return `a ${event.transcript.type}`;
    case "call-started":
      return "the call's start";
    case "call-ended":
      return "the call's end";
    case "call-error":
      return "an error";
  }
}
