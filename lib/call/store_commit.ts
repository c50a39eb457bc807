/**
 * The commit stage of the call-event pipeline on a {@link TranscriptStore}:
 * each event that is kept (a call's start, a final, a call's end; partials
 * and errors are not) is written in one transaction, with the outbox's work
 * ({@link StoreEventHook}) in the same transaction.
 *
 * @module
 */
import type { Segment, StoredCall, StoreTransaction, TranscriptStore } from "../store/db.ts";
import { saveCallAudio } from "../store/call_audio.ts";
import type { Logger } from "../log.ts";
import { printable } from "../text/printable.ts";
import type { CallEvent } from "./events.ts";
import type { CommitStage } from "./pipeline.ts";

/**
 * Work done inside the transaction that stores a call event (the webhook
 * outbox): `ended` is, for `call-ended`, the call as stored once ended, with
 * its segments.
 */
export type StoreEventHook = (
  tx: StoreTransaction,
  event: CallEvent,
  ended?: { call: StoredCall; segments: Segment[] },
) => void | Promise<void>;

/** Options of {@link storeCommit}. */
export interface StoreCommitOptions {
  /** The engine recorded for the calls and for finals that name none. */
  engine?: string;
  /** Runs inside the transaction of each stored event. */
  within?: StoreEventHook;
  /** Where a call's audio summary that cannot be stored is reported (it is not retried). */
  log?: Logger;
}

/** The commit stage that writes call events to `store`. */
export function storeCommit(store: TranscriptStore, options: StoreCommitOptions = {}): CommitStage {
  const { engine, within } = options;
  return async (event: CallEvent) => {
    const callSid = event.call.callSid;
    switch (event.type) {
      case "call-started":
        await store.callStarted(event.call, event.at, engine, {
          within: within && ((tx) => within(tx, event)),
        });
        return;
      case "transcript": {
        if (event.transcript.type !== "final") return;
        const final = event.transcript;
        return await store.addSegment(
          callSid,
          { ...final, engine: final.engine ?? engine },
          { within: within && ((tx) => within(tx, event)) },
        );
      }
      case "call-ended": {
        // Read before the end's transaction (SQLite runs one at a time); the call's finals are all committed.
        const stored = within && await store.getCall(callSid);
        const audioMs = event.audio
          ? Math.max(
            event.audio.recordedMs ?? 0,
            event.audio.quality.inbound.receivedMs,
            event.audio.quality.outbound.receivedMs,
          )
          : 0;
        const ended = stored
          ? {
            call: {
              ...stored,
              endedAt: event.at,
              status: "completed",
              endReason: event.reason,
              durationMs: Math.round(Math.max(0, event.at - stored.startedAt, audioMs)),
            },
            segments: await store.segments(callSid),
          }
          : undefined;
        await store.callEnded(callSid, event.at, event.reason, undefined, {
          within: within && ((tx) => within(tx, event, ended)),
          audioMs,
        });
        // The end is committed (and its webhook queued): a summary that cannot be stored is
        // reported, not retried, or the end would be committed (and delivered) twice.
        if (event.audio) {
          await saveCallAudio(store, callSid, event.audio).catch((error) =>
            options.log?.error(
              `call ${printable(callSid, 64)}: cannot store its audio summary: ${
                (error as Error).message
              }`,
            )
          );
        }
        return;
      }
    }
  };
}

/**
 * The `call-ended` event of a call marked interrupted (no registry ended
 * it): what the webhook outbox queues for it, with the stored call's status.
 */
export function interruptedEvent(call: StoredCall): CallEvent {
  return {
    type: "call-ended",
    call: {
      callSid: call.callSid,
      label: call.callSid,
      direction: call.direction,
      from: call.from ?? undefined,
      to: call.to ?? undefined,
    },
    at: call.endedAt ?? call.startedAt,
    reason: call.endReason ?? "interrupted",
  };
}
