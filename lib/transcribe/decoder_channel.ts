/**
 * What the local engine tells a decoder worker after the model is loaded,
 * through a {@link SharedRing} (so the worker sleeps in `Atomics.wait`, not
 * in its event loop), and the counters they share. One order for audio and
 * commands: a close comes after all of its track's audio.
 *
 * @module
 */
import type { Track } from "./engine.ts";

/** A command to a decoder worker, in the order the engine sent it. */
export type DecoderCommand =
  /** `keyterms`: the call's own, added to the decoder's (see `TrackOptions`). */
  | { op: "open"; id: number; track: Track; keyterms?: readonly string[] }
  /** The next µ-law bytes of track `id`. */
  | { op: "audio"; id: number; mulaw: Uint8Array }
  | { op: "close"; id: number }
  /** Asks for the chunks decoded so far (answered once the audio before it is decoded). */
  | { op: "stats" }
  /** Drops every track and frees the model: the worker is then idle and can be terminated. */
  | { op: "stop" };

/**
 * Int32 slots of the counters the engine and a worker share
 * (`new Int32Array(new SharedArrayBuffer(4 * COUNTER_SLOTS))`).
 */
export const COUNTERS = {
  /** Set to 1 by the engine when it stops: audio still queued is skipped, not decoded. */
  stopping: 0,
  /** µ-law bytes the worker has decoded, wrapping at 2³¹ (compare differences, `| 0`). */
  decodedBytes: 1,
} as const;

/** How many Int32 slots {@link COUNTERS} needs. */
export const COUNTER_SLOTS: number = Object.keys(COUNTERS).length;

const OPS = ["open", "audio", "close", "stats", "stop"] as const;
const TRACKS: readonly Track[] = ["inbound", "outbound"];
/** One byte of op, four of track id, then the payload. */
const HEADER_BYTES = 5;

/**
 * The bytes of `command` for the ring. Throws a `RangeError` on a track that
 * is neither inbound nor outbound: the worker would refuse it, and a worker
 * that cannot read its ring ends every track it decodes.
 */
export function encodeCommand(command: DecoderCommand): Uint8Array {
  let payload: Uint8Array = new Uint8Array(0);
  if (command.op === "audio") payload = command.mulaw;
  if (command.op === "open") {
    const track = TRACKS.indexOf(command.track);
    if (track < 0) {
      throw new RangeError(
        `Cannot open track ${JSON.stringify(command.track)}: a track is "inbound" or "outbound"`,
      );
    }
    // The track's byte, then the call's key terms (if any) as UTF-8 JSON.
    const keyterms = command.keyterms?.length
      ? new TextEncoder().encode(JSON.stringify(command.keyterms))
      : new Uint8Array(0);
    payload = new Uint8Array(1 + keyterms.length);
    payload[0] = track;
    payload.set(keyterms, 1);
  }
  const bytes = new Uint8Array(HEADER_BYTES + payload.length);
  bytes[0] = OPS.indexOf(command.op);
  new DataView(bytes.buffer).setUint32(1, "id" in command ? command.id : 0, true);
  bytes.set(payload, HEADER_BYTES);
  return bytes;
}

/** The command in `bytes` (made by {@link encodeCommand}); throws on anything else. */
export function decodeCommand(bytes: Uint8Array): DecoderCommand {
  const op = OPS[bytes[0]];
  if (bytes.length < HEADER_BYTES || op === undefined) {
    throw new Error(`Cannot decode decoder command: ${bytes.length} bytes, op ${bytes[0]}`);
  }
  const id = new DataView(bytes.buffer, bytes.byteOffset).getUint32(1, true);
  switch (op) {
    case "audio":
      return { op, id, mulaw: bytes.subarray(HEADER_BYTES) };
    case "open": {
      const track = TRACKS[bytes[HEADER_BYTES]];
      if (track === undefined) throw new Error(`Cannot decode decoder command: no track in open`);
      const terms = bytes.subarray(HEADER_BYTES + 1);
      if (terms.length === 0) return { op, id, track };
      return { op, id, track, keyterms: JSON.parse(new TextDecoder().decode(terms)) };
    }
    case "close":
      return { op, id };
    default:
      return { op };
  }
}
