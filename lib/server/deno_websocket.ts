/**
 * The Deno adapter: upgrades a request with `Deno.upgradeWebSocket` and wires
 * the native socket to a transport-independent {@link MediaStreamHandler}.
 *
 * @module
 */
import { MAX_MESSAGE_BYTES, type MediaStreamHandler, type StreamSocket } from "./media_stream.ts";
import type { StreamHandoff } from "./stream_handoff.ts";

/**
 * Upgrades `request` and hands every message of the socket to the handler
 * `make` returns; `onClosed` runs after the handler heard the close.
 */
export function upgradeMediaStream(
  request: Request,
  make: (socket: StreamSocket) => MediaStreamHandler,
  onClosed?: () => void,
  handoff?: StreamHandoff,
): Response {
  // Through the connection front, the front serves the stream itself (no second socket).
  let taken: MediaStreamHandler | undefined;
  const stream = handoff?.take(request, {
    onMessage: (data) => taken!.onMessage(data),
    onOversized: (bytes) => taken!.onOversized(bytes),
    onClose: () => {
      taken!.onClose();
      onClosed?.();
    },
    maxMessageBytes: MAX_MESSAGE_BYTES,
  });
  if (stream) {
    taken = make({
      send: (text) => stream.send(text),
      close: (code, reason) => stream.close(code, reason),
      unsentBytes: () => stream.unsentBytes,
    });
    // Goes nowhere: the front has closed this request's connection and answered 101 itself.
    return new Response(null, { status: 204 });
  }
  // No ping timer: Deno re-arms it on every message, and the handler's own idle check already
  // ends a stream that goes quiet (Twilio sends media every 20 ms while a call lives).
  const { socket, response } = Deno.upgradeWebSocket(request, { idleTimeout: 0 });
  const handler = make({
    send: (text) => {
      if (socket.readyState === WebSocket.OPEN) socket.send(text);
    },
    close: (code, reason) => {
      if (socket.readyState === WebSocket.OPEN) socket.close(code, reason);
    },
    unsentBytes: () => socket.bufferedAmount,
  });
  socket.onmessage = (event) => handler.onMessage(event.data);
  socket.onclose = () => {
    handler.onClose();
    onClosed?.();
  };
  // An error is followed by close, which ends the stream; nothing more to do here.
  socket.onerror = () => {};
  return response;
}
