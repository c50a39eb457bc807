/**
 * The Deno adapter: upgrades a request with `Deno.upgradeWebSocket` and wires
 * the native socket to a transport-independent {@link MediaStreamHandler}.
 *
 * @module
 */
import type { MediaStreamHandler, StreamSocket } from "./media_stream.ts";

/**
 * Upgrades `request` and hands every message of the socket to the handler
 * `make` returns; `onClosed` runs after the handler heard the close.
 */
export function upgradeMediaStream(
  request: Request,
  make: (socket: StreamSocket) => MediaStreamHandler,
  onClosed?: () => void,
): Response {
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
