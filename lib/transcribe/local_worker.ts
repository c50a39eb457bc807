/**
 * A decoder worker of the local engine: one {@link LocalDecoder} (its own
 * copy of the model) on its own thread, so decoding neither blocks the
 * server's event loop nor is limited to one core. {@link LocalEngine} talks
 * to it with the messages below.
 *
 * @module
 */
import type { Track, TrackTranscriber, Transcript } from "./engine.ts";
import { LocalDecoder, type LocalEngineOptions } from "./local_decoder.ts";
import type { ModelFiles } from "../model/model_files.ts";
import { UserError } from "../user_error.ts";

/** Messages the engine sends a worker. */
export type ToWorker =
  /** `stopping[0]` turns 1 when the engine stops: audio still queued is then skipped, not decoded. */
  | { op: "load"; model: ModelFiles; options: LocalEngineOptions; stopping: Int32Array }
  | { op: "open"; id: number; track: Track }
  /** Audio of several tracks in one message: `lengths[i]` bytes of `mulaw` for track `ids[i]`, in order. */
  | { op: "audio"; ids: number[]; lengths: number[]; mulaw: Uint8Array<ArrayBuffer> }
  | { op: "close"; id: number }
  /** Asks for {@link LocalDecoder.chunksDecoded}. */
  | { op: "stats" }
  /** Drops every track and frees the model: the worker is then idle and can be terminated. */
  | { op: "stop" };

/** Messages a worker sends the engine. */
export type FromWorker =
  | { op: "loaded" }
  /** `userError`: the model was refused (a {@link UserError}), not a bug. */
  | { op: "loadFailed"; message: string; userError: boolean }
  | { op: "transcript"; id: number; transcript: Transcript }
  | { op: "error"; id: number; message: string }
  | { op: "closed"; id: number }
  | { op: "stopped" }
  | { op: "stats"; chunksDecoded: number }
  /** µ-law bytes decoded since the last ack: how the engine knows how far behind a worker is. */
  | { op: "ack"; bytes: number };

/** Acks are batched: one message per this many ms at most. */
const ACK_MS = 100;

const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
  postMessage(message: FromWorker): void;
};

let decoder: LocalDecoder | null = null;
let stopping: Int32Array | null = null;
const tracks = new Map<number, TrackTranscriber>();
let unacked = 0;
let ackTimer: ReturnType<typeof setTimeout> | undefined;

function ack(bytes: number): void {
  unacked += bytes;
  ackTimer ??= setTimeout(() => {
    ackTimer = undefined;
    scope.postMessage({ op: "ack", bytes: unacked });
    unacked = 0;
  }, ACK_MS);
}

scope.onmessage = async ({ data: message }) => {
  switch (message.op) {
    case "load":
      stopping = message.stopping;
      try {
        decoder = new LocalDecoder(message.model, message.options);
        scope.postMessage({ op: "loaded" });
      } catch (error) {
        scope.postMessage({
          op: "loadFailed",
          message: (error as Error).message,
          userError: error instanceof UserError,
        });
      }
      break;
    case "open": {
      const id = message.id;
      tracks.set(
        id,
        decoder!.open(message.track, {
          onTranscript: (transcript) => scope.postMessage({ op: "transcript", id, transcript }),
          onError: (error) => scope.postMessage({ op: "error", id, message: error.message }),
        }),
      );
      break;
    }
    case "audio": {
      if (stopping && Atomics.load(stopping, 0)) break;
      let offset = 0;
      message.ids.forEach((id, i) => {
        const end = offset + message.lengths[i];
        tracks.get(id)?.write(message.mulaw.subarray(offset, end));
        offset = end;
      });
      ack(message.mulaw.length);
      break;
    }
    case "stats":
      scope.postMessage({ op: "stats", chunksDecoded: decoder?.chunksDecoded ?? 0 });
      break;
    case "stop":
      // Messages run one at a time, so no decode is running now; none starts after.
      tracks.clear();
      await decoder?.dispose();
      decoder = null;
      scope.postMessage({ op: "stopped" });
      break;
    case "close": {
      const track = tracks.get(message.id);
      tracks.delete(message.id);
      await track?.close();
      scope.postMessage({ op: "closed", id: message.id });
      break;
    }
  }
};
