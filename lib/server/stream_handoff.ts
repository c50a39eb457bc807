/**
 * How a media stream leaves `Deno.serve` for the connection front: the front
 * marks each WebSocket upgrade it forwards with {@link HANDOFF_HEADER} (an id
 * of its own; a client's header of that name is dropped), the app checks the
 * request as before (signature, token, call), and once it accepts, takes the
 * client's connection from the front instead of upgrading through
 * `Deno.serve`: the front answers `101` itself and reads the frames
 * ({@link FrontWebSocket}), the connection to `Deno.serve` is closed. Every
 * frame then costs one read instead of a read, a write and `Deno.serve`'s
 * own read and events (about a third of the relay's CPU per frame).
 *
 * @module
 */
import type { FrontWebSocket, FrontWebSocketOptions } from "./front_websocket.ts";

/** The header naming the front's connection of an upgrade request. */
export const HANDOFF_HEADER = "x-callscribe-handoff";

/** What the taker listens to. */
export type HandoffEvents = Pick<
  FrontWebSocketOptions,
  "onMessage" | "readText" | "onOversized" | "onClose" | "maxMessageBytes"
>;

/** Takes over one offered connection, given the request's `Sec-WebSocket-Key`; null when gone. */
type Take = (key: string, events: HandoffEvents) => FrontWebSocket | null;

/** The upgrade requests the front holds, by id, for the app to take over. */
export class StreamHandoff {
  #offers = new Map<string, Take>();

  /** The front offers the connection of an upgrade request marked with `id`. */
  offer(id: string, take: Take): void {
    this.#offers.set(id, take);
  }

  /** The connection of `id` is gone, or was taken. */
  withdraw(id: string): void {
    this.#offers.delete(id);
  }

  /**
   * Takes over the connection of an accepted WebSocket upgrade: the front
   * answers `101` and hands each message to `events`. Null when the request
   * did not come through the front (in-process requests) or is not a valid
   * version-13 upgrade: then `Deno.upgradeWebSocket` does it.
   */
  take(request: Request, events: HandoffEvents): FrontWebSocket | null {
    const id = request.headers.get(HANDOFF_HEADER);
    const key = request.headers.get("sec-websocket-key");
    if (!id || !key || request.headers.get("sec-websocket-version") !== "13") return null;
    const take = this.#offers.get(id);
    if (!take) return null;
    this.#offers.delete(id);
    return take(key, events);
  }
}
