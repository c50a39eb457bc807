/**
 * The floor: the least a Twilio Media Streams receiver on `Deno.serve` can
 * do per frame. It upgrades every request, `JSON.parse`s each message and
 * base64-decodes media payloads, and nothing else (no signature check, no
 * validation, no calls). The relay benchmark compares our server to it.
 *
 * Prints `{"url", "control"}` on stdout once listening.
 *
 * @module
 */
import { FrameCounters, report, serveControl, serveLocal } from "./common.ts";

const counters = new FrameCounters();
let sockets = 0;
const url = await serveLocal((request) => {
  // As ours: no ping timer re-armed on every message.
  const { socket, response } = Deno.upgradeWebSocket(request, { idleTimeout: 0 });
  sockets++;
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.event === "media") counters.count(Uint8Array.fromBase64(message.media.payload));
    else if (message.event === "stop") socket.close(1000, "stop received");
  };
  socket.onclose = () => sockets--;
  return response;
});
const control = await serveControl({
  stats: () => ({ ...counters.snapshot(), activeCalls: sockets }),
  reset: () => counters.reset(),
});
report({ url, control });
