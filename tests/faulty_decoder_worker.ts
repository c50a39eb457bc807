/**
 * The real decoder worker (lib/transcribe/local_worker.ts) with a fault put
 * in its command loop: the tracks it opens throw once they have been written
 * {@link FAULT_AFTER_BYTES} of audio, as a bug in the decoder would, so the
 * throw leaves the worker's loop and ends the worker.
 */
import { LocalDecoder } from "../lib/transcribe/local_decoder.ts";
import "../lib/transcribe/local_worker.ts";

/** One second of a track's µ-law audio. */
export const FAULT_AFTER_BYTES = 8000;

const open = LocalDecoder.prototype.open;
LocalDecoder.prototype.open = function (this: LocalDecoder, ...args) {
  const track = open.apply(this, args);
  let written = 0;
  const write = track.write.bind(track);
  track.write = (mulaw) => {
    written += mulaw.length;
    if (written > FAULT_AFTER_BYTES) throw new Error("decoder fault put in by the test");
    write(mulaw);
  };
  return track;
};
