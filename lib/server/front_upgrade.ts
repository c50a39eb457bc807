/**
 * The {@link UpgradeStream} of a server behind the connection front: a media
 * stream the app accepted is served by the front itself (see
 * {@link StreamHandoff}), so each frame costs one read instead of a copy
 * over loopback and `Deno.serve`'s own read and events. A request that did
 * not come through the front (in-process) is upgraded by the fallback.
 *
 * @module
 */
import type { SocketListener, UpgradeStream } from "./stream_socket.ts";
import type { StreamHandoff } from "./stream_handoff.ts";
import { MAX_MESSAGE_BYTES } from "./media_stream.ts";

/** Upgrades through `handoff` when the front holds the request's connection, else with `fallback`. */
export function upgradeThroughFront(
  handoff: StreamHandoff,
  fallback: UpgradeStream,
): UpgradeStream {
  return (request, make, onClosed) => {
    // Set before the front reads a frame: the first read comes in a later turn.
    let listener: SocketListener | undefined = undefined;
    const stream = handoff.take(request, {
      onMessage: (data) => listener!.onMessage(data),
      readText: (bytes) => listener!.readText?.(bytes) ?? false,
      onOversized: (bytes) => listener!.onOversized?.(bytes),
      onClose: () => {
        listener!.onClose();
        onClosed?.();
      },
      maxMessageBytes: MAX_MESSAGE_BYTES,
    });
    if (!stream) return fallback(request, make, onClosed);
    listener = make({
      send: (text) => stream.send(text),
      close: (code, reason) => stream.close(code, reason),
      unsentBytes: () => stream.unsentBytes,
    });
    // Goes nowhere: the front has closed this request's connection and answered 101 itself.
    return new Response(null, { status: 204 });
  };
}
