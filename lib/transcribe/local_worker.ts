/**
 * A decoder worker of the local engine: one {@link LocalDecoder} (its own
 * copy of the model) on its own thread, so decoding neither blocks the
 * server's event loop nor is limited to one core. {@link LocalEngine} loads
 * the model with a message; after that, audio and commands come through a
 * {@link SharedRing} and the worker sleeps in `Atomics.wait` between them
 * (see decoder_channel.ts).
 *
 * @module
 */
import type { TrackTranscriber, Transcript } from "./engine.ts";
import { LocalDecoder } from "./local_decoder.ts";
import type { LocalEngineOptions } from "./local_engine_options.ts";
import type { ModelFiles } from "../model/model_files.ts";
import { SharedRing } from "../async/shared_ring.ts";
import { COUNTERS, decodeCommand } from "./decoder_channel.ts";
import { UserError } from "../user_error.ts";

/** The one message the engine posts a worker; `ring` and `counters` are then the channel. */
export interface LoadMessage {
  model: ModelFiles;
  options: LocalEngineOptions;
  ring: SharedArrayBuffer;
  /** {@link COUNTERS}. */
  counters: SharedArrayBuffer;
}

/** Messages a worker sends the engine. */
export type FromWorker =
  | { op: "loaded" }
  /** `userError`: the model was refused (a {@link UserError}), not a bug. */
  | { op: "loadFailed"; message: string; userError: boolean }
  | { op: "transcript"; id: number; transcript: Transcript }
  | { op: "error"; id: number; message: string }
  | { op: "closed"; id: number }
  | { op: "stopped" }
  | { op: "stats"; chunksDecoded: number };

const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<LoadMessage>) => void) | null;
  postMessage(message: FromWorker): void;
};

scope.onmessage = ({ data }) => {
  scope.onmessage = null;
  let decoder: LocalDecoder;
  try {
    decoder = new LocalDecoder(data.model, data.options);
  } catch (error) {
    scope.postMessage({
      op: "loadFailed",
      message: (error as Error).message,
      userError: error instanceof UserError,
    });
    return;
  }
  scope.postMessage({ op: "loaded" });
  // Its rejection is an uncaught error: the engine's onerror fails this worker's tracks.
  serve(decoder, new SharedRing(data.ring), new Int32Array(data.counters));
};

/** Runs the engine's commands until it says stop. */
async function serve(decoder: LocalDecoder, ring: SharedRing, counters: Int32Array): Promise<void> {
  const tracks = new Map<number, TrackTranscriber>();
  for (;;) {
    ring.waitForMessage();
    let decodedBytes = 0;
    let audioCommands = 0;
    /** The decoder queues the chunks the writes made ready and decodes them in a microtask. */
    const decodeAndCount = async () => {
      await null;
      Atomics.add(counters, COUNTERS.decodedBytes, decodedBytes);
      decodedBytes = 0;
      audioCommands = 0;
    };
    // Only what is there now: read until the ring is empty, a worker that is behind (the engine
    // writes every 20 ms) would never reach the count, and the engine would take all the audio
    // since then for not yet decoded (the capacity run read 1 s more lag per second). And counted
    // a hand-off at a time (a frame per track), not once for all a worker that is behind finds.
    for (const bytes of ring.messagesNow()) {
      const command = decodeCommand(bytes);
      switch (command.op) {
        case "open": {
          const id = command.id;
          tracks.set(
            id,
            decoder.open(command.track, {
              onTranscript: (transcript) => scope.postMessage({ op: "transcript", id, transcript }),
              onError: (error) => scope.postMessage({ op: "error", id, message: error.message }),
            }, { keyterms: command.keyterms }),
          );
          break;
        }
        case "audio":
          if (!Atomics.load(counters, COUNTERS.stopping)) {
            tracks.get(command.id)?.write(command.mulaw);
          }
          decodedBytes += command.mulaw.length;
          if (++audioCommands >= tracks.size) await decodeAndCount();
          break;
        case "close": {
          const track = tracks.get(command.id);
          tracks.delete(command.id);
          await track?.close();
          scope.postMessage({ op: "closed", id: command.id });
          break;
        }
        case "stats":
          await null; // the decodes queued by the audio before (see below)
          scope.postMessage({ op: "stats", chunksDecoded: decoder.chunksDecoded });
          break;
        case "stop":
          tracks.clear();
          await decoder.dispose();
          scope.postMessage({ op: "stopped" });
          return;
      }
    }
    await decodeAndCount();
  }
}
