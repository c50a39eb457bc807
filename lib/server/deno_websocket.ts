/**
 * The Deno adapter of {@link UpgradeStream}: upgrades a request with
 * `Deno.upgradeWebSocket` and wires the native socket to a
 * transport-independent listener (a media stream handler).
 *
 * @module
 */
import type { UpgradeStream } from "./stream_socket.ts";

/** {@link UpgradeStream} on `Deno.upgradeWebSocket`. */
export const upgradeDenoWebSocket: UpgradeStream = (request, make, onClosed) => {
  // No ping timer: Deno re-arms it on every message, and the handler's own idle check already
  // ends a stream that goes quiet (Twilio sends media every 20 ms while a call lives).
  const { socket, response } = Deno.upgradeWebSocket(request, { idleTimeout: 0 });
  const listener = make({
    send: (text) => {
      if (socket.readyState === WebSocket.OPEN) socket.send(text);
    },
    close: (code, reason) => {
      if (socket.readyState === WebSocket.OPEN) socket.close(code, reason);
    },
    unsentBytes: () => socket.bufferedAmount,
  });
  socket.onmessage = (event) => listener.onMessage(event.data);
  socket.onclose = () => {
    listener.onClose();
    onClosed?.();
  };
  // An error is followed by close, which ends the stream; nothing more to do here.
  socket.onerror = () => {};
  return response;
};
